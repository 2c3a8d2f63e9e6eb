"""Report layer, HTML: a comparison's page (speedups with their intervals, the crossover, each variant's
own latencies)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from loadgen.metrics.comparison import SPEEDUP_METRICS, CompareResult, Comparison, candidate_verdict
from loadgen.metrics.results import (
    RunConfig,
    RunSummary,
    read_summary,
)
from loadgen.parsing import public_url
from loadgen.report.console import (
    invalid_levels,
    invalid_variants,
    level_label,
)
from loadgen.report.html.blocks import as_flags, html_table, percent_text
from loadgen.report.html.sweep import level_x
from loadgen.report.plots import Chart


def _variant_levels(directory: Path, variant: str) -> list[RunSummary]:
    return [read_summary(path) for path in sorted((directory / variant).glob("level-*/summary.json"))]


def _absolute_latencies(directory: Path, report: CompareResult, candidate: str, xs: list[float], prefix: str) -> str:
    """Each variant's own latencies beside the ratios: a speedup of 2× on 5 ms is not one on 5 s."""
    chart = Chart(f"{prefix}-absolute-{candidate}", "each variant's latency (p50)", "load (log)", "ms (log)",
                  log_x=True, log_y=True)  # fmt: skip
    for variant in (report.baseline, candidate):
        levels = _variant_levels(directory, variant)
        loads = [level_x(s) for s in levels]
        for metric, dashed in (("e2e", False), ("ttft", True)):
            chart.line(f"{variant} {metric.upper()} p50", loads, [s.latency_ms.metric(metric).p50 for s in levels],
                       dashed=dashed, unit="ms", text=[level_label(s) for s in levels])  # fmt: skip
    return chart.html()


def _pair_validity(comparison: Comparison) -> str:
    """'ok', or the variants whose level was not valid: 'baseline ✗target'."""
    invalid = invalid_variants(comparison)
    return f"✗ {invalid}" if invalid else ("ok" if comparison.validity else "–")


def compare_section(report: CompareResult, prefix: str, directory: Path) -> str:
    html = ""
    for candidate in {level.candidate for level in report.levels}:
        rows = report.rows(candidate)
        xs = [float(row.level.split("=")[1].rstrip("*")) for row in rows]
        verdict = candidate_verdict(rows, candidate)
        crossing = next((x for x, row in zip(xs, rows, strict=True) if row.level == verdict.crossover), None)
        html += f"<h3>{escape(candidate)} against {escape(report.baseline)}</h3>"
        chart = Chart(f"{prefix}-speedup-{candidate}", f"speedup of {candidate} (baseline ÷ candidate, 95% CI)",
                      "load (log)", "speedup ×", log_x=True)  # fmt: skip
        for metric in SPEEDUP_METRICS:
            entries = [row.comparison.speedup(metric) for row in rows]
            low = [e.speedup - e.low if e.speedup is not None and e.low is not None else 0.0 for e in entries]
            high = [e.high - e.speedup if e.speedup is not None and e.high is not None else 0.0 for e in entries]
            chart.line(f"{metric.upper()} speedup", xs, [e.speedup for e in entries], unit="×",
                       text=[row.level for row in rows], errors=(low, high))  # fmt: skip
        chart.limit(1.0, "1× (no change)")
        if crossing is not None:
            chart.mark(crossing, 1.0, "crossover")
        html += '<div class="charts">' + chart.html() + _absolute_latencies(directory, report, candidate, xs, prefix)
        html += "</div>"

        table_rows: list[list[object]] = [
            [
                row.level,
                *(row.comparison.speedup(metric).text() for metric in SPEEDUP_METRICS),
                row.comparison.throughput_ratio,
                percent_text(row.comparison.paired_candidate_faster),
                percent_text(row.comparison.candidate_acceptance_rate),
                row.comparison.requests.failed_text(),
                _pair_validity(row.comparison),
            ]
            for row in rows
        ]
        html += html_table(
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
        invalid = invalid_levels(rows)
        if invalid:
            html += (f'<p class="warn"><b>INVALID levels, not a fair comparison:</b> {escape(", ".join(invalid))} '
                     "(see each level's summary.json validity)</p>")  # fmt: skip
        html += f"<p{'' if verdict.fair else ' class=warn'}><b>verdict:</b> {escape(verdict.text)}</p>"
        if any(not row.comparison.lengths_match for row in rows):
            html += '<p class="warn">output lengths differ between variants: not like for like</p>'
    return html


def compare_page(directory: Path, report: CompareResult, prefix: str, config: RunConfig | None = None) -> str:
    header = f"<h2>comparison: {escape(str(directory))}</h2>" + _compare_about(directory, report, config)
    return header + compare_section(report, prefix, directory)


def _compare_about(directory: Path, report: CompareResult, config: RunConfig | None) -> str:
    """What was compared, when, with which options: the variants and the baseline's first level."""
    rows: list[list[object]] = [["baseline", report.baseline]]
    for variant in report.variants:
        extra = f" with {json.dumps(variant.extra_body)}" if variant.extra_body else ""
        rows.append([f"variant {variant.name}", f"{public_url(variant.target)}{extra}"])
    first = next(iter(_variant_levels(directory, report.baseline)), None)
    if first is not None:
        rows += [["API", first.api], ["model", first.model], ["started", first.started_at],
                 ["loadgen", first.loadgen_version]]  # fmt: skip
    html = html_table(["", ""], rows, "compare-about", text_columns=2)
    if config:
        html += f"<p>options: <code>{escape(as_flags(config.options))}</code></p>"
    return html
