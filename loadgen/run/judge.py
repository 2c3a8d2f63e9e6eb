"""Run tier: a level's verdict, decided once, where its summary is completed: validity (with the
``--max-error-rate`` decision) and the ``--fail-on`` threshold outcomes. Every command judges its
levels here (run, sweep, find-max, compare, the worker merge's level, Locust's test), and the exit
policy (``loadgen.run.outcome``) and every renderer read what it wrote."""

from __future__ import annotations

from dataclasses import dataclass

from msgspec.structs import replace

from loadgen.metrics.results import RunSummary, TargetLag
from loadgen.metrics.thresholds import Threshold, outcomes
from loadgen.metrics.validity import DEFAULT_MAX_ERROR_RATE, level_validity


@dataclass(frozen=True, slots=True)
class Judgement:
    """The rules a command's levels are judged by."""

    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    thresholds: tuple[Threshold, ...] = ()

    def judge(self, summary: RunSummary, lag: TargetLag | None = None) -> RunSummary:
        """The summary with the target's own lag (when measured), its verdict and its threshold outcomes."""
        summary = replace(summary, target=lag if lag is not None else summary.target)
        validity = level_validity(summary, self.max_error_rate)
        judged = outcomes(self.thresholds, summary) if self.thresholds else None
        return replace(summary, validity=validity, thresholds=judged)
