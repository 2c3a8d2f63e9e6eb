"""Report layer: ``loadgen report DIR [DIR…]`` — one self-contained HTML file (no CDN, works
offline): for each run, sweep or comparison, the metadata, the exact command options, latency
percentile tables and distributions (from the ``.hlog`` files), latency-against-load and
throughput-against-latency curves with the knee, telemetry per level, errors by kind, and
speedups with their intervals and the crossover. Every string taken from results is escaped.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadgen import __version__
from loadgen.errors import ConfigError
from loadgen.report.svg import Series, line_chart

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right;font-size:13px}th{background:#f4f4f4}td.text,th.text{text-align:left}
.chart{width:640px;max-width:100%;margin:8px 16px 8px 0;font-size:11px}.chart .title{font-size:13px;font-weight:600}
.grid{stroke:#eee}.limit{stroke:#999;stroke-dasharray:4 3}.marker{stroke:#555;stroke-dasharray:2 2}
.marker-label{font-size:11px}.warn{color:#a60}.empty{color:#888}.charts{display:flex;flex-wrap:wrap}
code{background:#f4f4f4;padding:1px 4px}
"""
LATENCY_ROWS = (
    ("ttft", "TTFT"),
    ("tpot", "TPOT"),
    ("itl", "ITL"),
    ("itl_chunk", "ITL per chunk"),
    ("e2e", "E2E"),
    ("schedule_lag", "schedule lag"),
)


def _cell(value: object, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return escape(str(value))


def _table(headers: list[str], rows: list[list[object]], table_id: str, text_columns: int = 1) -> str:
    head = "".join(f'<th class="{"text" if i < text_columns else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"text" if i < text_columns else ""}">{_cell(v)}</td>' for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{escape(table_id)}"><tr>{head}</tr>{body}</table>'


def _metadata(summary: dict[str, Any], config: dict[str, Any] | None) -> str:
    rows = [
        ["endpoint", summary.get("endpoint")],
        ["API", summary.get("api")],
        ["model", summary.get("model")],
        ["started", summary.get("started_at")],
        ["loadgen", summary.get("loadgen_version")],
        ["token counting", (summary.get("token_counting") or {}).get("output_method")],
    ]
    html = _table(["", ""], rows, "metadata", text_columns=2)
    if config:
        options = " ".join(f"--{k.replace('_', '-')}={v}" for k, v in (config.get("options") or {}).items())
        html += f"<p>options: <code>{escape(options)}</code></p>"
    return html


def _latency_table(summary: dict[str, Any], table_id: str) -> str:
    rows = []
    for key, label in LATENCY_ROWS:
        stats = summary["latency_ms"][key]
        rows.append(
            [
                label,
                stats["count"],
                stats["mean"],
                stats["p50"],
                stats["p90"],
                stats["p99"],
                stats["p99_9"],
                stats["max"],
            ]
        )
    return _table(["latency (ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"], rows, table_id)


def _distribution(directory: Path, name: str, label: str, chart_id: str) -> str:
    """The CDF of a metric from its .hlog file (all intervals merged)."""
    path = directory / f"{name}.hlog"
    if not path.is_file():
        return ""
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 3))
    merged = HdrHistogram(1, 3_600_000_000, 3)
    while (interval := reader.get_next_interval_histogram()) is not None:
        merged.add(interval)
    total = merged.get_total_count()
    if not total:
        return ""
    points, seen = [], 0
    for item in merged.get_recorded_iterator():
        seen += item.count_added_in_this_iter_step
        points.append((item.value_iterated_to / 1000.0, 100.0 * seen / total))
    return line_chart(
        f"{label} distribution", f"{label} (ms)", "% of samples ≤", [Series(label, points)], chart_id=chart_id
    )


def _errors(summary: dict[str, Any]) -> str:
    errors = summary["requests"]["errors_by_kind"]
    if not errors:
        return "<p>errors: none</p>"
    first = summary["requests"].get("first_error_by_kind", {})
    return _table(
        ["error kind", "count", "first message"],
        [[k, v, first.get(k, "")] for k, v in errors.items()],
        "errors",
        text_columns=1,
    )


def _level_x(summary: dict[str, Any]) -> float:
    load = summary["load"]
    return float(load["concurrency"] if load["mode"] == "closed" else load["rate"] or 0)


def _sweep(levels: list[dict[str, Any]], prefix: str) -> str:
    from loadgen.search import sweep_knee

    levels = sorted(levels, key=_level_x)
    closed = levels[0]["load"]["mode"] == "closed"
    x_label = "concurrent users" if closed else "offered requests/s"

    def series(metric: str, key: str, dashed: bool = False) -> Series:
        return Series(f"{metric.upper()} {key}", [(_level_x(s), s["latency_ms"][metric][key]) for s in levels], dashed)

    points = [(s["latency_ms"]["e2e"]["p50"] or 0.0, s["throughput"]["output_tokens_per_s"] or 0.0) for s in levels]
    knee = sweep_knee(levels)
    markers = [(_level_x(levels[knee]), "knee")] if knee is not None else []
    charts = [
        line_chart(
            "TTFT against load",
            x_label,
            "ms",
            [series("ttft", "p50"), series("ttft", "p99", True)],
            chart_id=f"{prefix}-ttft",
            log_x=True,
            markers=markers,
        ),
        line_chart(
            "TPOT against load",
            x_label,
            "ms",
            [series("tpot", "p50"), series("tpot", "p99", True)],
            chart_id=f"{prefix}-tpot",
            log_x=True,
            markers=markers,
        ),
        line_chart(
            "throughput against latency (Pareto)",
            "end-to-end p50 (ms)",
            "output tokens/s",
            [Series("levels", points)],
            chart_id=f"{prefix}-pareto",
        ),
    ]
    rows = [
        [
            s["load"]["concurrency"] if closed else s["load"]["rate"],
            s["throughput"]["requests_per_s"],
            s["throughput"]["output_tokens_per_s"],
            s["latency_ms"]["ttft"]["p50"],
            s["latency_ms"]["ttft"]["p99"],
            s["latency_ms"]["tpot"]["p50"],
            s["latency_ms"]["tpot"]["p99"],
            s["requests"]["failed"],
        ]
        for s in levels
    ]
    html = f'<div class="charts">{"".join(charts)}</div>'
    html += _table(
        ["level", "req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "failed"],
        rows,
        f"{prefix}-levels",
    )
    telemetry = [s for s in levels if s.get("telemetry")]
    if telemetry:
        trows = []
        for s in telemetry:
            t = s["telemetry"]
            server = t.get("server") or {}
            gpus = list((t.get("gpu") or {}).values())
            util = [g["util_percent"]["mean"] for g in gpus if g.get("util_percent")]
            power = [g["power_w"]["mean"] for g in gpus if g.get("power_w")]
            trows.append(
                [
                    _level_x(s),
                    sum(util) / len(util) if util else None,
                    sum(power) if power else None,
                    t.get("joules_per_output_token"),
                    (server.get("kv_cache_usage_percent") or {}).get("max"),
                    (server.get("requests_waiting") or {}).get("max"),
                ]
            )
        html += "<h3>telemetry per level</h3>" + _table(
            ["level", "GPU util %", "GPU W", "J per out token", "KV peak %", "queue max"], trows, f"{prefix}-telemetry"
        )
    return html


def _compare(report: dict[str, Any], prefix: str) -> str:
    html = ""
    for candidate in {level["candidate"] for level in report["levels"]}:
        rows = [level for level in report["levels"] if level["candidate"] == candidate]
        xs = [float(str(row["level"]).split("=")[1].rstrip("*")) for row in rows]
        series = [
            Series(
                f"{metric} speedup",
                [(x, row["comparison"][metric]["speedup"]) for x, row in zip(xs, rows, strict=True)],
            )
            for metric in ("ttft", "tpot", "e2e")
        ]
        crossing = next(
            (x for x, row in zip(xs, rows, strict=True) if (row["comparison"]["e2e"]["speedup"] or 2) < 1), None
        )
        markers = [(crossing, "crossover")] if crossing is not None else []
        html += f"<h3>{escape(candidate)} against {escape(report['baseline'])}</h3>"
        html += line_chart(
            f"speedup of {candidate} (baseline ÷ candidate)",
            "load",
            "×",
            series,
            chart_id=f"{prefix}-speedup-{candidate}",
            log_x=True,
            markers=markers,
            y_line=1.0,
        )

        def speedup(entry: dict[str, Any]) -> str:
            if entry["speedup"] is None:
                return "–"
            return f"{entry['speedup']:.2f}× ({entry['low']:.2f}–{entry['high']:.2f})"

        table_rows = [
            [
                row["level"],
                *(speedup(row["comparison"][m]) for m in ("ttft", "tpot", "e2e")),
                row["comparison"]["throughput_ratio"],
                f"{row['comparison']['paired_candidate_faster']:.0%}"
                if row["comparison"]["paired_candidate_faster"] is not None
                else "–",
            ]
            for row in rows
        ]
        html += _table(
            ["level", "TTFT", "TPOT", "end-to-end", "tok/s ratio", "paired wins"], table_rows, f"{prefix}-speedups"
        )
        html += (
            f"<p><b>crossover:</b> {escape(candidate)} stops helping at load {crossing:g}</p>"
            if crossing
            else f"<p>{escape(candidate)} is faster at every level measured</p>"
        )
        if any(not row["comparison"]["lengths_match"] for row in rows):
            html += '<p class="warn">output lengths differ between variants: not like for like</p>'
    return html


def _section(directory: Path, number: int) -> str:
    prefix = f"r{number}"
    config = json.loads((directory / "config.json").read_text()) if (directory / "config.json").is_file() else None
    if (directory / "compare.json").is_file():
        report = json.loads((directory / "compare.json").read_text())
        return f"<h2>comparison: {escape(str(directory))}</h2>" + _compare(report, prefix)
    if (directory / "sweep.json").is_file():
        sweep = json.loads((directory / "sweep.json").read_text())
        levels = sweep["levels"]
        html = f"<h2>sweep: {escape(str(directory))}</h2>" + _metadata(levels[0], config) + _sweep(levels, prefix)
        if sweep.get("find_max"):
            found = sweep["find_max"]
            html += f"<p><b>find-max:</b> {_cell(found['passed'])} {escape(found['unit'])} within the SLOs</p>"
        return html
    if (directory / "summary.json").is_file():
        summary = json.loads((directory / "summary.json").read_text())
        distributions = "".join(
            _distribution(directory, name, label, f"{prefix}-cdf-{name}")
            for name, label in (("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "E2E"))
        )
        return (
            f"<h2>run: {escape(str(directory))}</h2>"
            + _metadata(summary, config)
            + _latency_table(summary, f"{prefix}-latency")
            + f'<div class="charts">{distributions}</div>'
            + _errors(summary)
        )
    raise ConfigError(f"loadgen report {directory}: no summary.json, sweep.json or compare.json there")


def render_report(directories: list[Path]) -> str:
    sections = "".join(_section(directory, number) for number, directory in enumerate(directories, 1))
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>loadgen report</title>'
        f"<style>{STYLE}</style></head><body><h1>loadgen report</h1><p>loadgen {__version__}</p>"
        f"{sections}</body></html>"
    )
