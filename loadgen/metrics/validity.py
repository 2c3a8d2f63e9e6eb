"""Metrics layer: is a level's result to be believed? A verdict from what loadgen knows about
its own delay, the target's own lag (the simulator's, or any server that exports the same
counters) and the error rate, so a run never looks clean when it is not.

Verdicts, the first that applies: ``mostly_failed`` (errors over the limit, or nothing completed),
``client_saturated`` (loadgen was the bottleneck: ``summary.client.saturated``), or ``host_busy``
(loadgen was late while using little CPU itself and the machine's CPUs were all busy: other work
delayed it, and its latencies include that delay),
``target_lagging`` (the simulated server fell behind its own model by more than
``TARGET_LAG_LIMIT``: its latencies are its host's, not the modelled hardware's), else ``valid``.
``partial`` (a level cut short) is a mark beside the verdict, not a verdict.
"""

from __future__ import annotations

from loadgen.engine.runner import StopReason
from loadgen.metrics.results import Client, RunSummary, TargetLag, Validity

TARGET_LAG_LIMIT = 0.05  # of the modelled engine time
DEFAULT_MAX_ERROR_RATE = 0.05
VERDICTS = ("valid", "mostly_failed", "client_saturated", "host_busy", "target_lagging")
HOST_BUSY_PERCENT = 90.0  # the whole machine's CPU
CLIENT_IDLE_PERCENT = 50.0  # of one core: loadgen itself was not what used it


def target_lag(before: dict[str, float] | None, after: dict[str, float] | None) -> TargetLag | None:
    """How far the target fell behind its own schedule between two scrapes, when it says."""
    if not before or not after or "target_modelled_seconds_total" not in after:
        return None
    modelled = after["target_modelled_seconds_total"] - before.get("target_modelled_seconds_total", 0.0)
    late = after.get("target_late_seconds_total", 0.0) - before.get("target_late_seconds_total", 0.0)
    if modelled <= 0:
        return None
    return TargetLag(
        source="loadgen_sim:late_step_seconds_total ÷ loadgen_sim:modelled_step_seconds_total",
        late_s=round(late, 6),
        modelled_s=round(modelled, 6),
        lag_fraction=round(late / modelled, 4),
    )


def level_validity(summary: RunSummary, max_error_rate: float = DEFAULT_MAX_ERROR_RATE) -> Validity:
    marks: list[str] = []
    reasons: list[str] = []
    failing = failed_requests(summary, max_error_rate)
    if failing is not None:
        marks.append("mostly_failed")
        reasons.append(failing)
    client = summary.client
    if client.saturated:
        busy_host = _busy_host(client)
        marks.append("host_busy" if busy_host else "client_saturated")
        reasons.append(busy_host or _client_reason(client))
    target = summary.target
    lag = target.lag_fraction if target is not None else None
    if target is not None and target.lag_fraction > TARGET_LAG_LIMIT:
        marks.append("target_lagging")
        reasons.append(f"the simulated server ran {target.lag_fraction:.0%} behind its modelled engine time "
                       f"({target.late_s:.3f} s late over {target.modelled_s:.3f} s): its host was too "
                       "busy")  # fmt: skip
    if summary.partial or summary.stop_reason in (StopReason.WORKER_LOST.value, StopReason.INTERRUPTED.value):
        marks.append("partial")
        reasons.append(f"cut short ({summary.stop_reason})")
    verdict = next((mark for mark in VERDICTS[1:] if mark in marks), "valid")
    known = ["client lag"] + (["target lag"] if lag is not None else [])
    return Validity(verdict=verdict, valid=verdict == "valid", marks=tuple(marks), reasons=tuple(reasons),
                    checked=tuple(known))  # fmt: skip


def failed_requests(summary: RunSummary, max_error_rate: float) -> str | None:
    """Why a level's requests failed beyond ``--max-error-rate``, or none completed; None if neither."""
    completed, failed, cancelled = summary.completed, summary.failed, summary.requests.cancelled_at_end
    first = next(iter(summary.requests.first_error_by_kind.items()), None)
    cause = f"; first error ({first[0]}): {first[1]}" if first else ""
    if completed == 0 and (failed or cancelled):
        return f"no request completed ({failed} failed, {cancelled} still running at the end){cause}"
    total = completed + failed
    if total and failed / total > max_error_rate:
        return (f"{failed} of {total} requests failed ({100 * failed / total:.1f}%, over --max-error-rate "
                f"{100 * max_error_rate:g}%){cause}")  # fmt: skip
    return None


def _busy_host(client: Client) -> str | None:
    """Why the machine, not loadgen, was the bottleneck, or None: late sends or reads while loadgen
    used little CPU and every core was busy."""
    host, own = client.host_cpu_percent_max, client.cpu_percent_max
    if client.cpu_saturated or host is None or host < HOST_BUSY_PERCENT or (own or 0.0) >= CLIENT_IDLE_PERCENT:
        return None
    late = _lateness(client)
    return (f"the machine was busy with other work (CPU {host:.0f}% of all cores, loadgen at most {own or 0:.0f}% of "
            f"one): {late} were its delay, included in every latency; measure on a quieter machine")  # fmt: skip


def _lags(client: Client, coalesced: bool = False) -> list[str]:
    """The client lags over their limits, as figures."""
    parts = []
    if client.schedule_lag_saturated:
        parts.append(f"send lag p99 {client.send_lag_ms.p99 or 0:.1f} ms")
    if client.read_lag_saturated:
        merged = f", {client.coalesced_chunk_share:.1%} of chunk gaps merged into one read" if coalesced else ""
        parts.append(f"read lag p95 {client.read_lag_ms.p95 or 0:.1f} ms{merged}")
    return parts


def _lateness(client: Client) -> str:
    return " and ".join(_lags(client)) or "its lags"


def _client_reason(client: Client) -> str:
    parts = [f"loadgen's CPU at {client.cpu_percent_max or 0:.0f}% of a core"] if client.cpu_saturated else []
    parts += _lags(client, coalesced=True)
    return "loadgen was the bottleneck: " + (", ".join(parts) or "its own checks")
