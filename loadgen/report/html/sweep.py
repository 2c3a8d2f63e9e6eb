"""Report layer, HTML: a sweep's page (latency against load, the Pareto curve with the knee, the level
table, telemetry per level, find-max probes, each level over time)."""

from __future__ import annotations

import functools
from html import escape
from pathlib import Path
from typing import Any

from loadgen.metrics.results import (
    FindMaxOutcome,
    RunConfig,
    RunSummary,
    ServerFigures,
    SweepResult,
)
from loadgen.plan.knee import sweep_knee
from loadgen.report.console import (
    VALIDITY_LEGEND,
    gpu_figure,
    level_label,
    mean_of,
    validity_cell,
)
from loadgen.report.html.blocks import html_table, imported_block, metadata_block, percentile, slo_texts, thin_note
from loadgen.report.html.run import breakdown_block, over_time, server_table, telemetry_over_time
from loadgen.report.plots import Chart, long_tail


def mark_levels(chart: Chart, levels: list[RunSummary], xs: list[Any], ys: list[Any], knee: int | None) -> None:
    """Invalid levels as red crosses on the curve (with why on hover), and the knee."""
    bad = [(x, y, f"{level_label(s)}: {validity_cell(s)}") for s, x, y in zip(levels, xs, ys, strict=True)
           if y is not None and validity_cell(s) not in ("ok", "–")]  # fmt: skip
    if bad:
        chart.scatter("not valid", [b[0] for b in bad], [b[1] for b in bad], text=[b[2] for b in bad],
                      symbol="x", color="#d62728")  # fmt: skip
    if knee is not None and ys[knee] is not None:
        chart.mark(xs[knee], ys[knee], "knee")


def _batch_sweep(levels: list[RunSummary]) -> bool:
    """Levels that differ only by prompts per request."""
    return (
        len({(s.load.concurrency, s.load.rate) for s in levels}) == 1 and len({s.load.batch_size for s in levels}) > 1
    )


def level_x(summary: RunSummary, by_batch: bool = False) -> float:
    return float(summary.load.batch_size) if by_batch else summary.load.value


def sweep_section(levels: list[RunSummary], prefix: str, slos: list[tuple[str, str, float]] | None = None) -> str:
    by_batch = _batch_sweep(levels)
    levels = sorted(levels, key=lambda s: level_x(s, by_batch))
    closed = levels[0].load.closed
    x_label = "prompts per request" if by_batch else "concurrent users" if closed else "offered requests/s"

    @functools.cache  # asked once per level and cell: without it the page is quadratic in levels
    def shown(metric: str, key: str) -> str:
        """The statistic shown for ``key``: an imported table may carry the mean instead of the median."""
        if key == "p50" and all(s.latency_ms.metric(metric).p50 is None for s in levels):
            return "mean"
        return key

    xs = [level_x(s, by_batch) for s in levels]
    labels = [level_label(s) for s in levels]
    knee = sweep_knee(levels)

    def against_load(metric: str, title: str) -> str:
        values = {key: [s.latency_ms.metric(metric).statistic(shown(metric, key)) for s in levels]
                  for key in ("p50", "p99")}  # fmt: skip
        chart = Chart(f"{prefix}-{metric}", f"{title} against load", f"{x_label} (log)", "ms", log_x=True,
                      log_y=long_tail(values["p50"] + values["p99"]))  # fmt: skip
        chart.line(f"{metric.upper()} {shown(metric, 'p50')}", xs, values["p50"], text=labels, unit="ms")
        chart.line(f"{metric.upper()} p99", xs, values["p99"], dashed=True, text=labels, unit="ms")
        mark_levels(chart, levels, xs, values["p99"], knee)
        for text, slo_metric, threshold_ms in slos or []:
            if slo_metric == metric:
                chart.limit(threshold_ms, f"SLO {text}")
        return chart.html()

    pareto = Chart(f"{prefix}-pareto", "throughput against latency (Pareto)", "end-to-end p50 (ms)",
                   "output tokens/s")  # fmt: skip
    e2e = [s.latency_ms.e2e.statistic(shown("e2e", "p50")) for s in levels]
    tokens = [s.throughput.output_tokens_per_s for s in levels]
    # the frontier joins the valid levels only: a line through invalid ones zig-zagged through figures
    # that are not the server's; those stand apart as red crosses
    trusted = [index for index, s in enumerate(levels) if validity_cell(s) in ("ok", "–")]
    pareto.line("levels", [e2e[i] for i in trusted], [tokens[i] for i in trusted], text=[labels[i] for i in trusted],
                unit="tok/s")  # fmt: skip
    pareto.traces[-1]["mode"] = "lines+markers+text"
    pareto.traces[-1]["textposition"] = "top left"
    knee_e2e, knee_tokens = (e2e[knee], tokens[knee]) if knee is not None else (None, None)
    if knee is not None and knee_e2e is not None and knee_tokens is not None:
        pareto.mark(knee_e2e, knee_tokens, f"knee ({labels[knee]})")
    mark_levels(pareto, levels, e2e, tokens, None)
    charts = [against_load("ttft", "TTFT"), against_load("tpot", "TPOT"), pareto.html()]
    rows: list[list[object]] = [
        [
            level_label(s),
            s.throughput.requests_per_s,
            s.throughput.sequences_per_s,
            s.throughput.output_tokens_per_s,
            s.latency_ms.ttft.statistic(shown("ttft", "p50")),
            percentile(s.latency_ms.ttft, "p99"),
            s.latency_ms.tpot.statistic(shown("tpot", "p50")),
            percentile(s.latency_ms.tpot, "p99"),
            s.latency_ms.e2e.statistic(shown("e2e", "p50")),
            s.requests.failed,
            validity_cell(s),
        ]
        for s in levels
    ]
    html = f'<div class="charts">{"".join(charts)}</div>'
    html += html_table(
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
    html += thin_note(rows)
    if any(validity_cell(s) not in ("ok", "–") for s in levels):
        html += f'<p class="warn">{escape(VALIDITY_LEGEND)}</p>'
    html += server_table(levels, prefix)
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
        html += "<h3>telemetry per level</h3>" + html_table(
            ["level", "GPU util %", "GPU W", "J per out token", "KV peak %", "running batch (mean)", "queue max",
             "draft acceptance"],
            trows,
            f"{prefix}-telemetry",
        )  # fmt: skip
    return html


def levels_over_time(directory: Path, prefix: str) -> str:
    """Each level's latency and completions over time, folded away until opened."""
    parts = []
    for number, level_dir in enumerate(sorted(directory.glob("level-*")), 1):
        charts = over_time(level_dir, f"{prefix}-l{number}")
        if charts:
            parts.append(f"<details><summary>{escape(level_dir.name)}: over time</summary>"
                         f'<div class="charts">{charts}</div></details>')  # fmt: skip
    return "<h3>each level over time</h3>" + "".join(parts) if parts else ""


def find_max_block(found: FindMaxOutcome, levels: list[RunSummary], config: RunConfig | None, prefix: str) -> str:
    """The probes in the order they ran (not sorted by load), with the SLOs as lines."""
    slos = slo_texts(config)
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


def sweep_page(directory: Path, sweep: SweepResult, config: RunConfig | None, prefix: str) -> str:
    """A sweep: where its figures came from, its levels against load, find-max, each level over time."""
    levels = list(sweep.levels)
    about = imported_block(sweep.imported) if sweep.imported else metadata_block(levels[0], config, levels)
    html = f"<h2>sweep: {escape(str(directory))}</h2>" + about + sweep_section(levels, prefix, slo_texts(config))
    if sweep.find_max:
        html += find_max_block(sweep.find_max, levels, config, prefix)
    html += breakdown_block(levels, prefix, sweep.ttft_growth)
    return html + levels_over_time(directory, prefix) + telemetry_over_time(directory, levels, prefix)
