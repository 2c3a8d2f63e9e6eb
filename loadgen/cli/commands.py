"""Top layer (with the CLI): the handlers of the commands other than run, sweep and compare:
``serve-sim``, ``plan`` and ``monitor``. Each takes parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from rich.console import Console

from loadgen.config import TelemetryConfig
from loadgen.errors import ConfigError, LoadgenError
from loadgen.eventloop import run_loop
from loadgen.hardware.profiles import ProfileSet
from loadgen.parsing import parse_slo
from loadgen.plan.planner import PlanRequest
from loadgen.scenario.options import OPTIONS_BY_NAME, convert


def serve_sim(args: argparse.Namespace) -> int:

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
        reasoning_tokens=args.reasoning_tokens,
        prefix_cache=args.prefix_cache,
        seed=args.seed,
        keep_log=args.keep_log,
        otlp_endpoint=args.otlp_traces_endpoint,
    )
    try:
        run_loop(serve(SimSpec(args.profile, options, args.host, args.port)))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise LoadgenError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0


def positive_number(text: str | None, flag: str, integer: bool = False) -> float | None:
    if text is None:
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ConfigError(f"{flag} {text}: expected a positive {'whole ' if integer else ''}number") from None
    if value <= 0:
        raise ConfigError(f"{flag} {text}: expected a positive {'whole ' if integer else ''}number")
    return value


def positive_integer(text: str | None, flag: str) -> int | None:
    value = positive_number(text, flag, integer=True)
    return None if value is None else int(value)


def run_plan(args: argparse.Namespace, console: Console) -> int:
    from loadgen.hardware.profiles import SHIPPED_PROFILES, load_profiles
    from loadgen.plan.planner import make_plan
    from loadgen.report.files import write_json
    from loadgen.report.plan import plan_json, print_plan

    try:
        slo = parse_slo(args.slo)
    except ValueError as exc:
        raise ConfigError(f"--slo: {exc}") from None
    headroom = float(args.headroom) if args.headroom.replace(".", "", 1).isdigit() else -1.0
    if headroom < 0:
        raise ConfigError(f"--headroom {args.headroom}: expected a fraction >= 0, e.g. 0.2")
    request = PlanRequest(
        sweeps=tuple(args.sweep),
        slo=slo,
        peak_rps=positive_number(args.target_rate, "--target-rate"),
        average_rps=positive_number(args.average_rate, "--average-rate"),
        users=positive_integer(args.target_users, "--target-users"),
        headroom=headroom,
        input_tokens=positive_number(args.input_tokens, "--input-tokens"),
        output_tokens=positive_number(args.output_tokens, "--output-tokens"),
        measured_on=args.measured_on,
        replica_accelerators=int(
            positive_number(args.replica_accelerators, "--replica-accelerators", integer=True) or 1
        ),
        model=args.model,
        price_kind=args.price,
        max_batch=int(positive_number(args.max_batch, "--max-batch", True) or 256),
    )
    profiles = load_profiles(*(args.profiles or [SHIPPED_PROFILES]))
    request = _with_simulated_setup(request, profiles, console)
    plan = make_plan(request, profiles)
    print_plan(console, plan)
    if args.output:
        directory = Path(args.output)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "plan.json", plan_json(plan))
        console.print(f"Plan in {directory / 'plan.json'}", style="dim")
    return 0


IMPORT_ROWS_SHOWN = 40  # the first and last 20 levels of a longer import


def _with_simulated_setup(request: PlanRequest, profiles: ProfileSet, console: Console) -> PlanRequest:
    """A sweep of the simulator knows what it modelled: fill in --measured-on, --model, --max-batch."""
    from loadgen.hardware.profiles import load_profile_file
    from loadgen.plan.capacity import simulated_setup

    if request.measured_on and request.model:
        return request
    setup = simulated_setup(request.sweeps[0])
    if setup is None or not Path(setup.hardware_file).is_file():
        return request
    hardware = load_profile_file(Path(setup.hardware_file))[0]
    if not hardware or hardware[0].name not in profiles.hardware or setup.model not in profiles.models:
        return request
    console.print(f"Measured setup from the sweep's simulator profile: {setup.model} on {hardware[0].name}"
                  + (f", max batch {setup.max_batch}" if setup.max_batch else ""), style="dim")  # fmt: skip
    return dataclasses.replace(
        request,
        measured_on=request.measured_on or hardware[0].name,
        model=request.model or setup.model,
        max_batch=setup.max_batch or request.max_batch,
    )


def run_monitor(args: argparse.Namespace, console: Console) -> int:
    from loadgen.telemetry.monitor import serve_monitor

    host, _, port_text = args.listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise ConfigError(f"--listen {args.listen}: expected HOST:PORT, e.g. 127.0.0.1:9400")
    sources: tuple[str, ...] = convert(OPTIONS_BY_NAME["telemetry"], args.telemetry, "--telemetry")
    interval_s: float = convert(OPTIONS_BY_NAME["telemetry_interval"], args.interval, "--interval")
    if "server" in sources and not args.server_metrics:
        raise ConfigError("--telemetry server: give --server-metrics URL (the server's Prometheus endpoint)")
    config = TelemetryConfig(
        sources=sources,
        interval_s=interval_s,
        server_metrics_url=args.server_metrics,
        gpu_devices=tuple(device for device in args.gpu_devices.split(",") if device),
    )
    return serve_monitor(config, host, int(port_text), console)


def run_import(args: argparse.Namespace, console: Console) -> int:
    """``loadgen import FILE... --output DIR``: other tools' results as a loadgen sweep directory."""
    from rich.table import Table
    from rich.text import Text

    from loadgen.imports.model import write_sweep
    from loadgen.imports.readers import parse_loads, read_results
    from loadgen.report.files import prepare_output_dir

    sweep = read_results(
        [Path(path) for path in args.files],
        args.format,
        loads=parse_loads(args.load),
        load_mode="open" if args.load_is == "rate" else "closed",
        output_tokens=positive_number(args.output_tokens, "--output-tokens"),
        input_tokens=positive_number(args.input_tokens, "--input-tokens"),
        itl_is=args.itl_is,
    )
    directory = Path(args.output)
    with prepare_output_dir(directory):
        path = write_sweep(sweep, directory)
    table = Table(title=f"imported from {sweep.tool}: {len(sweep.levels)} levels (latencies in ms)",
                  title_justify="left", padding=(0, 1), pad_edge=False)  # fmt: skip
    for column in ("load", "req/s", "out tok/s", "out tok/req", "latency figures"):
        table.add_column(column, justify="left" if column in ("load", "latency figures") else "right")
    levels = sorted(sweep.levels, key=lambda level: level.load)
    shown = (
        levels
        if len(levels) <= IMPORT_ROWS_SHOWN
        else levels[: IMPORT_ROWS_SHOWN // 2] + levels[-IMPORT_ROWS_SHOWN // 2 :]
    )
    for number, level in enumerate(shown):
        if len(shown) < len(levels) and number == IMPORT_ROWS_SHOWN // 2:
            table.add_row("…", "", "", "", "")
            table.caption = f"… {len(levels) - len(shown):,} levels not shown here: all are in sweep.json"
        label = f"c={level.load:g}" if level.mode == "closed" else f"r={level.load:g}"
        figures = "; ".join(f"{metric} {', '.join(stats)}" for metric, stats in level.latency_ms.items())
        table.add_row(label, f"{level.requests_per_s:.3g}", f"{level.output_tokens_per_s:,.0f}",
                      f"{level.output_tokens_per_request:.0f}", figures)  # fmt: skip
    console.print(table)
    for name, definition in sweep.definitions.items():
        console.print(Text(f"{name}: {definition}", style="dim"))
    console.print(Text(f"lacks: {', '.join(sweep.lacks)} (figures that need them are not shown)", style="dim"))
    derived = sorted({item for level in sweep.levels for item in level.derived})
    for item in derived:
        console.print(Text(f"derived: {item}", style="dim"))
    for assumption in sweep.assumptions:
        console.print(Text(f"assumption: {assumption}", style="yellow"))
    console.print(f"Sweep in {path}")
    return 0
