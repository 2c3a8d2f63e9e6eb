"""Report layer: the console. A live status line while a level runs; a table at the end.

Renders the typed summaries of ``loadgen.metrics.results`` (the objects written to ``summary.json``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from loadgen.config import SloTarget
from loadgen.metrics.aggregate import LiveSnapshot
from loadgen.metrics.comparison import ComparedLevel, Comparison
from loadgen.metrics.results import (
    LATENCY_NAMES,
    PERCENTILES,
    Distribution,
    GpuFigures,
    HostFigures,
    MeanMax,
    ProcessFigures,
    RunSummary,
    ServerAccount,
    ServerFigures,
    Telemetry,
    TritonModelFigures,
    Validity,
    samples_needed,
)
from loadgen.metrics.server_account import TTFT_PARTS, ttft_breakdown
from loadgen.plan.knee import level_passes, sweep_knee
from loadgen.records import SERVER_TIMING_PARTS

LATENCY_ROWS = (
    ("ttft", "TTFT"),
    ("ttfot", "TTFOT (answer)"),
    ("tpot", "TPOT"),
    ("itl", "ITL"),
    ("itl_chunk", "ITL per chunk"),
    ("e2e", "End-to-end"),
    ("schedule_lag", "Send lag"),
    ("read_lag", "Read lag"),
)


def _ms(value: Any) -> str:
    if value is None:
        return "–"
    number = float(value)
    if number >= 1000:
        return f"{number:,.0f}"
    if number >= 100:
        return f"{number:.1f}"
    return f"{number:.2f}"


def _number(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):,.{digits}f}"


class LiveStatus:
    """A one-line status with an ETA: refreshed in place on a terminal; elsewhere (CI logs, pipes)
    printed as a plain line every ``PLAIN_INTERVAL_S``."""

    PLAIN_INTERVAL_S = 10.0

    def __init__(
        self,
        console: Console,
        label: str,
        snapshot: Callable[[], LiveSnapshot],
        elapsed_s: Callable[[], float],
        target_requests: int | None = None,
        duration_s: float | None = None,
    ) -> None:
        self._target = f"/{target_requests}" if target_requests else ""
        self._target_requests = target_requests
        self._duration_s = duration_s
        self._console = console
        self._timer: asyncio.TimerHandle | None = None
        self._label = label
        self._snapshot = snapshot
        self._elapsed_s = elapsed_s
        self._live = Live(
            get_renderable=self._render,
            console=console,
            refresh_per_second=4,
            transient=True,
            auto_refresh=console.is_terminal,
        )

    def _render(self) -> Text:
        snap = self._snapshot()
        text = Text()
        text.append(f"{self._label}  ", style="bold cyan")
        text.append(f"{self._elapsed_s():6.1f}s  done {snap.completed + snap.failed}{self._target}")
        if snap.failed:
            text.append(f"  failed {snap.failed}", style="bold red")
        if snap.warmup:
            text.append(f"  warm-up {snap.warmup}", style="dim")
        text.append(f"  TTFT p50 {_ms(snap.ttft_p50_ms)} ms p99 {_ms(snap.ttft_p99_ms)} ms")
        text.append(f"  {_number(snap.output_tokens_per_s, 0)} output tok/s")
        eta = self._eta_s(snap.completed + snap.failed)
        if eta is not None:
            text.append(f"  ETA {eta:.0f}s", style="bold")
        return text

    def _eta_s(self, done: int) -> float | None:
        elapsed = self._elapsed_s()
        estimates = []
        if self._duration_s:
            estimates.append(max(0.0, self._duration_s - elapsed))
        if self._target_requests and done and elapsed > 0:
            estimates.append(max(0.0, (self._target_requests - done) * elapsed / done))
        return min(estimates) if estimates else None

    def _print_plain(self) -> None:
        self._console.print(self._render(), soft_wrap=True)
        self._timer = asyncio.get_running_loop().call_later(self.PLAIN_INTERVAL_S, self._print_plain)

    def __enter__(self) -> LiveStatus:
        if self._console.is_terminal:
            self._live.__enter__()
        else:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return self
            self._timer = loop.call_later(self.PLAIN_INTERVAL_S, self._print_plain)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._console.is_terminal:
            self._live.__exit__(None, None, None)


def run_table(summary: RunSummary) -> Table:
    latency = summary.latency_ms
    table = Table(
        title=f"{summary.api} · {summary.model or 'default model'} · {_load_label(summary)}",
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("latency (ms)")
    for column in ("count", "mean", "p50", "p90", "p99", "p99.9", "max"):
        table.add_column(column, justify="right")
    thin = False
    for key, label in LATENCY_ROWS:
        stats = latency.metric(key)
        if not stats.known or (key == "read_lag" and not stats.count):
            continue  # a result from before read lag was measured, or not kernel-stamped
        if key == "ttfot" and not summary.tokens.reasoning_total:
            continue  # no reasoning before the answers: TTFOT is TTFT
        table.add_row(label, str(stats.count), _ms(stats.mean), *(percentile_cell(stats, name) for name in
                      ("p50", "p90", "p99", "p99_9")), _ms(stats.max))  # fmt: skip
        thin = thin or bool(stats.thin_percentiles)
    if thin:
        table.caption = THIN_LEGEND
    return table


THIN_MARK = "~"
THIN_LEGEND = (
    f"{THIN_MARK} too few samples for that percentile: its 95 % interval reaches past the largest sample "
    f"(p99 needs {samples_needed(PERCENTILES['p99']):,}, p99.9 {samples_needed(PERCENTILES['p99_9']):,})"
)


def percentile_cell(stats: Distribution, name: str) -> str:
    """A percentile in ms, marked when too few samples stand behind it (``Distribution.thin``)."""
    value = _ms(stats.statistic(name))
    return value + THIN_MARK if stats.thin(name) else value


def facts_lines(summary: RunSummary) -> list[Text]:
    requests, throughput, counting = summary.requests, summary.throughput, summary.token_counting
    lines = [
        Text(
            f"requests: {requests.completed} completed, {requests.failed} failed"
            + (
                f", {requests.cancelled_at_end} still running at the end (cancelled after --drain-timeout)"
                if requests.cancelled_at_end
                else ""
            )
            + f" ({requests.warmup_excluded} warm-up excluded) in {_number(summary.measured_window_s, 2)} s · "
            f"{_number(throughput.requests_per_s, 2)} req/s · "
            f"{_number(throughput.output_tokens_per_s)} output tok/s"
            f" · {_number(throughput.input_tokens_per_s)} input tok/s"
        )
    ]
    if requests.errors_by_kind:
        kinds = ", ".join(f"{kind} {count}" for kind, count in requests.errors_by_kind.items())
        first = next(iter(requests.first_error_by_kind.values()), "")
        lines.append(Text(f"errors: {kinds} — first: {first}", style="red"))
    goodput = summary.goodput
    if goodput:
        slo = ", ".join(f"{metric}≤{value:g}ms" for metric, value in goodput.slo_ms.items())
        lines.append(
            Text(
                f"goodput ({slo}): {_number((goodput.fraction or 0) * 100)}% of requests, "
                f"{_number(goodput.requests_per_s, 2)} good req/s"
            )
        )
    answers = summary.answers
    if answers:
        lines.append(Text(f"answers: {answers.correct}/{answers.checked} correct ({answers.accuracy:.1%})"))
    confidence = summary.confidence
    if confidence and confidence.count:
        lines.append(Text(f"confidence (exp of the mean token log-prob): p50 {confidence.p50 or 0:.3f}, "
                          f"min {confidence.min or 0:.3f}, over {confidence.count} requests"))  # fmt: skip
    if counting.output_method is None:
        lines.append(Text("token counts: none (no request completed)", style="dim"))
    else:
        lines.append(Text(f"token counts: output from {counting.output_method}, input from "
                          f"{counting.input_method}", style="dim"))  # fmt: skip
    server = summary.telemetry.server if summary.telemetry else None
    own = (server.own_latency_ms if server else None) or {}
    if own:
        ours = summary.latency_ms
        parts = [f"{metric.upper()} {figures.mean:.2f} ms (loadgen {ours.metric(metric).mean or 0:.2f})"
                 for metric, figures in own.items() if metric in LATENCY_NAMES]  # fmt: skip
        lines.append(Text("server's own means (its histograms, same window): " + " · ".join(parts), style="dim"))
    account = summary.server_timings
    if account:
        lines += server_account_lines(account, summary.completed)
    reasoning, output = summary.tokens.reasoning_total, summary.tokens.output_total
    if reasoning:
        share = f" ({reasoning / output:.0%} of the output tokens)" if output else ""
        lines.append(Text(f"reasoning: {reasoning:,} tokens of thinking before the answers in "
                          f"{summary.tokens.reasoning_requests or 0:,} requests{share}: TTFT is the first token of "
                          "any kind, TTFOT the answer's first; TPOT counts every token", style="dim"))  # fmt: skip
    cached, prompt = summary.tokens.cached_input_total, summary.tokens.input_total
    if cached:
        share = f" ({cached / prompt:.0%} of the prompt tokens)" if prompt else ""
        lines.append(Text(f"prefix cache: {cached:,} prompt tokens served from the server's cache{share}: TTFT "
                          "is then partly a cache hit, not prefill", style="yellow"))  # fmt: skip
    validity = summary.validity
    if summary.client.saturated and not validity:  # a judged level's verdict names the cause, once
        lines.append(
            Text(
                "warning: the load generator was saturated (CPU or schedule lag): latencies include client delay",
                style="bold yellow",
            )
        )
    if summary.partial:
        lines.append(Text("partial result: the run was interrupted", style="bold yellow"))
    if validity:
        checked = f"checked: {', '.join(validity.checked)}, error rate"
        if validity.valid:
            lines.append(Text(f"verdict: valid ({checked})", style="green"))
        else:
            lines.append(Text(f"verdict: INVALID: {'; '.join(validity.reasons)} ({checked})", style="bold red"))
    return lines


VALIDITY_CODES = {"mostly_failed": "✗failed", "client_saturated": "✗client", "host_busy": "✗host",
                  "target_lagging": "✗target", "partial": "part"}  # fmt: skip


VALIDITY_LEGEND = ("valid: ✗client = loadgen was the bottleneck, ✗host = the machine was busy with other work, "
                   "✗target = the server lagged its own model, ✗failed = mostly failed, part = cut short")  # fmt: skip


def validity_cell(summary: RunSummary) -> str:
    """A level's verdict in a few plain characters (readable without colour): ``ok`` or its marks."""
    return verdict_cell(summary.validity)


def verdict_cell(validity: Validity | None) -> str:
    if not validity:
        return "–"
    return " ".join(VALIDITY_CODES[mark] for mark in validity.marks) or "ok"


def invalid_variants(comparison: Comparison) -> str:
    """'baseline ✗target' for the variants of a compared level whose level was not valid, or ''."""
    judged = comparison.validity.items()
    return ", ".join(f"{name} {verdict_cell(v)}" for name, v in judged if v and not v.valid)


def invalid_levels(rows: Sequence[ComparedLevel]) -> list[str]:
    """'c=128 (assisted ✗client)' for each compared level a variant's verdict made unfair."""
    return [f"{row.level} ({mark})" for row in rows if (mark := invalid_variants(row.comparison))]


def turn_table(summary: RunSummary) -> Table | None:
    """Multi-turn sessions: each turn's TTFT beside its prompt, which grows with the history, and
    how much of the prompt the server had cached."""
    if not summary.turns:
        return None
    table = Table(title="by turn (sessions)", title_justify="left", box=box.SIMPLE_HEAD, caption_justify="left")
    for column in ("turn", "requests", "TTFT p50 ms", "TTFT p99 ms", "input tok", "cached tok"):
        table.add_column(column, justify="right", no_wrap=True)
    for figures in summary.turns:
        table.add_row(str(figures.turn), str(figures.requests), _ms(figures.ttft_ms.p50),
                      percentile_cell(figures.ttft_ms, "p99"), _number(figures.input_tokens_mean, 0),
                      _number(figures.cached_input_tokens_mean, 0))  # fmt: skip
    if any(figures.ttft_ms.thin("p99") for figures in summary.turns):
        table.caption = THIN_LEGEND
    return table


def print_run(console: Console, summary: RunSummary) -> None:
    console.print(run_table(summary))
    turns = turn_table(summary)
    if turns is not None:
        console.print(turns)
    for line in facts_lines(summary):
        console.print(line)


def _load_label(summary: RunSummary) -> str:
    load = summary.load
    if load.trace_file:
        return f"trace {load.trace_file} at {load.trace_speed or 1:g}× speed"
    if load.stages:
        unit = "users" if load.closed else "req/s"
        return "stages " + " → ".join(f"{stage.target:g}" for stage in load.stages) + f" {unit}"
    if load.closed:
        return f"concurrency {load.concurrency}"
    return f"{load.arrival} arrivals at {load.rate or 0:g} req/s"


def level_label(summary: RunSummary) -> str:
    return summary.label


def sweep_table(summaries: Sequence[RunSummary], slo: Sequence[SloTarget] = ()) -> Table:
    """One row per level; fits an 80-column terminal. ◆ marks the knee, ✓ the levels within the
    percentile SLOs (when given)."""
    knee = sweep_knee(summaries)
    percentile_slo = tuple(t for t in slo if not t.per_request)
    with_goodput = any(summary.goodput for summary in summaries)
    with_server = any(_server_model(summary) for summary in summaries)
    with_batches = any(summary.load.batch_size > 1 for summary in summaries)
    # no vertical rules and one space between columns: the headline sweep fits 80 columns uncut, a
    # thin-percentile mark included (the rules took 11 columns)
    table = Table(title="sweep (latencies in ms)", title_justify="left", padding=(0, 1), pad_edge=False,
                  collapse_padding=True, box=box.SIMPLE_HEAD, caption_justify="left")  # fmt: skip
    with_tpot = any(summary.latency_ms.tpot.p50 is not None for summary in summaries)
    columns = ["level", "req/s", "out\ntok/s", "TTFT\np50", "TTFT\np99", "TPOT\np50", "TPOT\np99", "E2E\np50", "fail"]
    open_loop = any(summary.throughput.offered_requests_per_s for summary in summaries)
    if open_loop:  # the rate requests were due (the label says the setting) beside the achieved one
        columns.insert(1, "offered\nreq/s")
    if not with_tpot:  # not streamed: TTFT is end-to-end and there is no TPOT
        columns = [c for c in columns if not c.startswith("TPOT")]
    if with_goodput:
        columns.append("good")
    if with_batches:
        columns += ["seq/s", "ms/\nseq"]
    if with_server:
        columns += ["srv\nbatch", "srv q/c\nms"]
    with_validity = any(summary.validity for summary in summaries)
    if with_validity:
        columns.append("valid")
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for index, summary in enumerate(summaries):
        latency, throughput = summary.latency_ms, summary.throughput
        marks = ("◆" if index == knee else "") + (
            "✓" if percentile_slo and level_passes(summary, percentile_slo) else ""
        )
        row = [
            level_label(summary) + marks,
            *((_number(throughput.arrived_requests_per_s, 2),) if open_loop else ()),
            _number(throughput.requests_per_s, 2),
            _number(throughput.output_tokens_per_s, 0),
            _ms(latency.ttft.p50),
            percentile_cell(latency.ttft, "p99"),
            *((_ms(latency.tpot.p50), percentile_cell(latency.tpot, "p99")) if with_tpot else ()),
            _ms(latency.e2e.p50),
            str(summary.requests.failed),
        ]
        if with_goodput:
            fraction = summary.goodput.fraction if summary.goodput else None
            row.append("–" if fraction is None else f"{fraction * 100:.0f}%")
        if with_batches:
            batch = summary.load.batch_size
            e2e = latency.e2e.p50
            row += [_number(throughput.sequences_per_s, 1), _ms(e2e / batch if e2e is not None else None)]
        if with_server:
            row += _server_cells(_server_model(summary))
        if with_validity:
            row.append(validity_cell(summary))
        invalid = summary.validity is not None and not summary.validity.valid
        table.add_row(*row, style="red" if invalid else None)  # the valid column says why without colour
    notes = []
    if knee is not None:
        notes.append("◆ knee of throughput vs latency")
    if percentile_slo:
        notes.append("✓ within the SLOs")
    if any(summary.partial for summary in summaries):
        notes.append("*: interrupted, partial")
    if any(summary.latency_ms.ttft.thin("p99") or summary.latency_ms.tpot.thin("p99") for summary in summaries):
        notes.append(THIN_LEGEND)
    if with_validity and any(validity_cell(summary) != "ok" for summary in summaries):
        notes.append(VALIDITY_LEGEND)
    if with_batches:
        notes.append("b: prompts per request; ms/seq: E2E p50 over the batch")
    if with_server:
        notes.append("srv: Triton's average batch, and queue/compute ms per request")
    if notes:
        table.caption = " · ".join(notes)
    return table


def _server_model(summary: RunSummary) -> TritonModelFigures | None:
    return summary.server.model if summary.server is not None else None


def _server_cells(figures: TritonModelFigures | None) -> list[str]:
    if not figures:
        return ["–", "–"]
    split = figures.per_request_ms
    queue_compute = f"{split.queue:.1f}/{split.compute:.1f}" if split else "–"
    return [_number(figures.average_batch_size, 2), queue_compute]


def triton_line(summary: RunSummary) -> str:
    """One line on what Triton did during a level (from its metrics)."""
    figures = _server_model(summary)
    if not figures:
        return "Triton metrics: the model did no work in this level"
    split = figures.per_request_ms
    parts = [f"{figures.requests_succeeded} succeeded, {figures.requests_failed} failed",
             f"{figures.executions} executions"]  # fmt: skip
    if figures.average_batch_size is not None:
        parts.append(f"average batch {figures.average_batch_size:g}")
    if split:
        parts.append(f"per request: queue {split.queue:.2f} ms, compute {split.compute:.2f} ms")
    return "Triton metrics: " + " · ".join(parts)


def gpu_figure(
    telemetry: Telemetry, figure: Callable[[GpuFigures], MeanMax | None], combine: Callable[[list[float]], float]
) -> float | None:
    """One figure over every GPU (their mean utilisation, their summed power)."""
    values = [reading.mean for gpu in telemetry.gpu_figures() if (reading := figure(gpu)) is not None]
    return combine(values) if values else None


def mean_of(values: list[float]) -> float:
    return sum(values) / len(values)


def server_account_lines(account: ServerAccount, completed: int | None) -> list[Text]:
    """The server's own account of a level: its parts' p50s, where the mean TTFT went, the join."""
    parts = [f"{part.removesuffix('_ms')} p50 {_ms(figures.p50)} ms" for part in SERVER_TIMING_PARTS
             if (figures := getattr(account, part)) is not None]  # fmt: skip
    sources = ", ".join(account.sources) or "no server account"
    lines = [Text(f"server's own account ({sources}, {account.requests} of {completed or 0} requests): "
                  + " · ".join(parts), style="dim")]  # fmt: skip
    breakdown = ttft_breakdown(account)
    if breakdown is not None:
        means = breakdown.means
        added = f" = {breakdown.total:.2f} ms" if len(means) > 1 else ""
        decode = f"; then decode {_ms(account.mean('decode_ms'))} ms" if account.decode_ms is not None else ""
        lines.append(Text("where TTFT went (means): " + " + ".join(f"{name} {mean:.2f}" for name, mean in means.items())
                          + added + decode, style="dim"))  # fmt: skip
    join = account.join
    if join is not None:
        style = "yellow" if join.note else "dim"
        lines.append(Text(f"OTLP join: {join.joined} of {join.completed} completed requests ({_share(join.rate)}; "
                          f"{join.sent} sent), "
                          f"{join.unmatched} spans without a request, {join.other_traces} of other traces; waited "
                          f"{join.waited_s:.2f} s for the last spans", style=style))  # fmt: skip
    return lines


def _share(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.0%}"


def breakdown_table(summaries: Sequence[RunSummary]) -> Table | None:
    """A sweep's TTFT split per level (means, ms): loadgen's part, the transit's, the server's."""
    rows = [(summary, breakdown) for summary in summaries
            if (breakdown := ttft_breakdown(summary.server_timings)) is not None]  # fmt: skip
    if not rows:
        return None
    table = Table(title="where TTFT went per level (means, ms; the server's own account)", title_justify="left",
                  padding=(0, 1), pad_edge=False)  # fmt: skip
    names = [name for name, _ in TTFT_PARTS if any(name in breakdown.means for _, breakdown in rows)]
    for column in ("level", *names, "= TTFT", "decode", "joined"):
        table.add_column(column, justify="right", no_wrap=True)
    for summary, breakdown in rows:
        account = summary.server_timings
        assert account is not None
        join = account.join
        table.add_row(level_label(summary), *(_number(breakdown.means.get(name)) for name in names),
                      _number(breakdown.total), _number(account.mean("decode_ms")),
                      _share(join.rate if join is not None else account.share))  # fmt: skip
    return table


def telemetry_table(summaries: Sequence[RunSummary]) -> Table:
    """One row per level: the accelerator and server state beside the load."""
    table = Table(title="telemetry per level", title_justify="left", padding=(0, 1), pad_edge=False)
    for column in (
        "level",
        "GPU\nutil %",
        "GPU\nW",
        "J per\nout tok",
        "KV %\npeak",
        "queue\nmax",
        "batch\nmean",
        "host\nCPU %",
        "client\nCPU %",
    ):
        table.add_column(column, justify="right", no_wrap=True)
    for summary in summaries:
        telemetry = summary.telemetry or Telemetry()
        server = telemetry.server or ServerFigures()
        host, process = telemetry.host or HostFigures(), telemetry.process or ProcessFigures()

        def stat(reading: MeanMax | None, peak: bool = False) -> float | None:
            return None if reading is None else reading.max if peak else reading.mean

        table.add_row(
            level_label(summary),
            _number(gpu_figure(telemetry, lambda gpu: gpu.util_percent, mean_of)),
            _number(gpu_figure(telemetry, lambda gpu: gpu.power_w, sum)),
            _number(telemetry.joules_per_output_token, 3),
            _number(stat(server.kv_cache_usage_percent, peak=True)),
            _number(stat(server.requests_waiting, peak=True), 0),
            _number(stat(server.requests_running)),
            _number(stat(host.cpu_percent)),
            _number(stat(process.cpu_percent)),
        )
    return table
