"""Report layer, HTML: one run's page (latency table and distributions from the ``.hlog`` files, latency over
time, per-request views, telemetry over time, errors, Triton's figures) and the merged section."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from hdrh.histogram import HdrHistogram

from loadgen.errors import ConfigError
from loadgen.metrics.hlog import merged_intervals, read_intervals
from loadgen.metrics.request_metrics import RequestFigures
from loadgen.metrics.results import RunConfig, RunSummary
from loadgen.metrics.server_account import TTFT_PARTS, ttft_breakdown
from loadgen.report.console import (
    level_label,
)
from loadgen.report.files import read_records, read_request_records
from loadgen.report.html.blocks import html_table, metadata_block, percentile, thin_note
from loadgen.report.plots import Chart, long_tail

LATENCY_ROWS = (
    ("ttft", "TTFT"),
    ("ttfot", "TTFOT (answer)"),
    ("tpot", "TPOT"),
    ("itl", "ITL"),
    ("itl_chunk", "ITL per chunk"),
    ("e2e", "E2E"),
    ("schedule_lag", "send lag"),
    ("read_lag", "read lag"),
)


def latency_table(summary: RunSummary, table_id: str) -> str:
    rows: list[list[object]] = []
    for key, label in LATENCY_ROWS:
        stats = summary.latency_ms.metric(key)
        if not stats.known or (key == "ttfot" and not summary.tokens.reasoning_total):
            continue  # a result written before this metric existed; TTFOT is TTFT without reasoning
        percentiles = (percentile(stats, name) for name in ("p50", "p90", "p99", "p99_9"))
        rows.append([label, stats.count, stats.mean, *percentiles, stats.max])
    headers = ["latency (ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"]
    return html_table(headers, rows, table_id) + thin_note(rows)


def turns_block(summary: RunSummary, prefix: str) -> str:
    """Multi-turn sessions: TTFT by turn beside the prompt's length and its cached share."""
    if not summary.turns:
        return ""
    turns = summary.turns
    rows: list[list[object]] = [
        [
            t.turn,
            t.requests,
            t.ttft_ms.p50,
            percentile(t.ttft_ms, "p99"),
            t.input_tokens_mean,
            t.cached_input_tokens_mean,
        ]
        for t in turns
    ]
    chart = Chart(f"{prefix}-turns", "TTFT by turn", "turn", "ms")
    numbers = [figures.turn for figures in turns]
    chart.line("TTFT p50", numbers, [figures.ttft_ms.p50 for figures in turns], unit="ms")
    chart.line("TTFT p99", numbers, [figures.ttft_ms.p99 for figures in turns], dashed=True, unit="ms")
    headers = ["turn", "requests", "TTFT p50 (ms)", "TTFT p99 (ms)", "input tokens (mean)", "cached tokens (mean)"]
    return ("<h3>by turn (sessions)</h3>" + html_table(headers, rows, f"{prefix}-turns-table") + thin_note(rows)
            + f'<div class="charts">{chart.html()}</div>')  # fmt: skip


def distribution_chart(directory: Path, name: str, label: str, chart_id: str) -> str:
    """The CDF of a metric from its .hlog file (all intervals merged), or its Locust workers' files."""
    own = directory / f"{name}.hlog"
    paths = [own] if own.is_file() else sorted(directory.glob(f"worker-*/{name}.hlog"))
    if not paths:
        return ""
    return cdf_chart(merged_intervals(paths), label, chart_id)


def cdf_chart(merged: HdrHistogram, label: str, chart_id: str) -> str:
    """The distribution as percentiles against latency on a log axis, so a long tail does not
    squeeze the body of the curve into a corner."""
    total = merged.get_total_count()
    if not total:
        return ""
    xs, ys, seen = [], [], 0
    for item in merged.get_recorded_iterator():
        seen += item.count_added_in_this_iter_step
        xs.append(item.value_iterated_to / 1000.0)
        ys.append(100.0 * seen / total)
    chart = Chart(chart_id, f"{label}: cumulative distribution", f"{label} (ms, log)", "% of samples ≤", log_x=True)
    return chart.line(label, xs, ys, unit="%", markers=False).html()


def over_time(directory: Path, prefix: str, warmup_s: float | None = None) -> str:
    """Per interval of the ``.hlog`` files: TTFT and ITL percentiles and requests per interval, so
    drift, warm-up and stalls show; the warm-up span is shaded."""
    series: dict[str, tuple[list[float], list[float], list[float], list[int]]] = {}
    for name in ("ttft", "itl", "e2e"):
        path = directory / f"{name}.hlog"
        if not path.is_file():
            continue
        times, p50, p99, counts = [], [], [], []
        for logged in read_intervals(path):
            interval = logged.histogram
            if not interval.get_total_count():
                continue
            times.append(logged.start_s)
            p50.append(interval.get_value_at_percentile(50) / 1000.0)
            p99.append(interval.get_value_at_percentile(99) / 1000.0)
            counts.append(interval.get_total_count())
        if times:
            series[name] = (times, p50, p99, counts)
    if not series:
        return ""
    origin = min(times[0] for times, *_ in series.values())
    latency = Chart(f"{prefix}-over-time", "latency over time (per interval)", "seconds into the run", "ms (log)",
                    log_y=True)  # fmt: skip
    for name, (times, p50, p99, _) in series.items():
        rel = [t - origin for t in times]
        latency.line(f"{name.upper()} p50", rel, p50, unit="ms")
        latency.line(f"{name.upper()} p99", rel, p99, dashed=True, unit="ms")
    if warmup_s:
        latency.band(0.0, warmup_s, "warm-up")
    charts = latency.html()
    if "e2e" in series:
        times, _, _, counts = series["e2e"]
        rate = Chart(f"{prefix}-rate-over-time", "completed requests per interval", "seconds into the run",
                     "requests")  # fmt: skip
        charts += rate.line("completed", [t - origin for t in times], counts, unit="requests").html()
    return charts


MAX_POINTS = 2000


def per_request_views(directory: Path, prefix: str) -> str:
    """From ``requests.jsonl``: TTFT against input length, and ITL against token position."""
    path = directory / "requests.jsonl"
    if not path.is_file():
        return ""
    inputs: list[float] = []
    ttfts: list[float] = []
    gaps_by_position: dict[int, list[float]] = {}
    for record in read_request_records(path):
        ttft_ms = RequestFigures.of(record).ttft_ms
        if record.warmup or record.error_kind or ttft_ms is None:
            continue
        if record.input_tokens is not None and len(inputs) < MAX_POINTS:
            inputs.append(record.input_tokens)
            ttfts.append(ttft_ms)
        chunks = record.chunk_ns
        for position in range(1, len(chunks)):
            gaps_by_position.setdefault(position, []).append((chunks[position] - chunks[position - 1]) / 1e6)
    charts = ""
    if inputs:
        chart = Chart(f"{prefix}-ttft-input", "TTFT against input length", "input tokens", "TTFT (ms)")
        charts += chart.scatter("requests", inputs, ttfts).html()
    if gaps_by_position:
        positions = sorted(gaps_by_position)
        mean = [sum(gaps_by_position[p]) / len(gaps_by_position[p]) for p in positions]
        high = [sorted(gaps_by_position[p])[int(0.99 * (len(gaps_by_position[p]) - 1))] for p in positions]
        chart = Chart(f"{prefix}-itl-position", "inter-chunk gap against position in the answer", "chunk position",
                      "ms", log_y=long_tail(mean + high))  # fmt: skip
        chart.line("mean", positions, mean, unit="ms", markers=False)
        chart.line("p99", positions, high, dashed=True, unit="ms", markers=False)
        charts += chart.html()
    return charts


TELEMETRY_FIELDS = (  # (source, value name, chart title, unit)
    ("gpu", "util_percent", "GPU utilisation", "%"), ("gpu", "power_w", "GPU power", "W"),
    ("gpu", "memory_used_bytes", "GPU memory used", "bytes"),
    ("server", "kv_cache_usage", "KV cache usage", "fraction"),
    ("server", "requests_running", "running batch", "requests"),
    ("server", "requests_waiting", "queue", "requests"),
    ("host", "cpu_percent", "host CPU", "%"),
)  # fmt: skip


def telemetry_over_time(directory: Path, levels: Sequence[RunSummary], prefix: str) -> str:
    """Telemetry samples (``telemetry.jsonl``) over the run, with each level's window shaded."""
    path = directory / "telemetry.jsonl"
    if not path.is_file():
        return ""
    samples = list(read_records(path))
    if not samples:
        return ""
    origin = min(sample["t_ns"] for sample in samples)
    charts = ""
    for source, name, title, unit in TELEMETRY_FIELDS:
        chart = Chart(f"{prefix}-telemetry-{name}", f"{title} over time", "seconds", unit)
        devices: dict[str, tuple[list[float], list[float]]] = {}
        for sample in samples:
            value = sample.get(name)  # a sample's readings sit beside t_ns, source and device
            if sample.get("source") == source and value is not None:
                times, values = devices.setdefault(str(sample.get("device")), ([], []))
                times.append((sample["t_ns"] - origin) / 1e9)
                values.append(value)
        for device, (times, values) in devices.items():
            chart.line(f"{source} {device}", times, values, unit=unit, markers=False)
        if devices:
            for summary in levels:
                clock = summary.clock
                first, last = (clock.window_ns if clock else None) or (None, None)
                if clock is not None and first is not None and last is not None:
                    start = clock.monotonic_start_ns
                    chart.band((start + first - origin) / 1e9, (start + last - origin) / 1e9, level_label(summary))
            charts += chart.html()
    return f'<h3>telemetry over time</h3><div class="charts">{charts}</div>' if charts else ""


def throughput_block(summary: RunSummary, table_id: str) -> str:
    """What the run delivered: requests and tokens per second over the measured window, what
    completed and failed, goodput under the SLOs and each --fail-on threshold (as judged)."""
    throughput, requests = summary.throughput, summary.requests
    rows: list[list[object]] = [
        ["requests completed / failed", f"{requests.completed} / {requests.failed}"],
        ["requests/s", throughput.requests_per_s],
        ["output tokens/s", throughput.output_tokens_per_s],
        ["input tokens/s", throughput.input_tokens_per_s],
        ["measured window (s)", summary.measured_window_s],
    ]
    if throughput.arrived_requests_per_s is not None:
        rows.insert(1, ["offered requests/s (due; set)", f"{throughput.arrived_requests_per_s:,.2f}; "
                                                         f"{throughput.offered_requests_per_s or 0:,.2f}"])  # fmt: skip
    goodput = summary.goodput
    if goodput is not None:
        within = ", ".join(f"{metric} ≤ {limit:g} ms" for metric, limit in goodput.slo_ms.items())
        share = f" ({goodput.fraction:.1%})" if goodput.fraction is not None else ""
        rows.append([f"goodput ({within})", f"{goodput.good_requests} requests{share}, "
                                            f"{goodput.requests_per_s or 0:,.2f}/s"])  # fmt: skip
    for outcome in summary.thresholds or ():
        rows.append([f"--fail-on {outcome.threshold}", ("passed: " if outcome.passed else "BREACHED: ") + outcome.line])
    return html_table(["", ""], rows, table_id, text_columns=1)


def errors_block(summary: RunSummary) -> str:
    errors = summary.requests.errors_by_kind
    if not errors:
        return "<p>errors: none</p>"
    first = summary.requests.first_error_by_kind
    return html_table(
        ["error kind", "count", "first message"],
        [[k, v, first.get(k, "")] for k, v in errors.items()],
        "errors",
        text_columns=1,
    )


def server_table(levels: Sequence[RunSummary], prefix: str) -> str:
    """Triton's own account of each level: the batches it ran, where a request's time went."""
    rows: list[list[object]] = []
    for s in levels:
        figures = s.server.model if s.server else None
        if not figures:
            continue
        split = figures.per_request_ms
        rows.append([level_label(s), figures.requests_succeeded, figures.requests_failed, figures.executions,
                     figures.average_batch_size, *((split.queue, split.compute_input, split.compute_infer,
                                                    split.compute_output) if split else (None,) * 4)])  # fmt: skip
    if not rows:
        return ""
    headers = ["level", "succeeded", "failed", "executions", "average batch", "queue ms", "input ms", "infer ms",
               "output ms"]  # fmt: skip
    return "<h3>Triton server metrics per level</h3>" + html_table(headers, rows, f"{prefix}-server")


BREAKDOWN_NOTE = (
    "client: send lag · transit: client TTFT − send lag − server TTFT (the network both ways, and the "
    "server's work outside its own clock: HTTP parsing, detokenising, writing) · front end: server "
    "TTFT − queue − prefill · queue, prefill, decode: the server's own figures"
)


def breakdown_block(levels: Sequence[RunSummary], prefix: str, growth: Sequence[str] = ()) -> str:
    """Where each level's TTFT went (the server's own account joined with loadgen's): the parts'
    means stacked per level, decode beside, the join's quality, and which part grew."""
    joins = [(summary, summary.server_timings.join) for summary in levels if summary.server_timings]
    notes = [f"{level_label(summary)}: {join.note}" for summary, join in joins if join is not None and join.note]
    said = "".join(f"<p class='warning'>{escape(note)}</p>" for note in notes)
    shown = [(summary, breakdown) for summary in levels
             if (breakdown := ttft_breakdown(summary.server_timings)) is not None]  # fmt: skip
    if not shown:  # a join that found nothing is said all the same
        return "<h3>where TTFT went</h3>" + said if notes else ""
    names = [name for name, _ in TTFT_PARTS if any(name in breakdown.means for _, breakdown in shown)]
    labels = [level_label(summary) for summary, _ in shown]
    chart = Chart(f"{prefix}-breakdown", "where TTFT went (means; they add up to the mean TTFT)", "level", "ms",
                  stacked=True)  # fmt: skip
    for name in names:
        chart.bars(name, labels, [breakdown.means.get(name) for _, breakdown in shown], unit="ms")
    rows: list[list[object]] = []
    for (summary, breakdown), label in zip(shown, labels, strict=True):
        account = summary.server_timings
        assert account is not None
        join = account.join
        rows.append(
            [
                label,
                *(breakdown.means.get(name) for name in names),
                breakdown.total,
                account.mean("decode_ms"),
                account.requests,
                f"{join.rate:.0%}" if join is not None and join.rate is not None else "–",
            ]
        )
    headers = ["level", *names, "= TTFT", "decode", "requests", "joined"]
    sources = sorted({source for summary, _ in shown for source in (summary.server_timings.sources
                                                                    if summary.server_timings else {})})  # fmt: skip
    said += "".join(f"<p>{escape(line)}</p>" for line in growth)
    return (
        f"<h3>where TTFT went (the server's own account: {escape(', '.join(sources))})</h3>"
        + html_table(headers, rows, f"{prefix}-breakdown-table")
        + said
        + f"<p class='note'>{escape(BREAKDOWN_NOTE)}</p>"
        + f'<div class="charts">{chart.html()}</div>'
    )


def _hlog_files(directory: Path, name: str) -> list[Path]:
    """A metric's interval logs in a result directory: its own, its levels' and its workers'."""
    return sorted(p for pattern in (f"{name}.hlog", f"*/{name}.hlog") for p in directory.glob(pattern))


def merged_section(directories: list[Path]) -> str:
    """One latency table and set of distributions over the .hlog files of several runs, merged exactly."""
    rows, charts = [], []
    for name, label in LATENCY_ROWS:
        files = [path for directory in directories for path in _hlog_files(directory, name)]
        if not files:
            continue
        merged = merged_intervals(files)
        count = merged.get_total_count()
        if not count:
            rows.append([label, 0, None, None, None, None, None, None])
            continue
        values = [merged.get_value_at_percentile(p) / 1000 for p in (50, 90, 99, 99.9)]
        rows.append([label, count, merged.get_mean_value() / 1000, *values, merged.get_max_value() / 1000])
        if name in ("ttft", "itl", "tpot", "e2e"):
            charts.append(cdf_chart(merged, label, f"merged-cdf-{name}"))
    if not rows:
        raise ConfigError("loadgen report --merge: no .hlog files in the directories given")
    names = ", ".join(escape(str(directory)) for directory in directories)
    return (f"<h2>merged: {len(directories)} result directories</h2><p>{names}</p>"
            + html_table(["latency (ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"], rows, "merged-latency")
            + f'<div class="charts">{"".join(charts)}</div>')  # fmt: skip


def run_page(directory: Path, summary: RunSummary, config: RunConfig | None, prefix: str) -> str:
    """One run: its metadata, latencies and their distributions, over time, per request, errors."""
    distributions = "".join(
        distribution_chart(directory, name, label, f"{prefix}-cdf-{name}")
        for name, label in (("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "E2E"))
    )
    return (
        f"<h2>run: {escape(str(directory))}</h2>"
        + metadata_block(summary, config)
        + throughput_block(summary, f"{prefix}-throughput")
        + latency_table(summary, f"{prefix}-latency")
        + turns_block(summary, prefix)
        + f'<div class="charts">{distributions}</div>'
        + "<h3>over time and per request</h3>"
        + f'<div class="charts">{over_time(directory, prefix, summary.load.warmup_s or None)}'
        + f"{per_request_views(directory, prefix)}</div>"
        + errors_block(summary)
        + breakdown_block([summary], prefix)
        + server_table([summary], prefix)
        + telemetry_over_time(directory, [summary], prefix)
    )
