"""Metrics layer: a baseline against a candidate at one load level (``loadgen compare``), and
``compare.json`` as typed objects.

Speedups (baseline ÷ candidate) of TTFT, TPOT and end-to-end medians with 95 % block-bootstrap
intervals (1,000 resamples, seeded), the throughput ratio, and a paired comparison: request i
carries the same prompt in every variant, so the share of requests the candidate served faster
end to end. A crossover is the first level where the candidate no longer helps (95 % interval of
the end-to-end speedup above 1×), after one where it did (``candidate_verdict``).
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from loadgen.metrics.request_metrics import RequestFigures
from loadgen.metrics.results import RunSummary, Section, Validity, read_json_file
from loadgen.records import RequestRecord

BOOTSTRAP_RESAMPLES = 1000
CACHE_SHARE_TOLERANCE = 0.05  # prompt share served from the prefix cache, between the variants
MIN_SUCCESSFUL = 4  # below this many successful requests in a variant, a level gives no speedup
LENGTH_TOLERANCE = 0.02
SPEEDUP_METRICS = ("ttft", "tpot", "e2e")


class Speedup(Section, frozen=True, kw_only=True):
    speedup: float | None = None
    low: float | None = None  # the 95 % interval; None: too few blocks for one
    high: float | None = None
    blocks: tuple[int, int] | None = None  # resampled blocks: baseline, candidate
    reason: str | None = None  # why there is no speedup or no interval

    def text(self, without_interval: str = "no interval") -> str:
        """``1.85× (1.62–2.03)``; ``–`` when there is no speedup."""
        if self.speedup is None:
            return "–"
        if self.low is None or self.high is None:
            return f"{self.speedup:.2f}× ({without_interval})"
        return f"{self.speedup:.2f}× ({self.low:.2f}–{self.high:.2f})"


class RequestCounts(Section, frozen=True, kw_only=True):
    completed: int | None = None
    failed: int | None = None


class PerRole(Section, frozen=True, kw_only=True):
    """A figure of the baseline and of the candidate."""

    baseline: float | None = None
    candidate: float | None = None


class CountsPerRole(Section, frozen=True, kw_only=True):
    baseline: RequestCounts = RequestCounts()
    candidate: RequestCounts = RequestCounts()

    def failed_text(self) -> str:
        """``baseline/candidate`` failed requests, ``–`` where not counted."""
        return "/".join(
            "–" if counts.failed is None else str(counts.failed) for counts in (self.baseline, self.candidate)
        )


class Comparison(Section, frozen=True, kw_only=True):
    ttft: Speedup = Speedup()
    tpot: Speedup = Speedup()
    e2e: Speedup = Speedup()
    bootstrap: str | None = None
    throughput_ratio: float | None = None
    paired_requests: int = 0
    cached_input_tokens: PerRole = PerRole()
    cache_hits_differ: bool = False
    requests: CountsPerRole = CountsPerRole()
    paired_candidate_faster: float | None = None
    output_tokens_mean: PerRole = PerRole()
    lengths_match: bool = True
    identical_outputs: float | None = None  # greedy assisted decoding must reproduce the baseline (--save-text)
    candidate_acceptance_rate: float | None = None  # the server's own speculative-decoding counters
    validity: dict[str, Validity | None] = msgspec.field(default_factory=dict)  # by variant name

    def speedup(self, metric: str) -> Speedup:
        """The speedup of ``ttft``, ``tpot`` or ``e2e``."""
        return {"ttft": self.ttft, "tpot": self.tpot, "e2e": self.e2e}[metric]


class ComparedLevel(Section, frozen=True, kw_only=True):
    level: str
    candidate: str
    comparison: Comparison


class VariantRecord(Section, frozen=True, kw_only=True):
    name: str
    target: str
    extra_body: dict[str, Any] = msgspec.field(default_factory=dict)


class CompareResult(Section, frozen=True, kw_only=True):
    """``compare.json``: the variants, and a comparison per level and candidate."""

    baseline: str
    variants: tuple[VariantRecord, ...] = ()
    levels: tuple[ComparedLevel, ...] = ()

    def rows(self, candidate: str) -> list[ComparedLevel]:
        return [level for level in self.levels if level.candidate == candidate]


def read_compare(path: Path) -> CompareResult:
    return CompareResult.from_json(read_json_file(path), str(path))


@dataclass(frozen=True, slots=True)
class Measured:
    """One successful request's figures, by its index (the same prompt in every variant)."""

    text: str | None
    tokens: int
    figures: RequestFigures

    def metric(self, name: str) -> float | None:
        return self.figures.metric(name)


def measured_requests(directory: Path) -> dict[int, Measured]:
    values = {}
    for line in (directory / "requests.jsonl").read_text().splitlines():
        record = RequestRecord.from_json_dict(json.loads(line))
        if record.warmup or record.error_kind or record.first_token_ns is None or record.end_ns is None:
            continue
        values[record.index] = Measured(record.output_text, record.output_tokens or 0, RequestFigures.of(record))
    return values


def _blocks(values: dict[int, Measured], metric: str, block: int) -> list[list[float]]:
    """The metric's values in blocks of ``block`` requests in send order: requests that ran side
    by side (one batch at concurrency ``block``) share their fate, so they are resampled together."""
    ordered = [value for index in sorted(values) if (value := values[index].metric(metric)) is not None]
    return [ordered[i : i + block] for i in range(0, len(ordered), block)]


def _speedup(base: list[list[float]], cand: list[list[float]], rng: random.Random, metric: str) -> Speedup:
    """Median ratio with a 95 % block-bootstrap interval (whole blocks resampled, see ``_blocks``)."""
    base_n, cand_n = sum(map(len, base)), sum(map(len, cand))
    if base_n == 0 and cand_n == 0 and metric == "tpot":
        return Speedup(reason="no TPOT: the answers were not streamed (or came in one piece)")
    if base_n < MIN_SUCCESSFUL or cand_n < MIN_SUCCESSFUL:
        return Speedup(reason=f"too few successful requests for a speedup ({base_n} baseline, {cand_n} candidate; "
                              f"at least {MIN_SUCCESSFUL} each)")  # fmt: skip

    def resampled_median(blocks: list[list[float]]) -> float:
        # kept above zero: a resample may draw only 0 ms values (e.g. TPOT of chunks stamped alike)
        return max(statistics.median([value for block in rng.choices(blocks, k=len(blocks)) for value in block]), 1e-9)

    base_median = statistics.median([v for b in base for v in b])
    cand_median = statistics.median([v for b in cand for v in b])
    if cand_median <= 0 or base_median <= 0:
        return Speedup(reason=f"a median {metric} of 0 ms gives no ratio")
    estimate = base_median / cand_median
    if len(base) < 2 or len(cand) < 2:
        return Speedup(speedup=round(estimate, 4), blocks=(len(base), len(cand)),
                       reason="every request ran in one batch: one run gives no interval (send more "
                              "requests)")  # fmt: skip
    ratios = sorted(resampled_median(base) / resampled_median(cand) for _ in range(BOOTSTRAP_RESAMPLES))
    low, high = ratios[int(0.025 * BOOTSTRAP_RESAMPLES)], ratios[int(0.975 * BOOTSTRAP_RESAMPLES) - 1]
    return Speedup(speedup=round(estimate, 4), low=round(low, 4), high=round(high, 4), blocks=(len(base), len(cand)))


def compare_level(base_dir: Path, cand_dir: Path, base: RunSummary, cand: RunSummary, seed: int) -> Comparison:
    """The candidate against the baseline at one level, from both variants' records."""
    rng = random.Random(seed)
    base_values, cand_values = measured_requests(base_dir), measured_requests(cand_dir)
    block = max(1, base.load.concurrency or 1)  # closed loop: a batch of users
    speedups = {
        metric: _speedup(_blocks(base_values, metric, block), _blocks(cand_values, metric, block), rng, metric)
        for metric in SPEEDUP_METRICS
    }
    base_tps, cand_tps = base.throughput.output_tokens_per_s, cand.throughput.output_tokens_per_s
    paired_indices = base_values.keys() & cand_values.keys()
    e2e = {i: (base_values[i].figures.e2e_ms, cand_values[i].figures.e2e_ms) for i in paired_indices}
    paired = [(b, c) for b, c in e2e.values() if b is not None and c is not None]
    shares = [(summary.tokens.cached_input_total or 0) / summary.tokens.input_total if summary.tokens.input_total
              else 0.0 for summary in (base, cand)]  # fmt: skip
    base_tokens = statistics.fmean(v.tokens for v in base_values.values()) if base_values else 0.0
    cand_tokens = statistics.fmean(v.tokens for v in cand_values.values()) if cand_values else 0.0
    texts = [(base_values[i].text, cand_values[i].text) for i in paired_indices
             if base_values[i].text is not None and cand_values[i].text is not None]  # fmt: skip
    return Comparison(
        ttft=speedups["ttft"],
        tpot=speedups["tpot"],
        e2e=speedups["e2e"],
        bootstrap=f"blocks of {block} consecutive requests resampled whole (requests that ran side by side)",
        throughput_ratio=round(cand_tps / base_tps, 4) if base_tps and cand_tps else None,
        paired_requests=len(paired),
        cached_input_tokens=PerRole(baseline=base.tokens.cached_input_total, candidate=cand.tokens.cached_input_total),
        cache_hits_differ=abs(shares[0] - shares[1]) > CACHE_SHARE_TOLERANCE,
        requests=CountsPerRole(
            baseline=RequestCounts(completed=base.requests.completed, failed=base.requests.failed),
            candidate=RequestCounts(completed=cand.requests.completed, failed=cand.requests.failed),
        ),
        paired_candidate_faster=round(sum(c < b for b, c in paired) / len(paired), 4) if paired else None,
        output_tokens_mean=PerRole(baseline=round(base_tokens, 2), candidate=round(cand_tokens, 2)),
        lengths_match=bool(base_tokens) and abs(cand_tokens - base_tokens) <= LENGTH_TOLERANCE * base_tokens,
        identical_outputs=round(sum(a == b for a, b in texts) / len(texts), 4) if texts else None,
    )


def _helped(level: ComparedLevel) -> bool:
    """Faster end to end beyond doubt: the whole 95 % interval of the speedup above 1×."""
    e2e = level.comparison.e2e
    return e2e.low is not None and e2e.low > 1


def _fair(level: ComparedLevel) -> bool:
    """Both variants' levels valid (a level judged by neither counts as fair: nothing said otherwise)."""
    return all(validity is None or validity.valid for validity in level.comparison.validity.values())


@dataclass(frozen=True, slots=True)
class CandidateVerdict:
    """What a candidate's levels add up to, decided once here and only rendered elsewhere."""

    text: str
    crossover: str | None = None  # the first fair level where it stopped helping, after one where it helped
    fair: bool = True  # False: no level was valid for both variants; no winner can be named


def candidate_verdict(levels: list[ComparedLevel], candidate: str) -> CandidateVerdict:
    """A winner only among levels valid for both variants; a crossover only between a level where
    the candidate helped (95 % interval above 1×) and a later one where it did not."""
    fair = [level for level in levels if _fair(level)]
    excluded = len(levels) - len(fair)
    if not fair:
        return CandidateVerdict(f"no verdict: no level was valid for both variants ({len(levels)} INVALID), so "
                                "neither is faster here", fair=False)  # fmt: skip
    note = f" ({excluded} INVALID level{'s' if excluded > 1 else ''} left out)" if excluded else ""
    helped = [level for level in fair if _helped(level)]
    if len(helped) == len(fair):
        return CandidateVerdict(f"{candidate} is faster end to end at every valid level measured{note}")
    if not helped:
        slower = [level.level for level in fair if (e2e := level.comparison.e2e).high is not None and e2e.high < 1]
        if slower:
            return CandidateVerdict(f"{candidate} never helped end to end: slower at {', '.join(slower)}{note}")
        return CandidateVerdict(f"{candidate} was not faster beyond doubt at any valid level (every interval "
                                f"reaches 1× or there is none){note}")  # fmt: skip
    first_helped = fair.index(helped[0])
    stopped = next((level for level in fair[first_helped + 1 :] if not _helped(level)), None)
    if stopped is not None and all(not _helped(level) for level in fair[fair.index(stopped) :]):
        return CandidateVerdict(f"crossover: {candidate} helps end to end up to {helped[-1].level} and no longer at "
                                f"{stopped.level}{note}", crossover=stopped.level)  # fmt: skip
    return CandidateVerdict(f"{candidate} is faster end to end at {', '.join(level.level for level in helped)} only"
                            f"{note}")  # fmt: skip
