"""Run tier: what a command tells the person watching it, as events. The run tier decides what
happened and in which words; an implementation decides how it looks: the CLI's console
(``loadgen.cli.console.ConsoleEvents``), or nothing at all (``SilentEvents``, the library's
default). The run tier never imports the console."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loadgen.config import LoadConfig, SloTarget
from loadgen.metrics.aggregate import LiveSnapshot
from loadgen.metrics.comparison import CompareResult
from loadgen.metrics.results import FindMaxOutcome, RunSummary
from loadgen.run.outcome import Outcome


class Tone(enum.Enum):
    NOTE = "note"  # set-up facts: which simulator, which model, where metrics come from
    INFO = "info"
    GOOD = "good"
    WARNING = "warning"  # a figure to be read with care
    PROBLEM = "problem"  # a figure that is not to be believed, or a result that failed


@dataclass(frozen=True, slots=True)
class Progress:
    """A level in progress, for a live status line."""

    label: str
    snapshot: Callable[[], LiveSnapshot]
    elapsed_s: Callable[[], float]
    load: LoadConfig


@dataclass(frozen=True, slots=True)
class Finished:
    """A command's end: its levels, in the order run, and what they add up to."""

    summaries: tuple[RunSummary, ...]
    outcome: Outcome
    output_dir: Path
    slo: tuple[SloTarget, ...] = ()
    sweep: bool = False
    find_max: FindMaxOutcome | None = None
    compared: CompareResult | None = None
    thresholds_asked: bool = False
    ttft_growth: tuple[str, ...] = ()  # a sweep's: which part of TTFT grew from level to level


class RunEvents(Protocol):
    def say(self, text: str, tone: Tone = Tone.INFO) -> None:
        """One line for the person running the command."""

    def live(self, progress: Progress) -> AbstractContextManager[object]:
        """A live status while a level runs."""

    def level_done(self, label: str, summary: RunSummary, sweep: bool) -> None:
        """A level was measured, judged and written: its figures (all of them for a single run,
        one line in a sweep)."""

    def finished(self, finished: Finished) -> None:
        """The command's tables (sweep, comparison, telemetry), its exit reasons, and where the results are."""


class SilentEvents:
    """Says nothing: the library's default."""

    def say(self, text: str, tone: Tone = Tone.INFO) -> None:
        pass

    def live(self, progress: Progress) -> AbstractContextManager[object]:
        return contextlib.nullcontext()

    def level_done(self, label: str, summary: RunSummary, sweep: bool) -> None:
        pass

    def finished(self, finished: Finished) -> None:
        pass
