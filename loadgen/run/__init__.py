"""Run tier: runs, sweeps, comparisons and find-max searches over the engine; the library's entry point.

    from loadgen.run import run
    from loadgen.scenario.plan import plan_from_flags

    result = run(plan_from_flags({"endpoint": "http://127.0.0.1:8000", "concurrency": "16", "requests": "200"}))
    result.exit_code, result.summaries[0].latency_ms.ttft.p99

``run`` writes the same result files as ``loadgen run``/``sweep`` (a sweep, or a find-max search,
when the plan says so) and returns every level's ``RunSummary``; ``compare_variants`` does what
``loadgen compare`` does and returns its ``CompareResult`` and each variant's summaries. Both say
nothing unless given ``events`` (``loadgen.run.events.RunEvents``; the CLI's console is one).

Every command is built of the same three pieces: the ``Target`` it measures (``target``), one
``measure_level`` per level (``level``: the load, its telemetry, the server's metrics, the verdict
of ``judge``, ``summary.json`` written once), and one exit decision (``outcome.decide``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompareRun", "RunResult", "compare_variants", "run"]


def __getattr__(name: str) -> Any:
    # imported on first use: ``python -m loadgen.run.workers`` must not import itself through the package
    if name in ("RunResult", "run"):
        from loadgen.run import session

        return getattr(session, name)
    if name in ("CompareRun", "compare_variants"):
        from loadgen.run import compare

        return getattr(compare, name)
    raise AttributeError(f"module 'loadgen.run' has no attribute {name!r}")
