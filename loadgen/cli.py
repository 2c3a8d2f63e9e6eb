"""Top layer: the ``loadgen`` command. Parses flags, merges the scenario file, builds a ``Plan``
and hands it to ``loadgen.session``. The only place that turns a ``LoadgenError`` into a one-line
message and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from loadgen import __version__
from loadgen.config import Arrival, EndpointConfig, GenerationConfig, LoadConfig, LoadMode
from loadgen.errors import ConfigError, LoadgenError
from loadgen.options import OPTIONS, convert, load_scenario, resolve
from loadgen.prompts.loaders import load_prompts
from loadgen.prompts.synthetic import parse_synthetic, synthesize
from loadgen.session import Plan, execute

EXIT_USAGE = 2


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", help="scenario YAML file (flags override its keys)")
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        if option.flag_kind == "flag":
            parser.add_argument(
                flag, dest=option.name, action="store_const", const=True, default=None, help=option.help
            )
        elif option.flag_kind == "append":
            parser.add_argument(
                flag, dest=option.name, action="append", default=None, metavar=option.metavar, help=option.help
            )
        else:
            parser.add_argument(flag, dest=option.name, default=None, metavar=option.metavar, help=option.help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadgen", description="Load testing and latency profiling for LLM endpoints."
    )
    parser.add_argument("--version", action="version", version=f"loadgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="one load level against an endpoint (or the built-in simulator)")
    _add_load_options(run)
    sweep = commands.add_parser("sweep", help="a series of load levels, e.g. --concurrency 1..64")
    _add_load_options(sweep)
    sim = commands.add_parser("serve-sim", help="serve the built-in simulated LLM (OpenAI and TGI APIs)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8000)
    sim.add_argument("--profile", default="llama2-7b-h100", help="simulator profile, or fixed:TTFT_MS,ITL_MS")
    sim.add_argument("--model", default="sim-llm")
    sim.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered with HTTP 500")
    sim.add_argument("--break-rate", type=float, default=0.0, help="fraction of streams cut off mid-way")
    sim.add_argument("--api-key-env", default=None, help="require the API key held in this environment variable")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--keep-log", action="store_true", help="keep chunk send times, served at /sim/log")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=False, highlight=False)
    error_console = Console(stderr=True, highlight=False)
    try:
        if args.command in ("run", "sweep"):
            plan = build_plan(args, sweep=args.command == "sweep")
            return execute(plan, console)
        if args.command == "serve-sim":
            return serve_sim(args)
        parser.print_help()
        return EXIT_USAGE
    except LoadgenError as exc:
        error_console.print(f"loadgen: error: {exc}", style="bold red", soft_wrap=True)
        return EXIT_USAGE if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        error_console.print("loadgen: interrupted", style="bold yellow")
        return 130


def serve_sim(args: argparse.Namespace) -> int:
    import asyncio

    from loadgen.sim.process import SimSpec, serve
    from loadgen.sim.profiles import get_profile
    from loadgen.sim.server import SimOptions

    get_profile(args.profile)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: environment variable is not set")
    options = SimOptions(
        model=args.model,
        api_key=api_key,
        error_rate=args.error_rate,
        break_rate=args.break_rate,
        seed=args.seed,
        keep_log=args.keep_log,
    )
    try:
        import uvloop

        uvloop.run(serve(SimSpec(args.profile, options, args.host, args.port)))
    except ImportError:
        asyncio.run(serve(SimSpec(args.profile, options, args.host, args.port)))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise LoadgenError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0


def build_plan(args: argparse.Namespace, sweep: bool) -> Plan:
    scenario = load_scenario(args.scenario) if args.scenario else {}
    flags = {}
    for option in OPTIONS:
        raw = getattr(args, option.name)
        if raw is not None:
            flags[option.name] = convert(option, raw, "--" + option.name.replace("_", "-"))
    values = resolve(flags, scenario)
    levels = _levels(values, sweep)
    endpoint_url = values["endpoint"]
    headers = list(values["header"])  # type: ignore[call-overload]
    secrets = [value for _, value in headers]
    if values["api_key_env"]:
        variable = str(values["api_key_env"])
        key = os.environ.get(variable)
        if not key:
            raise ConfigError(f"--api-key-env {variable}: environment variable is not set")
        headers.append(("Authorization", f"Bearer {key}"))
        secrets.append(key)
    if endpoint_url is not None and not str(endpoint_url).startswith(("http://", "https://")):
        raise ConfigError(f"--endpoint {endpoint_url}: expected an http:// or https:// URL")
    endpoint = EndpointConfig(
        url=str(endpoint_url or ""),
        api=str(values["api"]),
        model=values["model"],  # type: ignore[arg-type]
        headers=tuple(headers),
        api_key_env=values["api_key_env"],  # type: ignore[arg-type]
        connect_timeout_s=values["connect_timeout"],
        first_token_timeout_s=values["first_token_timeout"],  # type: ignore[arg-type]
        total_timeout_s=values["request_timeout"],
        verify_tls=not values["insecure"],  # type: ignore[arg-type]
    )
    extra_body = values["extra_body"] or {}
    generation = GenerationConfig(
        max_tokens=values["max_tokens"],
        ignore_eos=bool(values["ignore_eos"]),  # type: ignore[arg-type]
        temperature=values["temperature"],
        stream=not values["no_stream"],  # type: ignore[arg-type]
        extra_body=tuple(extra_body.items()),  # type: ignore[union-attr]
    )
    if values["synthetic"]:
        prompts = synthesize(parse_synthetic(str(values["synthetic"])), int(values["seed"]))  # type: ignore[call-overload]
    else:
        prompts = load_prompts(str(values["prompts"]))
    output = values["output"] or os.path.join("results", time.strftime("%Y%m%d-%H%M%S"))
    record = tuple((name, value) for name, value in values.items() if name not in ("header",) and value is not None)
    return Plan(
        endpoint=endpoint,
        generation=generation,
        levels=tuple(levels),
        prompts=tuple(prompts),
        output_dir=Path(str(output)),
        sweep=sweep,
        use_simulator=endpoint_url is None,
        slo=values["slo"],
        tokenizer=values["tokenizer"],
        sim_profile=str(values["sim_profile"]),  # type: ignore[arg-type]
        hlog_interval_s=float(values["hlog_interval"]),
        secrets=tuple(secrets),  # type: ignore[arg-type]
        quiet=bool(values["quiet"]),
        config_record=record,
    )


def _levels(values: dict[str, object], sweep: bool) -> list[LoadConfig]:
    concurrency, rate = values["concurrency"], values["rate"]
    if concurrency is not None and rate is not None:
        raise ConfigError("--concurrency and --rate are exclusive: closed loop or open loop, not both")
    if concurrency is None and rate is None:
        concurrency = [1] if not sweep else [1, 2, 4, 8, 16, 32, 64]
    points: list[float] = concurrency if concurrency is not None else rate  # type: ignore[assignment]
    if not sweep and len(points) > 1:
        flag = "--concurrency" if concurrency is not None else "--rate"
        raise ConfigError(f"{flag}: 'run' takes one level; use 'loadgen sweep' for {len(points)} levels")
    warmup = values["warmup"]
    levels = []
    for point in points:
        if concurrency is not None:
            mode, users, rate_rps = LoadMode.CLOSED, int(point), None
            default_requests, default_warmup = max(8, 4 * users), (users, 0.0)
        else:
            mode, users, rate_rps = LoadMode.OPEN, 1, float(point)
            default_requests, default_warmup = max(20, round(10 * point)), (0, 0.0)
        requests = values["requests"]
        if requests is None and values["duration"] is None:
            requests = default_requests
        warmup_requests, warmup_s = warmup if warmup is not None else default_warmup  # type: ignore[misc]
        levels.append(
            LoadConfig(
                mode=mode,
                concurrency=users,
                rate_rps=rate_rps,
                arrival=Arrival(values["arrival"]),
                burstiness=float(values["burstiness"]),
                max_inflight=values["max_inflight"],  # type: ignore[arg-type]
                requests=requests,
                duration_s=values["duration"],
                warmup_requests=warmup_requests,  # type: ignore[arg-type]
                warmup_s=warmup_s,
                seed=int(values["seed"]),
                drain_timeout_s=float(values["drain_timeout"]),
                ramp_up_s=float(values["ramp_up"]),  # type: ignore[call-overload, arg-type]
            )
        )
    return levels


if __name__ == "__main__":
    sys.exit(main())
