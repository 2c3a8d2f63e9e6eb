"""Report layer: ``loadgen report DIR [DIR…]`` — one self-contained HTML file (no CDN, works
offline): for each run, sweep or comparison, the metadata, the exact command options, latency
percentile tables and distributions (from the ``.hlog`` files), latency-against-load and
throughput-against-latency curves with the knee, telemetry per level, errors by kind, and
speedups with their intervals and the crossover. Every string taken from results is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadgen import __version__
from loadgen.errors import ConfigError
from loadgen.report.console import VALIDITY_LEGEND, validity_cell
from loadgen.report.files import read_result_json
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
        ["stamps", (summary.get("clock") or {}).get("stamp_source", "user space (before kernel stamps)")],
    ]
    validity = summary.get("validity")
    if validity:
        rows.append(["verdict", "valid" if validity["valid"] else "INVALID: " + "; ".join(validity["reasons"])])
    lost = [f"{name}: {detail['error']}" for name, detail in (summary.get("output_errors") or {}).items()]
    lost += [f"worker {name} died" for name in (summary.get("workers") or {}).get("lost", [])]
    if lost:
        rows.append(["results incomplete", "; ".join(lost)])
    html = _table(["", ""], rows, "metadata", text_columns=2)
    if config:
        options = " ".join(f"--{k.replace('_', '-')}={v}" for k, v in (config.get("options") or {}).items())
        html += f"<p>options: <code>{escape(options)}</code></p>"
    return html


def _imported(source: dict[str, Any]) -> str:
    """Where an imported sweep's figures came from, what they mean in loadgen's terms, what they lack."""
    rows: list[list[object]] = [["imported from", source.get("tool")], ["files", ", ".join(source.get("files") or [])]]
    rows += [[f"loadgen {name}", text] for name, text in (source.get("definitions") or {}).items()]
    rows += [["lacks", ", ".join(source.get("lacks") or [])]]
    rows += [["derived", item] for item in source.get("derived") or []]
    rows += [["assumption", item] for item in source.get("assumptions") or []]
    note = "Figures measured by another tool and imported: no histograms or per-request records stand behind them."
    return f'<p class="warn">{note}</p>' + _table(["", ""], rows, "imported", text_columns=2)


def _latency_table(summary: dict[str, Any], table_id: str) -> str:
    rows = []
    for key, label in LATENCY_ROWS:
        stats = summary["latency_ms"].get(key)
        if stats is None:
            continue  # a result written before this metric existed
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


def _read_hlogs(paths: list[Path]) -> HdrHistogram:
    """Every interval of every file, added exactly (µs)."""
    merged = HdrHistogram(1, 3_600_000_000, 3)
    for path in paths:
        reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 3))
        while (interval := reader.get_next_interval_histogram()) is not None:
            if interval.get_total_count():
                merged.add(interval)
    return merged


def _distribution(directory: Path, name: str, label: str, chart_id: str) -> str:
    """The CDF of a metric from its .hlog file (all intervals merged), or its Locust workers' files."""
    own = directory / f"{name}.hlog"
    paths = [own] if own.is_file() else sorted(directory.glob(f"worker-*/{name}.hlog"))
    if not paths:
        return ""
    return _cdf_chart(_read_hlogs(paths), label, chart_id)


def _cdf_chart(merged: HdrHistogram, label: str, chart_id: str) -> str:
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


def _batch_sweep(levels: list[dict[str, Any]]) -> bool:
    """Levels that differ only by prompts per request."""
    return (
        len({(s["load"]["concurrency"], s["load"]["rate"]) for s in levels}) == 1
        and len({s["load"].get("batch_size") or 1 for s in levels}) > 1
    )


def _level_x(summary: dict[str, Any], by_batch: bool = False) -> float:
    load = summary["load"]
    if by_batch:
        return float(load.get("batch_size") or 1)
    return float(load["concurrency"] if load["mode"] == "closed" else load["rate"] or 0)


def _sweep(levels: list[dict[str, Any]], prefix: str) -> str:
    from loadgen.search import sweep_knee

    by_batch = _batch_sweep(levels)
    levels = sorted(levels, key=lambda s: _level_x(s, by_batch))
    closed = levels[0]["load"]["mode"] == "closed"
    x_label = "prompts per request" if by_batch else "concurrent users" if closed else "offered requests/s"

    def shown(metric: str, key: str) -> str:
        """The statistic shown for ``key``: an imported table may carry the mean instead of the median."""
        if key == "p50" and all(s["latency_ms"][metric].get("p50") is None for s in levels):
            return "mean"
        return key

    def series(metric: str, key: str, dashed: bool = False) -> Series:
        key = shown(metric, key)
        points = [(_level_x(s, by_batch), s["latency_ms"][metric].get(key)) for s in levels]
        return Series(f"{metric.upper()} {key}", points, dashed)

    points = [(s["latency_ms"]["e2e"]["p50"] or 0.0, s["throughput"]["output_tokens_per_s"] or 0.0) for s in levels]
    knee = sweep_knee(levels)
    markers = [(_level_x(levels[knee], by_batch), "knee")] if knee is not None else []
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
            _level_label(s),
            s["throughput"]["requests_per_s"],
            s["throughput"].get("sequences_per_s"),
            s["throughput"]["output_tokens_per_s"],
            s["latency_ms"]["ttft"].get(shown("ttft", "p50")),
            s["latency_ms"]["ttft"]["p99"],
            s["latency_ms"]["tpot"].get(shown("tpot", "p50")),
            s["latency_ms"]["tpot"]["p99"],
            s["latency_ms"]["e2e"].get(shown("e2e", "p50")),
            s["requests"]["failed"],
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
            f"TTFT {shown('ttft', 'p50')}",
            "TTFT p99",
            f"TPOT {shown('tpot', 'p50')}",
            "TPOT p99",
            f"E2E {shown('e2e', 'p50')}",
            "failed",
            "valid",
        ],
        rows,
        f"{prefix}-levels",
    )
    if any(validity_cell(s) not in ("ok", "–") for s in levels):
        html += f'<p class="warn">{escape(VALIDITY_LEGEND)}</p>'
    html += _server_table(levels, prefix)
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
                    _level_label(s),
                    sum(util) / len(util) if util else None,
                    sum(power) if power else None,
                    t.get("joules_per_output_token"),
                    (server.get("kv_cache_usage_percent") or {}).get("max"),
                    (server.get("requests_running") or {}).get("mean"),
                    (server.get("requests_waiting") or {}).get("max"),
                    server.get("spec_acceptance_rate"),
                ]
            )
        html += "<h3>telemetry per level</h3>" + _table(
            ["level", "GPU util %", "GPU W", "J per out token", "KV peak %", "running batch (mean)", "queue max",
             "draft acceptance"],
            trows,
            f"{prefix}-telemetry",
        )  # fmt: skip
    return html


def _level_label(summary: dict[str, Any]) -> str:
    from loadgen.report.console import level_label

    return level_label(summary)


def _server_table(levels: list[dict[str, Any]], prefix: str) -> str:
    """Triton's own account of each level: the batches it ran, where a request's time went."""
    rows = []
    for s in levels:
        figures = (s.get("server") or {}).get("model")
        if not figures:
            continue
        split = figures.get("per_request_ms") or {}
        rows.append([_level_label(s), figures.get("requests_succeeded"), figures.get("requests_failed"),
                     figures.get("executions"), figures.get("average_batch_size"), split.get("queue"),
                     split.get("compute_input"), split.get("compute_infer"), split.get("compute_output")])  # fmt: skip
    if not rows:
        return ""
    headers = ["level", "succeeded", "failed", "executions", "average batch", "queue ms", "input ms", "infer ms",
               "output ms"]  # fmt: skip
    return "<h3>Triton server metrics per level</h3>" + _table(headers, rows, f"{prefix}-server")


def _plan(plan: dict[str, Any], prefix: str) -> str:
    """``plan.json`` from ``loadgen plan --output``: the hardware options ranked."""
    target = plan.get("target") or {}
    slo = ", ".join(f"{k} ≤ {v:g} ms" for k, v in (plan.get("slo_ms") or {}).items())
    measured = plan.get("measured_capacity") or {}
    capacity = (f"{_cell(measured.get('requests_per_s'))} req/s ({_cell(measured.get('requests_per_s_low'))}–"
                f"{_cell(measured.get('requests_per_s_high'))})")  # fmt: skip
    html = (f"<p>target: {_cell(target.get('peak_requests_per_s'))} req/s peak, headroom "
            f"{_cell(target.get('headroom'))}; SLOs: {escape(slo)}; measured capacity per replica: {capacity}, "
            f"bound by {escape(str(measured.get('binding')))}</p>")  # fmt: skip
    rows = [
        [c.get("profile"), "estimate" if c.get("estimate") else "measured", c.get("feasible"), c.get("binding"),
         c.get("capacity_rps"), c.get("replicas"), c.get("instances"), c.get("cost_per_month"),
         c.get("cost_per_million_output_tokens")]
        for c in plan.get("candidates") or []
    ]  # fmt: skip
    headers = ["hardware", "basis", "feasible", "binding", "req/s per replica", "replicas", "instances", "cost/month",
               "cost per M out tokens"]  # fmt: skip
    return html + _table(headers, rows, f"{prefix}-plan", text_columns=2)


def _pair_validity(comparison: dict[str, Any]) -> str:
    """'ok', or the variants whose level was not valid: 'baseline ✗target'."""
    judged = (comparison.get("validity") or {}).items()
    invalid = [f"{name} {validity_cell({'validity': v})}" for name, v in judged if v and not v["valid"]]
    return "✗ " + ", ".join(invalid) if invalid else ("ok" if judged else "–")


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
            if entry["low"] is None:
                return f"{entry['speedup']:.2f}× (no interval)"
            return f"{entry['speedup']:.2f}× ({entry['low']:.2f}–{entry['high']:.2f})"

        table_rows = [
            [
                row["level"],
                *(speedup(row["comparison"][m]) for m in ("ttft", "tpot", "e2e")),
                row["comparison"]["throughput_ratio"],
                f"{row['comparison']['paired_candidate_faster']:.0%}"
                if row["comparison"]["paired_candidate_faster"] is not None
                else "–",
                row["comparison"].get("candidate_acceptance_rate"),
                "/".join(
                    str((row["comparison"].get("requests") or {}).get(role, {}).get("failed", "–"))
                    for role in ("baseline", "candidate")
                ),
                _pair_validity(row["comparison"]),
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
        unknown = [row for row in rows if row["comparison"]["e2e"]["speedup"] is None]
        for row in unknown:
            reason = row["comparison"]["e2e"].get("reason") or "no successful requests"
            html += f'<p class="warn">{escape(str(row["level"]))}: no speedup: {escape(reason)}</p>'
        if crossing:
            html += f"<p><b>crossover:</b> {escape(candidate)} stops helping at load {crossing:g}</p>"
        elif unknown:
            html += f"<p>{escape(candidate)} is faster at the levels with a speedup; {len(unknown)} gave none</p>"
        else:
            html += f"<p>{escape(candidate)} is faster at every level measured</p>"
        if any(not row["comparison"]["lengths_match"] for row in rows):
            html += '<p class="warn">output lengths differ between variants: not like for like</p>'
    return html


def _section(directory: Path, number: int) -> str:
    html = _results_section(directory, number)
    if (directory / "plan.json").is_file():
        plan = read_result_json(directory / "plan.json")
        html += f"<h2>capacity plan: {escape(str(directory))}</h2>" + _plan(plan, f"r{number}")
    if not html:
        raise ConfigError(f"loadgen report {directory}: no summary.json, sweep.json, compare.json or plan.json there")
    return html


def _results_section(directory: Path, number: int) -> str:
    prefix = f"r{number}"
    config = read_result_json(directory / "config.json") if (directory / "config.json").is_file() else None
    if (directory / "compare.json").is_file():
        report = read_result_json(directory / "compare.json")
        return f"<h2>comparison: {escape(str(directory))}</h2>" + _compare(report, prefix)
    if (directory / "sweep.json").is_file():
        sweep = read_result_json(directory / "sweep.json")
        levels = sweep["levels"]
        about = _imported(sweep["imported"]) if sweep.get("imported") else _metadata(levels[0], config)
        html = f"<h2>sweep: {escape(str(directory))}</h2>" + about + _sweep(levels, prefix)
        if sweep.get("find_max"):
            found = sweep["find_max"]
            html += f"<p><b>find-max:</b> {_cell(found['passed'])} {escape(found['unit'])} within the SLOs</p>"
        return html
    if (directory / "summary.json").is_file():
        summary = read_result_json(directory / "summary.json")
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
            + _server_table([summary], prefix)
        )
    return ""


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
        merged = _read_hlogs(files)
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
        f"{sections}</body></html>"
    )
