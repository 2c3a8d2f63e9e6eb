"""Run tier: the one exit policy. Every command that measures levels (run, sweep, find-max, compare,
locust) ends here: its judged summaries in, one ``Outcome`` (exit code and why) out.

The facts are decided once, when a level is judged (``loadgen.run.judge``): its validity verdict
(``mostly_failed`` is the ``--max-error-rate`` decision), its threshold outcomes, its lost records.
This module only reads them, in one order of precedence:

1. ``INTERRUPTED`` (130): a signal stopped the command; what was measured is written, partial.
2. ``ERRORS`` (3): a level's requests mostly failed, none completed, or a worker process died.
3. ``OUTPUT`` (74): a result file or listener lost records (the figures are whole, the files not).
4. ``THRESHOLDS`` (99): a ``--fail-on`` threshold was breached.
5. ``OK`` (0).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from loadgen.metrics.results import RunSummary


class ExitCode(enum.IntEnum):
    """The process exit codes of ``loadgen`` (README, "Exit codes")."""

    OK = 0
    UNUSABLE_ENDPOINT = 1  # the preflight found the endpoint unusable
    USAGE = 2  # bad input: a flag, scenario, prompt file or profile
    ERRORS = 3  # a level's requests mostly failed, or none completed
    INTERNAL = 70  # an unexpected exception (sysexits EX_SOFTWARE)
    OUTPUT = 74  # results incomplete: a file could not be written, or records were lost (EX_IOERR)
    THRESHOLDS = 99  # as k6: a --fail-on threshold was breached
    INTERRUPTED = 130  # SIGINT or SIGTERM


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command's levels add up to: the exit code and one line for each reason."""

    code: ExitCode
    reasons: tuple[str, ...] = ()


def decide(summaries: Sequence[RunSummary], *, interrupted: bool, names: Sequence[str] = ()) -> Outcome:
    """The exit code and its reasons for a command's judged level summaries (pure). ``names``: the
    variant of each summary, where a command has several (compare)."""
    labels = (
        [f"{name} {summary.label}" for name, summary in zip(names, summaries, strict=True)]
        if names
        else [summary.label for summary in summaries]
    )
    if interrupted:
        return Outcome(ExitCode.INTERRUPTED, ("interrupted: results so far were written and marked partial",))
    failing = tuple(f"{label}: {line}" for label, summary in zip(labels, summaries, strict=True)
                    if (line := _failing(summary)))  # fmt: skip
    if failing:
        return Outcome(ExitCode.ERRORS, failing)
    incomplete = [label for label, summary in zip(labels, summaries, strict=True) if summary.records_lost]
    if incomplete:
        return Outcome(ExitCode.OUTPUT, (f"results incomplete at {', '.join(incomplete)}: records were lost (see "
                                         "output_errors / listener_failures in summary.json)",))  # fmt: skip
    breached = [f"{label}: {threshold.line}" for label, summary in zip(labels, summaries, strict=True)
                for threshold in summary.thresholds_breached]  # fmt: skip
    if breached:
        return Outcome(ExitCode.THRESHOLDS, ("thresholds breached: " + "; ".join(breached),))
    return Outcome(ExitCode.OK)


def _failing(summary: RunSummary) -> str | None:
    if summary.lost_workers:
        return (f"worker process {', '.join(summary.lost_workers)} died; its records on disk are merged, the level "
                "is partial")  # fmt: skip
    validity = summary.validity
    if validity is None or "mostly_failed" not in validity.marks:
        return None
    return validity.reasons[validity.marks.index("mostly_failed")]  # marks and reasons pair up
