"""Report layer: ``loadgen report DIR [DIR…]`` — one self-contained HTML file (no CDN, works
offline): for each run, sweep or comparison, the metadata, the exact command options, latency
percentile tables and distributions (from the ``.hlog`` files), latency-against-load and
throughput-against-latency curves with the knee, telemetry per level, errors by kind, and
speedups with their intervals and the crossover. Every string taken from results is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen import __version__
from loadgen.config import SloTarget
from loadgen.errors import ConfigError
from loadgen.metrics.comparison import SPEEDUP_METRICS, CompareResult, Comparison, RequestCounts, Speedup, read_compare
from loadgen.metrics.hlog import merged_intervals, read_intervals
from loadgen.metrics.results import (
    FindMaxOutcome,
    ImportedSource,
    RunConfig,
    RunSummary,
    ServerFigures,
    read_config,
    read_summary,
    read_sweep,
)
from loadgen.plan.knee import sweep_knee
from loadgen.plan.planner import CandidatePlan
from loadgen.report.console import (
    VALIDITY_LEGEND,
    gpu_figure,
    invalid_variants,
    level_label,
    mean_of,
    validity_cell,
)
from loadgen.report.files import read_records
from loadgen.report.plan import PlanDocument, read_plan
from loadgen.report.plots import Chart, long_tail, plotly_script
from loadgen.scenario.options import OPTIONS_BY_NAME

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1180px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right;font-size:13px}th{background:#f4f4f4}td.text,th.text{text-align:left}
.chart{width:540px;max-width:100%;margin:8px 16px 8px 0}
.chart.empty{color:#888;font-size:13px}.warn{color:#a60}.empty{color:#888}.charts{display:flex;flex-wrap:wrap}
code{background:#f4f4f4;padding:1px 4px}
"""
LATENCY_ROWS = (
    ("ttft", "TTFT"),
    ("tpot", "TPOT"),
    ("itl", "ITL"),
    ("itl_chunk", "ITL per chunk"),
    ("e2e", "E2E"),
    ("schedule_lag", "send lag"),
    ("read_lag", "read lag"),
)


def _cell(value: object, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return escape(str(value))


def _table(headers: list[str], rows: list[list[object]], table_id: str, text_columns: int = 1) -> str:
    head = "".join(f'<th class="{"text" if i < text_columns else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    header_row = f"<tr>{head}</tr>" if any(headers) else ""  # a key-value table has no header
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"text" if i < text_columns else ""}">{_cell(v)}</td>' for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{escape(table_id)}">{header_row}{body}</table>'


def _metadata(summary: RunSummary, config: RunConfig | None) -> str:
    rows: list[list[object]] = [
        ["endpoint", summary.endpoint],
        ["API", summary.api],
        ["model", summary.model],
        ["started", summary.started_at],
        ["loadgen", summary.loadgen_version],
        ["token counting", summary.token_counting.output_method],
        ["stamps", (summary.clock.stamp_source if summary.clock else None) or "user space (before kernel stamps)"],
    ]
    validity = summary.validity
    if validity:
        rows.append(["verdict", "valid" if validity.valid else "INVALID: " + "; ".join(validity.reasons)])
    lost = [f"{name}: {detail.error}" for name, detail in (summary.output_errors or {}).items()]
    lost += [f"worker {name} died" for name in summary.lost_workers]
    if lost:
        rows.append(["results incomplete", "; ".join(lost)])
    html = _table(["", ""], rows, "metadata", text_columns=2)
    if config:
        html += f"<p>options: <code>{escape(_as_flags(config.options))}</code></p>"
        slos = _slo_texts(config)
        if slos:
            html += f"<p>SLOs: {escape(', '.join(text for text, *_ in slos))}</p>"
    return html


def _imported(source: ImportedSource) -> str:
    """Where an imported sweep's figures came from, what they mean in loadgen's terms, what they lack."""
    rows: list[list[object]] = [["imported from", source.tool], ["files", ", ".join(source.files)]]
    rows += [[f"loadgen {name}", text] for name, text in source.definitions.items()]
    rows += [["lacks", ", ".join(source.lacks)]]
    rows += [["derived", item] for item in source.derived]
    rows += [["assumption", item] for item in source.assumptions]
    note = "Figures measured by another tool and imported: no histograms or per-request records stand behind them."
    return f'<p class="warn">{note}</p>' + _table(["", ""], rows, "imported", text_columns=2)


def _as_flags(options: dict[str, Any]) -> str:
    """The options as flags a user types: only those given (not the defaults), in their own syntax."""
    flags = []
    for name, value in options.items():
        option = OPTIONS_BY_NAME.get(name)
        if option is None or value in (None, False, [], {}, ()) or value == option.default:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif name == "slo":
            flags.append(f"{flag} " + ",".join(_slo_flag(t) for t in value if isinstance(t, dict)))
        elif isinstance(value, list):
            flags.append(f"{flag} " + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value))
        else:
            flags.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(flags) or "(defaults)"


def _slo_flag(recorded: dict[str, Any]) -> str:
    target = SloTarget(**recorded)
    statistic = f"_{target.statistic}" if target.statistic else ""
    return f"{target.metric}{statistic}={target.threshold_ns / 1e6:g}ms"


def _latency_table(summary: RunSummary, table_id: str) -> str:
    rows: list[list[object]] = []
    for key, label in LATENCY_ROWS:
        stats = summary.latency_ms.metric(key)
        if not stats.known:
            continue  # a result written before this metric existed
        rows.append([label, stats.count, stats.mean, stats.p50, stats.p90, stats.p99, stats.p99_9, stats.max])
    return _table(["latency (ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"], rows, table_id)


def _distribution(directory: Path, name: str, label: str, chart_id: str) -> str:
    """The CDF of a metric from its .hlog file (all intervals merged), or its Locust workers' files."""
    own = directory / f"{name}.hlog"
    paths = [own] if own.is_file() else sorted(directory.glob(f"worker-*/{name}.hlog"))
    if not paths:
        return ""
    return _cdf_chart(merged_intervals(paths), label, chart_id)


def _cdf_chart(merged: HdrHistogram, label: str, chart_id: str) -> str:
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


def _mark_levels(chart: Chart, levels: list[RunSummary], xs: list[Any], ys: list[Any], knee: int | None) -> None:
    """Invalid levels as red crosses on the curve (with why on hover), and the knee."""
    bad = [(x, y, f"{level_label(s)}: {validity_cell(s)}") for s, x, y in zip(levels, xs, ys, strict=True)
           if y is not None and validity_cell(s) not in ("ok", "–")]  # fmt: skip
    if bad:
        chart.scatter("not valid", [b[0] for b in bad], [b[1] for b in bad], text=[b[2] for b in bad],
                      symbol="x", color="#d62728")  # fmt: skip
    if knee is not None and ys[knee] is not None:
        chart.mark(xs[knee], ys[knee], "knee")


def _variant_levels(directory: Path, variant: str) -> list[RunSummary]:
    return [read_summary(path) for path in sorted((directory / variant).glob("level-*/summary.json"))]


def _absolute_latencies(directory: Path, report: CompareResult, candidate: str, xs: list[float], prefix: str) -> str:
    """Each variant's own latencies beside the ratios: a speedup of 2× on 5 ms is not one on 5 s."""
    chart = Chart(f"{prefix}-absolute-{candidate}", "each variant's latency (p50)", "load (log)", "ms (log)",
                  log_x=True, log_y=True)  # fmt: skip
    for variant in (report.baseline, candidate):
        levels = _variant_levels(directory, variant)
        loads = [_level_x(s) for s in levels]
        for metric, dashed in (("e2e", False), ("ttft", True)):
            chart.line(f"{variant} {metric.upper()} p50", loads, [s.latency_ms.metric(metric).p50 for s in levels],
                       dashed=dashed, unit="ms", text=[level_label(s) for s in levels])  # fmt: skip
    return chart.html()


def _over_time(directory: Path, prefix: str, warmup_s: float | None = None) -> str:
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


def _per_request_views(directory: Path, prefix: str) -> str:
    """From ``requests.jsonl``: TTFT against input length, and ITL against token position."""
    path = directory / "requests.jsonl"
    if not path.is_file():
        return ""
    inputs: list[float] = []
    ttfts: list[float] = []
    gaps_by_position: dict[int, list[float]] = {}
    for record in read_records(path):
        if record.get("warmup") or record.get("error_kind") or record.get("first_token_ns") is None:
            continue
        if record.get("input_tokens") is not None and len(inputs) < MAX_POINTS:
            inputs.append(record["input_tokens"])
            ttfts.append((record["first_token_ns"] - record["intended_ns"]) / 1e6)
        chunks = record.get("chunk_ns") or []
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


def _telemetry_over_time(directory: Path, levels: Sequence[RunSummary], prefix: str) -> str:
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


def _errors(summary: RunSummary) -> str:
    errors = summary.requests.errors_by_kind
    if not errors:
        return "<p>errors: none</p>"
    first = summary.requests.first_error_by_kind
    return _table(
        ["error kind", "count", "first message"],
        [[k, v, first.get(k, "")] for k, v in errors.items()],
        "errors",
        text_columns=1,
    )


def _batch_sweep(levels: list[RunSummary]) -> bool:
    """Levels that differ only by prompts per request."""
    return (
        len({(s.load.concurrency, s.load.rate) for s in levels}) == 1 and len({s.load.batch_size for s in levels}) > 1
    )


def _level_x(summary: RunSummary, by_batch: bool = False) -> float:
    return float(summary.load.batch_size) if by_batch else summary.load.value


def _sweep(levels: list[RunSummary], prefix: str, slos: list[tuple[str, str, float]] | None = None) -> str:
    by_batch = _batch_sweep(levels)
    levels = sorted(levels, key=lambda s: _level_x(s, by_batch))
    closed = levels[0].load.closed
    x_label = "prompts per request" if by_batch else "concurrent users" if closed else "offered requests/s"

    def shown(metric: str, key: str) -> str:
        """The statistic shown for ``key``: an imported table may carry the mean instead of the median."""
        if key == "p50" and all(s.latency_ms.metric(metric).p50 is None for s in levels):
            return "mean"
        return key

    xs = [_level_x(s, by_batch) for s in levels]
    labels = [level_label(s) for s in levels]
    knee = sweep_knee(levels)

    def against_load(metric: str, title: str) -> str:
        values = {key: [s.latency_ms.metric(metric).statistic(shown(metric, key)) for s in levels]
                  for key in ("p50", "p99")}  # fmt: skip
        chart = Chart(f"{prefix}-{metric}", f"{title} against load", f"{x_label} (log)", "ms", log_x=True,
                      log_y=long_tail(values["p50"] + values["p99"]))  # fmt: skip
        chart.line(f"{metric.upper()} {shown(metric, 'p50')}", xs, values["p50"], text=labels, unit="ms")
        chart.line(f"{metric.upper()} p99", xs, values["p99"], dashed=True, text=labels, unit="ms")
        _mark_levels(chart, levels, xs, values["p99"], knee)
        for text, slo_metric, threshold_ms in slos or []:
            if slo_metric == metric:
                chart.limit(threshold_ms, f"SLO {text}")
        return chart.html()

    pareto = Chart(f"{prefix}-pareto", "throughput against latency (Pareto)", "end-to-end p50 (ms)",
                   "output tokens/s")  # fmt: skip
    e2e = [s.latency_ms.e2e.statistic(shown("e2e", "p50")) for s in levels]
    tokens = [s.throughput.output_tokens_per_s for s in levels]
    pareto.line("levels", e2e, tokens, text=labels, unit="tok/s")
    pareto.traces[-1]["mode"] = "lines+markers+text"
    pareto.traces[-1]["textposition"] = "top left"
    knee_e2e, knee_tokens = (e2e[knee], tokens[knee]) if knee is not None else (None, None)
    if knee is not None and knee_e2e is not None and knee_tokens is not None:
        pareto.mark(knee_e2e, knee_tokens, f"knee ({labels[knee]})")
    _mark_levels(pareto, levels, e2e, tokens, None)
    charts = [against_load("ttft", "TTFT"), against_load("tpot", "TPOT"), pareto.html()]
    rows: list[list[object]] = [
        [
            level_label(s),
            s.throughput.requests_per_s,
            s.throughput.sequences_per_s,
            s.throughput.output_tokens_per_s,
            s.latency_ms.ttft.statistic(shown("ttft", "p50")),
            s.latency_ms.ttft.p99,
            s.latency_ms.tpot.statistic(shown("tpot", "p50")),
            s.latency_ms.tpot.p99,
            s.latency_ms.e2e.statistic(shown("e2e", "p50")),
            s.requests.failed,
            validity_cell(s),
        ]
        for s in levels
    ]
    html = f'<div class="charts">{"".join(charts)}</div>'
    html += _table(
        [
            "level",
            "req/s",
            "seq/s",
            "out tok/s",
            f"TTFT {shown('ttft', 'p50')} (ms)",
            "TTFT p99 (ms)",
            f"TPOT {shown('tpot', 'p50')} (ms)",
            "TPOT p99 (ms)",
            f"E2E {shown('e2e', 'p50')} (ms)",
            "failed",
            "valid",
        ],
        rows,
        f"{prefix}-levels",
    )
    if any(validity_cell(s) not in ("ok", "–") for s in levels):
        html += f'<p class="warn">{escape(VALIDITY_LEGEND)}</p>'
    html += _server_table(levels, prefix)
    measured = [(s, s.telemetry) for s in levels if s.telemetry]
    if measured:
        trows: list[list[object]] = []
        for s, telemetry in measured:
            server = telemetry.server or ServerFigures()
            trows.append(
                [
                    level_label(s),
                    gpu_figure(telemetry, lambda gpu: gpu.util_percent, mean_of),
                    gpu_figure(telemetry, lambda gpu: gpu.power_w, sum),
                    telemetry.joules_per_output_token,
                    server.kv_cache_usage_percent.max if server.kv_cache_usage_percent else None,
                    server.requests_running.mean if server.requests_running else None,
                    server.requests_waiting.max if server.requests_waiting else None,
                    server.spec_acceptance_rate,
                ]
            )
        html += "<h3>telemetry per level</h3>" + _table(
            ["level", "GPU util %", "GPU W", "J per out token", "KV peak %", "running batch (mean)", "queue max",
             "draft acceptance"],
            trows,
            f"{prefix}-telemetry",
        )  # fmt: skip
    return html


def _server_table(levels: Sequence[RunSummary], prefix: str) -> str:
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
    return "<h3>Triton server metrics per level</h3>" + _table(headers, rows, f"{prefix}-server")


def _plan(plan: PlanDocument, prefix: str) -> str:
    """``plan.json`` from ``loadgen plan --output``: the hardware options ranked."""
    target, measured = plan.target, plan.measured_capacity
    slo = ", ".join(f"{k.replace('_', ' ', 1)} ≤ {v:g} ms" for k, v in plan.slo_ms.items())
    capacity = (f"{_cell(measured.requests_per_s)} req/s ({_cell(measured.requests_per_s_low)}–"
                f"{_cell(measured.requests_per_s_high)})" if measured else "–")  # fmt: skip
    demand = f"{target.users} users" if target.users else f"{_cell(target.peak_requests_per_s)} req/s peak"
    headroom = target.headroom
    html = (f"<p>target: {escape(demand)}, headroom {headroom:.0%}; SLOs: {escape(slo)}; measured capacity per "
            f"replica: {capacity}, bound by {escape(_binding_text(measured.binding if measured else None))}</p>"
            if headroom is not None else f"<p>SLOs: {escape(slo)}</p>")  # fmt: skip
    rows: list[list[object]] = [
        [c.profile, c.basis or ("estimate" if c.estimate else "measured"), "yes" if c.feasible else "cannot",
         _binding_text(c.binding), _capacity_text(c),
         _range_text(c.replicas, c.replicas_range[1] if c.replicas_range else None),
         _range_text(c.instances, c.instances_range[1] if c.instances_range else None),
         "–" if c.cost_per_month is None else f"${c.cost_per_month:,.0f}",
         "–" if c.cost_per_million_output_tokens is None else f"${c.cost_per_million_output_tokens:.2f}"]
        for c in plan.candidates
    ]  # fmt: skip
    headers = ["hardware", "basis", "feasible", "binding constraint", "req/s per replica (bracket)", "replicas",
               "instances", "cost per month", "cost per M output tokens"]  # fmt: skip
    costs = [(c, c.cost_per_month) for c in plan.candidates if c.cost_per_month is not None]
    chart = Chart(f"{prefix}-plan-cost", "cost per month of each feasible option", "", "$ per month")
    chart.bars("cost", [f"{c.profile}{' *' if c.estimate else ''}" for c, _ in costs], [cost for _, cost in costs],
               unit="$")  # fmt: skip
    notes = "".join(f"<li>{escape(a)}</li>" for a in plan.assumptions)
    return (html + _table(headers, rows, f"{prefix}-plan", text_columns=4)
            + f'<div class="charts">{chart.html()}</div>' + (f"<ul>{notes}</ul>" if notes else ""))  # fmt: skip


def _binding_text(binding: str | None) -> str:
    return (binding or "–").replace("_p", " p").replace("_mean", " mean").replace("max_batch", "engine max batch")


def _capacity_text(candidate: CandidatePlan) -> str:
    if not candidate.feasible:
        return "–"
    low, high = candidate.capacity_rps_low, candidate.capacity_rps_high
    bracket = f" ({low:.2f}–{high:.2f})" if high is not None else f" (≥ {low:.2f})"
    return f"{candidate.capacity_rps:.2f} req/s{bracket}"


def _range_text(low: object, high: object) -> str:
    if low is None:
        return "–"
    return str(low) if high in (None, low) else f"{low}–{high}"


def _percent(value: object) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "–"


def _pair_validity(comparison: Comparison) -> str:
    """'ok', or the variants whose level was not valid: 'baseline ✗target'."""
    invalid = invalid_variants(comparison)
    return f"✗ {invalid}" if invalid else ("ok" if comparison.validity else "–")


def _compare(report: CompareResult, prefix: str, directory: Path) -> str:
    html = ""
    for candidate in {level.candidate for level in report.levels}:
        rows = report.rows(candidate)
        xs = [float(row.level.split("=")[1].rstrip("*")) for row in rows]
        crossing = next((x for x, row in zip(xs, rows, strict=True) if (row.comparison.e2e.speedup or 2) < 1), None)
        html += f"<h3>{escape(candidate)} against {escape(report.baseline)}</h3>"
        chart = Chart(f"{prefix}-speedup-{candidate}", f"speedup of {candidate} (baseline ÷ candidate, 95% CI)",
                      "load (log)", "speedup ×", log_x=True)  # fmt: skip
        for metric in SPEEDUP_METRICS:
            entries = [_speedup_of(row.comparison, metric) for row in rows]
            low = [e.speedup - e.low if e.speedup is not None and e.low is not None else 0.0 for e in entries]
            high = [e.high - e.speedup if e.speedup is not None and e.high is not None else 0.0 for e in entries]
            chart.line(f"{metric.upper()} speedup", xs, [e.speedup for e in entries], unit="×",
                       text=[row.level for row in rows], errors=(low, high))  # fmt: skip
        chart.limit(1.0, "1× (no change)")
        if crossing is not None:
            chart.mark(crossing, 1.0, "crossover")
        html += '<div class="charts">' + chart.html() + _absolute_latencies(directory, report, candidate, xs, prefix)
        html += "</div>"

        def speedup(entry: Speedup) -> str:
            if entry.speedup is None:
                return "–"
            if entry.low is None or entry.high is None:
                return f"{entry.speedup:.2f}× (no interval)"
            return f"{entry.speedup:.2f}× ({entry.low:.2f}–{entry.high:.2f})"

        def failed(counts: RequestCounts) -> str:
            return "–" if counts.failed is None else str(counts.failed)

        table_rows: list[list[object]] = [
            [
                row.level,
                *(speedup(_speedup_of(row.comparison, metric)) for metric in SPEEDUP_METRICS),
                row.comparison.throughput_ratio,
                _percent(row.comparison.paired_candidate_faster),
                _percent(row.comparison.candidate_acceptance_rate),
                f"{failed(row.comparison.requests.baseline)}/{failed(row.comparison.requests.candidate)}",
                _pair_validity(row.comparison),
            ]
            for row in rows
        ]
        html += _table(
            [
                "level",
                "TTFT",
                "TPOT",
                "end-to-end",
                "tok/s ratio",
                "paired wins",
                "draft acceptance",
                "failed base/cand",
                "valid",
            ],
            table_rows,
            f"{prefix}-speedups",
        )
        unknown = [row for row in rows if row.comparison.e2e.speedup is None]
        for row in unknown:
            reason = row.comparison.e2e.reason or "no successful requests"
            html += f'<p class="warn">{escape(row.level)}: no speedup: {escape(reason)}</p>'
        if crossing:
            html += f"<p><b>crossover:</b> {escape(candidate)} stops helping at load {crossing:g}</p>"
        elif unknown:
            html += f"<p>{escape(candidate)} is faster at the levels with a speedup; {len(unknown)} gave none</p>"
        else:
            html += f"<p>{escape(candidate)} is faster at every level measured</p>"
        if any(not row.comparison.lengths_match for row in rows):
            html += '<p class="warn">output lengths differ between variants: not like for like</p>'
    return html


def _speedup_of(comparison: Comparison, metric: str) -> Speedup:
    return {"ttft": comparison.ttft, "tpot": comparison.tpot, "e2e": comparison.e2e}[metric]


def _section(directory: Path, number: int) -> str:
    html = _results_section(directory, number)
    if (directory / "plan.json").is_file():
        plan = read_plan(directory / "plan.json")
        html += f"<h2>capacity plan: {escape(str(directory))}</h2>" + _plan(plan, f"r{number}")
    if not html:
        raise ConfigError(f"loadgen report {directory}: no summary.json, sweep.json, compare.json or plan.json there")
    return html


def _results_section(directory: Path, number: int) -> str:
    prefix = f"r{number}"
    config = read_config(directory / "config.json") if (directory / "config.json").is_file() else None
    if (directory / "compare.json").is_file():
        report = read_compare(directory / "compare.json")
        return f"<h2>comparison: {escape(str(directory))}</h2>" + _compare(report, prefix, directory)
    if (directory / "sweep.json").is_file():
        sweep = read_sweep(directory / "sweep.json")
        levels = list(sweep.levels)
        about = _imported(sweep.imported) if sweep.imported else _metadata(levels[0], config)
        html = f"<h2>sweep: {escape(str(directory))}</h2>" + about + _sweep(levels, prefix, _slo_texts(config))
        if sweep.find_max:
            html += _find_max(sweep.find_max, levels, config, prefix)
        return html + _levels_over_time(directory, prefix) + _telemetry_over_time(directory, levels, prefix)
    if (directory / "summary.json").is_file():
        summary = read_summary(directory / "summary.json")
        distributions = "".join(
            _distribution(directory, name, label, f"{prefix}-cdf-{name}")
            for name, label in (("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "E2E"))
        )
        return (
            f"<h2>run: {escape(str(directory))}</h2>"
            + _metadata(summary, config)
            + _latency_table(summary, f"{prefix}-latency")
            + f'<div class="charts">{distributions}</div>'
            + "<h3>over time and per request</h3>"
            + f'<div class="charts">{_over_time(directory, prefix, summary.load.warmup_s or None)}'
            + f"{_per_request_views(directory, prefix)}</div>"
            + _errors(summary)
            + _server_table([summary], prefix)
            + _telemetry_over_time(directory, [summary], prefix)
        )
    return ""


def _levels_over_time(directory: Path, prefix: str) -> str:
    """Each level's latency and completions over time, folded away until opened."""
    parts = []
    for number, level_dir in enumerate(sorted(directory.glob("level-*")), 1):
        charts = _over_time(level_dir, f"{prefix}-l{number}")
        if charts:
            parts.append(f"<details><summary>{escape(level_dir.name)}: over time</summary>"
                         f'<div class="charts">{charts}</div></details>')  # fmt: skip
    return "<h3>each level over time</h3>" + "".join(parts) if parts else ""


def _find_max(found: FindMaxOutcome, levels: list[RunSummary], config: RunConfig | None, prefix: str) -> str:
    """The probes in the order they ran (not sorted by load), with the SLOs as lines."""
    slos = _slo_texts(config)
    chart = Chart(f"{prefix}-find-max", "find-max probes, in the order they ran", "probe", "ms (log)", log_y=True)
    order = list(range(1, len(levels) + 1))
    labels = [f"{level_label(s)} {'✓' if s.validity is None or s.validity.valid else '✗'}" for s in levels]
    for metric in ("ttft", "tpot"):
        chart.line(f"{metric.upper()} p99", order, [s.latency_ms.metric(metric).p99 for s in levels], text=labels,
                   unit="ms")  # fmt: skip
    for text, metric, threshold_ms in slos:
        if metric in ("ttft", "tpot"):
            chart.limit(threshold_ms, f"SLO {text}")
    passed = found.passed
    result = (
        "none met the SLOs"
        if passed is None
        else f"{passed:g} {found.unit} met " + (", ".join(t for t, *_ in slos) or "the SLOs")
    )
    return f'<p><b>find-max:</b> {escape(result)}</p><div class="charts">{chart.html()}</div>'


def _slo_texts(config: RunConfig | None) -> list[tuple[str, str, float]]:
    """(``ttft p99 ≤ 500 ms``, metric, threshold ms) for each SLO a run's config recorded."""
    found = []
    for recorded in (config.options.get("slo") if config else None) or []:
        if isinstance(recorded, dict) and "metric" in recorded:
            target = SloTarget(**recorded)
            threshold = target.threshold_ns / 1e6
            found.append((f"{target.metric} {target.statistic or 'per request'} ≤ {threshold:g} ms", target.metric,
                          threshold))  # fmt: skip
    return found


def _hlog_files(directory: Path, name: str) -> list[Path]:
    """A metric's interval logs in a result directory: its own, its levels' and its workers'."""
    return sorted(p for pattern in (f"{name}.hlog", f"*/{name}.hlog") for p in directory.glob(pattern))


def _merged_section(directories: list[Path]) -> str:
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
            charts.append(_cdf_chart(merged, label, f"merged-cdf-{name}"))
    if not rows:
        raise ConfigError("loadgen report --merge: no .hlog files in the directories given")
    names = ", ".join(escape(str(directory)) for directory in directories)
    return (f"<h2>merged: {len(directories)} result directories</h2><p>{names}</p>"
            + _table(["latency (ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"], rows, "merged-latency")
            + f'<div class="charts">{"".join(charts)}</div>')  # fmt: skip


RESULT_FILES = ("summary.json", "sweep.json", "compare.json", "plan.json")


def render_report(directories: list[Path], merge: bool = False) -> str:
    """With ``merge``, directories that hold only interval logs (a Locust worker's, copied from
    its machine) join the merged section without a section of their own."""
    shown = [d for d in directories if not merge or any((d / name).is_file() for name in RESULT_FILES)]
    sections = "".join(_section(directory, number) for number, directory in enumerate(shown, 1))
    if merge:
        sections = _merged_section(directories) + sections
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>loadgen report</title>'
        f"<style>{STYLE}</style></head><body><h1>loadgen report</h1><p>loadgen {__version__}</p>"
        f"{sections}{plotly_script()}</body></html>"
    )
