"""Metrics layer: the server's own account of a level's requests, joined with loadgen's, and
where each millisecond of a request's time to first token went.

Per completed request that the server accounted for (llama.cpp ``timings``, TGI headers, or an
OpenTelemetry span joined by trace id), its TTFT as loadgen measured it splits into:

- **client**: send lag, from the intended send time to the write (loadgen's own lateness);
- **transit**: the rest, between the two clocks (client TTFT − send lag − server TTFT): the
  request's way in and the first token's way out over the network, and the server's own work
  outside its account (HTTP parsing before its clock starts; detokenising and writing the token
  after it stamped it) — a server that falls behind writing its streams shows here, not in queue;
- **front end**: the server's time before its scheduler queued the request (tokenising, the
  API server) — server TTFT − queue − prefill, where the server reports all three;
- **queue** and **prefill**, as the server reports them;

and **decode** (the server's, first token to last) follows. The parts' means add up to the mean
client TTFT, so a stacked chart of means is exact (percentiles do not add). Read lag is not a
part: chunks are stamped when the kernel received them, so a late read never enters the TTFT.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.metrics import request_metrics as rm
from loadgen.metrics.histogram import Histogram
from loadgen.metrics.results import Distribution, ServerAccount, ServerJoin
from loadgen.records import SERVER_TIMING_PARTS, RequestRecord

DERIVED_PARTS = ("client_overhead_ms", "transit_ms", "frontend_ms")
MIN_JOIN_RATE = 0.95  # a level whose spans cover fewer of its requests says so


class ServerTally:
    """The server's account of a level's completed requests, part by part, with the parts
    derived from loadgen's own figures of each request."""

    def __init__(self) -> None:
        self.requests = 0
        self.sources: Counter[str] = Counter()
        self.parts: dict[str, Histogram] = {}
        self.transit_negative = 0  # requests whose server TTFT exceeded loadgen's wait for its first token

    def part(self, name: str) -> Histogram:
        histogram = self.parts.get(name)
        if histogram is None:
            histogram = self.parts[name] = Histogram.latency()
        return histogram

    def count(self, record: RequestRecord, timings: Mapping[str, object]) -> None:
        self.requests += 1
        self.sources[str(timings.get("source"))] += 1
        values = {part: float(value) for part in SERVER_TIMING_PARTS
                  if isinstance(value := timings.get(part), (int, float)) and not isinstance(value, bool)}  # fmt: skip
        for part, value in values.items():
            self.part(part).record(round(value * 1e6))
        queue, prefill = values.get("queue_ms"), values.get("prefill_ms")
        server_ttft = values.get("ttft_ms")
        if server_ttft is None and queue is not None and prefill is not None:
            server_ttft = queue + prefill
        if server_ttft is not None and queue is not None and prefill is not None:
            self.part("frontend_ms").record(max(0, round((server_ttft - queue - prefill) * 1e6)))
        send_lag_ns = rm.schedule_lag_ns(record)
        if send_lag_ns is None:
            return
        self.part("client_overhead_ms").record(max(0, send_lag_ns))
        ttft_ns = rm.ttft_ns(record)
        if ttft_ns is None or server_ttft is None:
            return
        transit_ns = ttft_ns - send_lag_ns - round(server_ttft * 1e6)
        if transit_ns < 0:
            self.transit_negative += 1
        self.part("transit_ms").record(max(0, transit_ns))

    def state(self) -> dict[str, Any]:
        return {"requests": self.requests, "sources": dict(self.sources), "transit_negative": self.transit_negative,
                "parts": {name: histogram.state() for name, histogram in self.parts.items()}}  # fmt: skip

    def merge(self, state: Mapping[str, Any]) -> None:
        self.requests += state.get("requests", 0)
        self.sources.update(state.get("sources", {}))
        self.transit_negative += state.get("transit_negative", 0)
        for name, histogram in state.get("parts", {}).items():
            self.part(name).add_state(histogram)

    def account(self, completed: int, join: ServerJoin | None = None) -> ServerAccount | None:
        """The level's section, or None when the server accounted for none of its requests (and no
        join was asked for)."""
        if not self.requests and join is None:
            return None
        distributions = {name: Distribution.of(histogram.stats()) for name, histogram in self.parts.items()}
        return ServerAccount(sources=dict(self.sources), requests=self.requests,
                             share=round(self.requests / completed, 4) if completed else None,
                             transit_negative=self.transit_negative, join=join, **distributions)  # fmt: skip


def join_note(joined: int, completed: int, unmatched: int) -> str | None:
    """What a level's join says when it is not whole: under ``MIN_JOIN_RATE`` of its completed
    requests joined, or spans of its requests that match none of them."""
    notes = []
    if completed and joined / completed < MIN_JOIN_RATE:
        notes.append(f"only {joined} of {completed} completed requests ({joined / completed:.0%}) joined with a "
                     f"server span (under {MIN_JOIN_RATE:.0%}): the breakdown covers those alone")  # fmt: skip
    if unmatched:
        notes.append(f"{unmatched} spans of this level's traces match no completed request")
    return "; ".join(notes) or None


TTFT_PARTS = (("client", "client_overhead_ms"), ("transit", "transit_ms"), ("front end", "frontend_ms"),
              ("queue", "queue_ms"), ("prefill", "prefill_ms"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class TtftBreakdown:
    """The means of the parts of TTFT a level's account has, in the order a request meets them
    (``TTFT_PARTS``); ``total`` is their sum, the mean TTFT of the requests accounted for when all
    the parts are there."""

    means: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.means.values())


def ttft_breakdown(account: ServerAccount | None) -> TtftBreakdown | None:
    if account is None:
        return None
    means = {name: mean for name, part in TTFT_PARTS if (mean := account.mean(part)) is not None}
    return TtftBreakdown(means) if means else None


def breakdown_growth(levels: Sequence[tuple[str, ServerAccount | None]]) -> tuple[str, ...]:
    """From each level to the next that both have a breakdown: how much the TTFT parts' sum grew,
    and which part grew most."""
    known = [(label, breakdown.means) for label, account in levels
             if (breakdown := ttft_breakdown(account)) is not None and len(breakdown.means) >= 2]  # fmt: skip
    lines = []
    for (before_label, before), (after_label, after) in itertools.pairwise(known):
        deltas = {name: after[name] - before[name] for name in after if name in before}
        if not deltas:
            continue
        top = max(deltas, key=lambda name: deltas[name])
        rest = ", ".join(f"{name} {delta:+.2f}" for name, delta in deltas.items() if name != top)
        lines.append(f"{before_label} → {after_label}: TTFT mean {sum(deltas.values()):+.2f} ms, most of it "
                     f"{top} ({deltas[top]:+.2f} ms; {rest})")  # fmt: skip
    return tuple(lines)
