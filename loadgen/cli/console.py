"""CLI tier: the console as the run tier's events (``loadgen.run.events.RunEvents``): a live
status line while a level runs, each level's figures, and at the end the tables, the reasons for
the exit code and where the results are."""

from __future__ import annotations

from contextlib import AbstractContextManager

from rich.console import Console

from loadgen.metrics.results import RunSummary
from loadgen.report.console import (
    LiveStatus,
    breakdown_table,
    print_run,
    sweep_table,
    telemetry_table,
    triton_line,
)
from loadgen.report.console_compare import compare_lines, compare_table
from loadgen.run.events import Finished, Progress, Tone
from loadgen.run.outcome import ExitCode

STYLES = {Tone.NOTE: "dim", Tone.INFO: None, Tone.GOOD: "bold green", Tone.WARNING: "bold yellow",
          Tone.PROBLEM: "bold red"}  # fmt: skip


class ConsoleEvents:
    def __init__(self, console: Console) -> None:
        self.console = console

    def say(self, text: str, tone: Tone = Tone.INFO) -> None:
        self.console.print(text, style=STYLES[tone], markup=False)

    def live(self, progress: Progress) -> AbstractContextManager[object]:
        load = progress.load
        return LiveStatus(self.console, progress.label, progress.snapshot, progress.elapsed_s, load.requests,
                          load.duration_s)  # fmt: skip

    def level_done(self, label: str, summary: RunSummary, sweep: bool) -> None:
        validity = summary.validity
        if not sweep:
            if summary.server is not None:
                self.say(triton_line(summary))
            print_run(self.console, summary)
            return
        if validity is not None and not validity.valid:
            self.say(f"INVALID {label}: {'; '.join(validity.reasons)}", Tone.PROBLEM)
        latency, throughput = summary.latency_ms, summary.throughput
        figures = [f"TTFT p50 {_ms(latency.ttft.p50)} ms", f"TPOT p50 {_ms(latency.tpot.p50)} ms",
                   f"{_ms(throughput.output_tokens_per_s)} output tok/s"]  # fmt: skip
        self.say(f"{label}: {summary.completed} ok, {summary.failed} failed · " + " · ".join(figures))

    def finished(self, finished: Finished) -> None:
        summaries = finished.summaries
        if finished.compared is not None:
            result = finished.compared
            for candidate in [variant.name for variant in result.variants[1:]]:
                self.console.print(compare_table(result.baseline, candidate, result.rows(candidate)))
                for line in compare_lines(result, candidate):
                    self.console.print(line)
        elif finished.sweep and summaries:
            self.console.print(sweep_table(sorted(summaries, key=_load_order), finished.slo))
            breakdown = breakdown_table(summaries)
            if breakdown is not None:
                self.console.print(breakdown)
            for growth in finished.ttft_growth:
                self.say(growth)
        if finished.find_max is not None:
            self._find_max(finished)
        if any(summary.telemetry for summary in summaries):
            self.console.print(telemetry_table(summaries))
        if finished.thresholds_asked:
            self._thresholds(summaries)
        self.say(f"Results in {finished.output_dir}", Tone.NOTE)
        tone = Tone.WARNING if finished.outcome.code is ExitCode.INTERRUPTED else Tone.PROBLEM
        for reason in finished.outcome.reasons:
            self.say(reason, tone)

    def _thresholds(self, summaries: tuple[RunSummary, ...]) -> None:
        self.say("thresholds (--fail-on):")
        for summary in summaries:
            for outcome in summary.thresholds or ():
                mark = "✓" if outcome.passed else "✗"
                self.console.print(f"  {mark} {summary.label}: {outcome.line}",
                                   style=None if outcome.passed else "red", markup=False)  # fmt: skip

    def _find_max(self, finished: Finished) -> None:
        found = finished.find_max
        assert found is not None
        if found.passed is None:
            self.say("find-max: even the first level broke the SLOs", Tone.PROBLEM)
        elif found.failed is None:
            self.say(f"find-max: every level up to {found.passed:g} {found.unit} met the SLOs (raise the range's end)")
        else:
            self.say(f"find-max: {found.passed:g} {found.unit} is the highest load meeting the SLOs "
                     f"({found.failed:g} {found.unit} broke them)", Tone.GOOD)  # fmt: skip


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _load_order(summary: RunSummary) -> tuple[float, float, int]:
    load = summary.load
    return (load.concurrency or 0, load.rate or 0, load.batch_size)
