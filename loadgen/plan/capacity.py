"""Planning layer: the highest load one replica carries within the SLOs, read off a measured sweep.

Levels are taken in the order they were offered. The answer lies between the last level that met
every SLO and the first that broke one: each broken SLO's crossing is interpolated linearly
between the two levels, the earliest crossing binds, and the two levels bracket the estimate
(its uncertainty). When the failing level carried no more than the good one (saturated), the good
level's throughput is the capacity. A sweep that never broke an SLO gives only a lower bound; one
whose first level already broke it says the SLO cannot be met on that setup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadgen.config import SloTarget
from loadgen.errors import ConfigError
from loadgen.hardware.profiles import SHIPPED_PROFILES
from loadgen.metrics.results import LATENCY_NAMES, ImportedSource, RunSummary, read_config, read_levels, read_sweep

PERCENTILE_KEYS = {50.0: "p50", 90.0: "p90", 95.0: "p95", 99.0: "p99", 99.9: "p99_9"}
MAX_ERROR_RATE = 0.01


@dataclass(frozen=True, slots=True)
class Level:
    load: float  # users (closed loop) or offered req/s (open loop)
    requests_per_s: float
    output_tokens_per_s: float
    output_tokens_per_request: float
    input_tokens_per_request: float | None
    error_rate: float
    latencies_ms: dict[str, float]  # "ttft_p95" → value
    joules_per_output_token: float | None
    verdict: str | None = None  # the level's validity verdict, when it has one
    cached_input_tokens_per_request: float | None = None  # of the prompt, served from the server's prefix cache


@dataclass(frozen=True, slots=True)
class Capacity:
    """Per-replica load within the SLOs. ``low``/``high`` bracket it (``high`` None: not bounded)."""

    requests_per_s: float
    requests_per_s_low: float
    requests_per_s_high: float | None
    users: float | None
    binding: str  # the SLO (or "error_rate") that limits it; "none" when the sweep never broke one
    kind: str  # "interpolated", "lower_bound" or "infeasible"
    output_tokens_per_request: float
    input_tokens_per_request: float | None
    joules_per_output_token: float | None
    cached_input_tokens_per_request: float | None = None

    @property
    def uncached_input_tokens_per_request(self) -> float | None:
        """The prompt tokens a replica prefilled: the server's prefix cache served the rest."""
        if self.input_tokens_per_request is None:
            return None
        return max(0.0, self.input_tokens_per_request - (self.cached_input_tokens_per_request or 0.0))


def slo_key(target: SloTarget) -> str:
    if target.mean:
        return f"{target.metric}_mean"
    if target.percentile is None:
        raise ConfigError(f"--slo {target.metric}: planning needs percentile or mean SLOs such as "
                          f"{target.metric}_p95=800ms or {target.metric}_mean=500ms")  # fmt: skip
    if target.percentile not in PERCENTILE_KEYS:
        raise ConfigError(f"--slo {target.metric}_p{target.percentile:g}: summaries hold p50, p90, p95, p99, p99_9")
    return f"{target.metric}_{PERCENTILE_KEYS[target.percentile]}"


def load_sweep(directory: str) -> tuple[str, list[Level]]:
    """Levels of a sweep (``sweep.json``) or a single run (``summary.json``), and the load mode."""
    sweep = read_levels(Path(directory))
    if sweep is None:
        raise ConfigError(f"--sweep {directory}: no sweep.json or summary.json there")
    levels = [level for level in (_level(summary, directory) for summary in sweep.levels) if level is not None]
    if not levels:
        raise ConfigError(f"--sweep {directory}: no level completed a request")
    modes = {summary.load.mode for summary in sweep.levels}
    if len(modes) != 1:
        raise ConfigError(f"--sweep {directory}: mixes closed- and open-loop levels")
    return modes.pop(), levels


def sweep_source(directory: str) -> ImportedSource | None:
    """Where an imported sweep came from (``loadgen import``): tool, files, metric definitions,
    what it lacks; None for loadgen's own results."""
    path = Path(directory) / "sweep.json"
    return read_sweep(path).imported if path.is_file() else None


def _level(summary: RunSummary, where: str) -> Level | None:
    """A level's figures; None for a level that completed no request."""
    completed, tokens = summary.requests.completed, summary.tokens
    if completed == 0:
        return None
    latencies = {
        f"{metric}_{key}": value
        for metric in LATENCY_NAMES
        for key in (*PERCENTILE_KEYS.values(), "mean")
        if (value := summary.latency_ms.metric(metric).statistic(key)) is not None
    }
    # imported tables carry per-request lengths (and often no request count) instead of totals
    output_per_request = tokens.output_per_request
    if output_per_request is None:
        if tokens.output_total is None or not completed:
            raise ConfigError(f"--sweep {where}: a level has no output token count (written by an older loadgen?)")
        output_per_request = tokens.output_total / completed
    input_per_request = tokens.input_per_request or (
        tokens.input_total / completed if tokens.input_total is not None and completed else None
    )
    cached_per_request = (tokens.cached_input_total / completed
                          if tokens.cached_input_total is not None and completed else None)  # fmt: skip
    return Level(
        load=summary.load.value,
        requests_per_s=summary.throughput.requests_per_s or 0.0,
        output_tokens_per_s=summary.throughput.output_tokens_per_s or 0.0,
        output_tokens_per_request=output_per_request,
        input_tokens_per_request=input_per_request,
        cached_input_tokens_per_request=cached_per_request,
        error_rate=summary.requests.error_rate or 0.0,
        latencies_ms=latencies,
        joules_per_output_token=summary.telemetry.joules_per_output_token if summary.telemetry else None,
        verdict=summary.validity.verdict if summary.validity else None,
    )


def _broken(level: Level, slo: tuple[SloTarget, ...]) -> list[str]:
    broken = [slo_key(target) for target in slo if level.latencies_ms.get(slo_key(target), float("inf"))
              > target.threshold_ns / 1e6]  # fmt: skip
    if level.error_rate > MAX_ERROR_RATE:
        broken.append("error_rate")
    return broken


def replica_capacity(levels: list[Level], slo: tuple[SloTarget, ...], closed_loop: bool) -> Capacity:
    def capacity(rps: float, low: float, high: float | None, users: float | None, binding: str, kind: str,
                 level: Level) -> Capacity:  # fmt: skip
        return Capacity(rps, low, high, users, binding, kind, level.output_tokens_per_request,
                        level.input_tokens_per_request, level.joules_per_output_token,
                        level.cached_input_tokens_per_request)  # fmt: skip

    keys = [slo_key(target) for target in slo]  # one clear error for an SLO no summary can answer
    if not levels:
        raise ConfigError("the sweep has no levels")
    for target, key in zip(slo, keys, strict=True):  # and for one these levels cannot: never a silent "broken"
        lacking = [level.load for level in levels if key not in level.latencies_ms]
        if lacking:
            has = sorted({k.split("_", 1)[1] for k in levels[0].latencies_ms if k.startswith(target.metric + "_")})
            raise ConfigError(
                f"--slo {key}: the sweep has no {target.metric} {target.statistic} at load {lacking[0]:g}; "
                + (f"it has {target.metric} {', '.join(has)}" if has else f"it has no {target.metric} figures")
            )
    first_broken = next((i for i, level in enumerate(levels) if _broken(level, slo)), None)
    if first_broken is None:
        top = max(levels, key=lambda level: level.requests_per_s)  # every level met the SLOs
        return capacity(top.requests_per_s, top.requests_per_s, None, top.load if closed_loop else None,
                        "none", "lower_bound", top)  # fmt: skip
    failing = levels[first_broken]
    if first_broken == 0:
        return capacity(0.0, 0.0, failing.requests_per_s, None, _broken(failing, slo)[0], "infeasible", failing)
    ok = levels[first_broken - 1]
    crossings = []
    for key in _broken(failing, slo):
        if key == "error_rate":
            before, after, limit = ok.error_rate, failing.error_rate, MAX_ERROR_RATE
        else:
            target = next(t for t in slo if slo_key(t) == key)
            before, after, limit = ok.latencies_ms[key], failing.latencies_ms[key], target.threshold_ns / 1e6
        fraction = (limit - before) / (after - before) if after > before else 0.0
        crossings.append((min(max(fraction, 0.0), 1.0), key))
    fraction, binding = min(crossings)
    users = ok.load + fraction * (failing.load - ok.load) if closed_loop else None
    if failing.requests_per_s <= ok.requests_per_s:
        # more load brought no more throughput (saturated): what the good level carried is the capacity
        return capacity(ok.requests_per_s, ok.requests_per_s, ok.requests_per_s, users, binding, "saturated", ok)
    rps = ok.requests_per_s + fraction * (failing.requests_per_s - ok.requests_per_s)
    return capacity(rps, ok.requests_per_s, failing.requests_per_s, users, binding, "interpolated", ok)


@dataclass(frozen=True, slots=True)
class SimulatedSetup:
    model: str
    hardware_file: str
    max_batch: int | None


def simulated_setup(directory: str) -> SimulatedSetup | None:
    """The model and hardware profile a sweep of the simulator modelled (``MODEL@HARDWARE.yaml``)."""
    config = Path(directory) / "config.json"
    try:
        profile = read_config(config).simulator_profile or ""
    except ConfigError:
        return None
    if "@" not in profile:
        return None
    model, _, rest = profile.partition("@")
    hardware_file, *options = rest.split(",")
    if not hardware_file.endswith(".yaml") and not Path(hardware_file).exists():  # a shipped profile's name
        hardware_file = str(SHIPPED_PROFILES / f"{hardware_file}.yaml")
    max_batch = next((int(o.split("=")[1]) for o in options if o.startswith("max_batch=") and o[10:].isdigit()), None)
    return SimulatedSetup(model, hardware_file, max_batch)
