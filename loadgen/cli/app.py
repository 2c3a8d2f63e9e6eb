"""CLI tier: the ``loadgen`` command. Parses flags, has the scenario tier resolve them (with the
scenario file) into a ``Plan``, and hands it to the run tier. The only package that sees
``argparse``, and the only place that turns a ``LoadgenError`` into a one-line message and an
exit code."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from loadgen import __version__
from loadgen.cli.commands import positive_number, run_import, run_monitor, run_plan, serve_sim
from loadgen.cli.console import ConsoleEvents
from loadgen.cli.locust import add_locust_options, run_locust
from loadgen.cli.plan import build_plan
from loadgen.errors import ConfigError, LoadgenError, OutputError
from loadgen.extras import require
from loadgen.imports.readers import FORMATS
from loadgen.parsing import did_you_mean, port, request_secrets
from loadgen.redact import redactor
from loadgen.run.compare import compare_variants, parse_variants
from loadgen.run.outcome import ExitCode
from loadgen.run.session import run
from loadgen.scenario.options import OPTIONS, OPTIONS_BY_NAME

PIPED_WIDTH = 160


OPTION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("target", ("endpoint", "api", "model", "model_version", "header", "api_key_env", "insecure", "sim_profile",
                "sim_prefix_cache", "sim_reasoning_tokens",
                "triton", "schema")),
    ("load", ("concurrency", "rate", "batch_size", "arrival", "burstiness", "max_inflight", "ramp_up", "stages",
              "trace", "trace_format", "trace_speed", "sessions", "history", "think_time", "session_header",
              "requests", "duration", "warmup", "workers", "seed")),
    ("prompts and generation", ("prompts", "synthetic", "max_tokens", "ignore_eos", "temperature", "no_stream",
                                "extra_body", "tokenizer", "save_text")),
    ("answers, SLOs and exit codes", ("slo", "find_max", "variants", "max_error_rate", "fail_on")),
    ("timeouts", ("connect_timeout", "first_token_timeout", "request_timeout", "drain_timeout")),
    ("results", ("output", "hlog_interval", "quiet")),
    ("telemetry", ("telemetry", "telemetry_interval", "telemetry_url", "server_metrics", "server_metric",
                   "gpu_devices", "server_timings", "otlp_listen", "otlp_grpc_listen", "otlp_wait")),
    ("Amazon SageMaker", ("endpoint_name", "region", "endpoint_url", "inference_component", "custom_attributes",
                          "target_variant", "aws_profile")),
)  # fmt: skip
NOT_FOR = {  # options a command does not use
    "run": {"find_max", "variants"},
    "sweep": {"variants"},
    "compare": {"find_max"},
    "locust": {"rate", "find_max", "variants", "workers", "arrival", "burstiness", "max_inflight", "trace",
               "trace_format", "trace_speed", "stages", "batch_size", "sessions", "history", "think_time",
               "session_header", "server_timings", "otlp_listen", "otlp_grpc_listen", "otlp_wait"},
}  # fmt: skip


def _add_load_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The load options in groups, each with its default; those ``command`` does not use are left out."""
    parser.add_argument("scenario", nargs="?", help="scenario YAML file (flags override its keys)")
    skip = NOT_FOR.get(command, set())
    grouped = {name for _, names in OPTION_GROUPS for name in names}
    groups = [*OPTION_GROUPS, ("other", tuple(o.name for o in OPTIONS if o.name not in grouped))]
    for title, names in groups:
        group = parser.add_argument_group(title)
        for name in names:
            if name in skip or name not in OPTIONS_BY_NAME:
                continue
            option = OPTIONS_BY_NAME[name]
            flag = "--" + option.name.replace("_", "-")
            shown = option.default not in (None, False, (), [])
            help_text = option.help + (f" (default: {_shown_default(option.default)})" if shown else "")
            help_text = help_text.replace("%", "%%")
            if option.flag_kind == "flag":
                group.add_argument(flag, dest=option.name, action="store_const", const=True, default=None,
                                   help=help_text)  # fmt: skip
            elif option.flag_kind == "append":
                group.add_argument(flag, dest=option.name, action="append", default=None, metavar=option.metavar,
                                   help=help_text)  # fmt: skip
            else:
                group.add_argument(flag, dest=option.name, default=None, metavar=option.metavar, help=help_text)


def _shown_default(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadgen", description="Load testing and latency profiling for LLM endpoints."
    )
    parser.add_argument("--version", action="version", version=f"loadgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="one load level against an endpoint (or the built-in simulator)")
    _add_load_options(run, "run")
    sweep = commands.add_parser("sweep", help="a series of load levels, e.g. --concurrency 1..64")
    _add_load_options(sweep, "sweep")
    compare = commands.add_parser(
        "compare", help="a baseline against candidates, level by level (e.g. assisted decoding)"
    )
    _add_load_options(compare, "compare")
    compare.add_argument(
        "--variant",
        action="append",
        metavar="NAME=TARGET [JSON]",
        help="TARGET: a URL, sim:PROFILE or 'endpoint' (the --endpoint), optionally with request fields as JSON; "
        "the first is the baseline (default: the simulator without and with speculation)",
    )
    sim = commands.add_parser("serve-sim", help="serve the built-in simulated LLM (OpenAI and TGI APIs)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=port, default=8000)
    sim.add_argument("--profile", default="llama2-7b-h100", help="simulator profile, or fixed:TTFT_MS,ITL_MS")
    sim.add_argument("--model", default="sim-llm")
    sim.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered with HTTP 500")
    sim.add_argument("--break-rate", type=float, default=0.0, help="fraction of streams cut off mid-way")
    sim.add_argument("--prefix-cache", action="store_true",
                     help="cache prompts' leading 16-token blocks: a hit skips that prefill (as vLLM's)")  # fmt: skip
    sim.add_argument("--reasoning-tokens", type=int, default=0,
                     help="chat streams: the first N tokens as reasoning_content (a reasoning model)")  # fmt: skip
    sim.add_argument("--api-key-env", default=None, help="require the API key held in this environment variable")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--keep-log", action="store_true", help="keep chunk send times, served at /sim/log")
    sim.add_argument("--otlp-traces-endpoint", metavar="URL",
                     help="export each request's span there (OTLP/HTTP protobuf), as vLLM does; "
                          "e.g. a loadgen run's --server-timings otlp receiver")  # fmt: skip
    plan = commands.add_parser("plan", help="how much hardware a target load needs under SLOs, from measured sweeps")
    plan.add_argument("--sweep", action="append", required=True, help="a sweep (or run) result directory; repeatable")
    plan.add_argument("--slo", required=True, help="percentile or mean SLOs, e.g. ttft_p95=800ms,tpot_mean=40ms")
    plan.add_argument("--target-rate", help="peak requests/s to serve")
    plan.add_argument("--average-rate", help="average requests/s (for cost per token; default: the peak)")
    plan.add_argument("--target-users", help="concurrent users to serve (closed-loop sweeps)")
    plan.add_argument("--headroom", default="0.2", help="spare capacity above the peak (0.2 = 20%%)")
    plan.add_argument("--profiles", action="append", default=None, help="hardware/model profiles (files or dirs)")
    plan.add_argument("--measured-on", help="hardware profile of the swept setup")
    plan.add_argument("--replica-accelerators", default="1", help="accelerators one swept replica uses")
    plan.add_argument("--model", help="model profile (for what-if estimates on other hardware)")
    plan.add_argument("--output-tokens", help="target output tokens per request (default: as measured)")
    plan.add_argument("--input-tokens", help="target input tokens per request (default: as measured)")
    plan.add_argument("--price", default="on_demand", choices=("on_demand", "spot", "reserved", "owned"))
    plan.add_argument("--max-batch", default="256", help="engine max batch for what-if estimates")
    plan.add_argument("--output", help="write plan.json here (a directory)")
    imports = commands.add_parser(
        "import", help="other tools' results (AIPerf, GenAI-Perf, vllm bench, GuideLLM, tables) as a loadgen sweep"
    )
    imports.add_argument("files", nargs="+", help="result files: one per level, or one holding every level")
    imports.add_argument("--output", required=True, help="the sweep directory to write (for plan and report)")
    imports.add_argument("--format", default="auto", choices=FORMATS, help="default: told from the content")
    imports.add_argument("--load", help="each file's concurrency (or rate), in order, where a file does not say it")
    imports.add_argument("--load-is", default="concurrency", choices=("concurrency", "rate"), help="what --load gives")
    imports.add_argument("--output-tokens", help="output tokens per request, where the files do not say it")
    imports.add_argument("--input-tokens", help="input tokens per request, where the files do not say it")
    imports.add_argument("--itl-is", default="tpot", choices=("tpot", "chunk"),
                         help="a table's 'ITL': per-request TPOT (NIM's, GenAI-Perf's meaning; the default) or "
                         "gaps between chunks")  # fmt: skip
    report = commands.add_parser("report", help="one self-contained HTML report of result directories")
    report.add_argument("directories", nargs="+", help="run, sweep or compare result directories")
    report.add_argument("--output", default="loadgen-report.html", help="the HTML file to write (default: %(default)s)")
    report.add_argument(
        "--merge", action="store_true", help="first, one latency section over all the directories' .hlog files"
    )
    report.add_argument(
        "--export", choices=("csv", "parquet"), help="also write the summaries and per-request records beside it"
    )
    selftest = commands.add_parser("selftest", help="measure this machine's client ceiling (a local zero-delay server)")
    selftest.add_argument("--duration", default="3", help="seconds per request-rate step (default: %(default)s)")
    selftest.add_argument("--output", help="write selftest.json here (a directory)")
    locust = commands.add_parser("locust", help="Locust's web UI and master/workers with loadgen's LLM metrics")
    _add_load_options(locust, "locust")
    add_locust_options(locust)
    monitor = commands.add_parser("monitor", help="sample telemetry on this host and serve it to 'loadgen run'")
    monitor.add_argument("--listen", default="127.0.0.1:9400", help="HOST:PORT to serve on (port 0: any free port)")
    monitor.add_argument("--telemetry", default="gpu,host", help="sources to sample: gpu, neuron, host, server")
    monitor.add_argument("--interval", default="250ms", help="sampling interval")
    monitor.add_argument("--server-metrics", default=None, help="Prometheus URL of a server on this host")
    monitor.add_argument("--gpu-devices", default="", help="GPUs to sample: indices or UUIDs (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "locust":
        flags = [flag for action in _subparser(parser, args.command)._actions for flag in action.option_strings]
        hints = "".join(did_you_mean(word.split("=")[0], flags) for word in extra if word.startswith("--"))
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hints}")
    # in a CI log or a pipe rich would cut tables at 80 columns (compare's intervals): give them room
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH
    console = Console(stderr=False, highlight=False, width=width)
    error_console = Console(stderr=True, highlight=False, width=width)
    try:
        if args.command in ("run", "sweep"):
            plan = build_plan(args, sweep=args.command == "sweep")
            return run(plan, ConsoleEvents(console)).exit_code
        if args.command == "compare":
            plan = build_plan(args, sweep=True)
            variants = parse_variants(
                args.variant, dict(plan.config_record).get("variants"), f"{args.scenario}: variants"
            )
            return compare_variants(plan, variants, ConsoleEvents(console)).exit_code
        if args.command == "locust":
            require("locust", "loadgen locust")
            return run_locust(args, extra, console)
        if args.command == "serve-sim":
            return serve_sim(args)
        if args.command == "monitor":
            return run_monitor(args, console)
        if args.command == "plan":
            return run_plan(args, console)
        if args.command == "import":
            return run_import(args, console)
        if args.command == "report":
            from loadgen.report.files import write_text
            from loadgen.report.html import render_report

            notes: list[str] = []
            html = render_report([Path(directory) for directory in args.directories], merge=args.merge, notes=notes)
            for note in notes:
                error_console.print(f"loadgen: {note}", style="yellow", soft_wrap=True, markup=False)
            write_text(Path(args.output), html)
            console.print(f"Report in {args.output}")
            if args.export is not None:
                from loadgen.report.export import export_csv, export_parquet

                export = export_csv if args.export == "csv" else export_parquet
                paths = export([Path(directory) for directory in args.directories], Path(args.output).parent)
                console.print(f"{args.export.upper()} in {paths[0]} and {paths[1]}")
            return 0
        if args.command == "selftest":
            from loadgen.run.selftest import run_selftest

            duration = positive_number(args.duration, "--duration") or 3.0
            return run_selftest(console, duration, Path(args.output) if args.output else None)
        parser.print_help()
        return ExitCode.USAGE
    except LoadgenError as exc:
        redact = redactor(secrets_in_arguments(args))
        error_console.print(redact(f"loadgen: error: {exc}"), style="bold red", soft_wrap=True, markup=False)
        if isinstance(exc, ConfigError):
            return ExitCode.USAGE
        return ExitCode.OUTPUT if isinstance(exc, OutputError) else ExitCode.UNUSABLE_ENDPOINT
    except KeyboardInterrupt:
        error_console.print("loadgen: interrupted", style="bold yellow")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # the one boundary for what should not happen: a line, and the traceback in a file
        redact = redactor(secrets_in_arguments(args))
        log = _write_crash_log(exc, redact)
        line = f"loadgen: internal error: {type(exc).__name__}: {exc} (traceback in {log})"
        line += "; results written so far are kept"
        error_console.print(redact(line), style="bold red", soft_wrap=True, markup=False)
        return ExitCode.INTERNAL


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            subparser: argparse.ArgumentParser = action.choices[command]
            return subparser
    return parser


def _write_crash_log(exc: BaseException, redact: Callable[[str], str]) -> Path:
    handle, name = tempfile.mkstemp(prefix="loadgen-crash-", suffix=".log")
    with os.fdopen(handle, "w", encoding="utf-8") as log:
        log.write(redact("".join(traceback.format_exception(exc))))
    return Path(name)


def secrets_in_arguments(args: argparse.Namespace) -> tuple[str, ...]:
    """What the command line holds that must not be shown, for the lines written before (or
    without) a plan (``parsing.request_secrets``, as the plan gathers them)."""
    headers = [header.partition(":")[2].strip() for header in getattr(args, "header", None) or []]
    urls = [getattr(args, name, None) for name in ("endpoint", "endpoint_url", "telemetry_url")]
    key_env = getattr(args, "api_key_env", None)
    return tuple(filter(None, request_secrets(headers, urls, os.environ.get(key_env) if key_env else None)))


if __name__ == "__main__":
    sys.exit(main())
