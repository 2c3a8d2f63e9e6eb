"""Report layer, HTML: the blocks every page uses (tables, cells, the run's metadata and options, SLO texts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from loadgen.config import SloTarget
from loadgen.metrics.results import (
    Distribution,
    ImportedSource,
    RunConfig,
    RunSummary,
)
from loadgen.report.console import THIN_LEGEND, THIN_MARK
from loadgen.scenario.options import OPTIONS_BY_NAME

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1180px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right;font-size:13px}th{background:#f4f4f4}td.text,th.text{text-align:left}
.chart{width:540px;max-width:100%;margin:8px 16px 8px 0}
.chart.empty{color:#888;font-size:13px}.warn{color:#a60}.empty{color:#888}.charts{display:flex;flex-wrap:wrap}
code{background:#f4f4f4;padding:1px 4px}.thin{color:#a60}.note{color:#555;font-size:13px}
"""


@dataclass(frozen=True, slots=True)
class ThinPercentile:
    """A percentile cell that too few samples stand behind (``Distribution.thin``)."""

    value: float


def percentile(stats: Distribution, name: str) -> object:
    """A table cell for the percentile ``name`` of ``stats``: its value, marked when thin."""
    value = stats.statistic(name)
    return ThinPercentile(value) if value is not None and stats.thin(name) else value


def thin_note(rows: Sequence[Sequence[object]]) -> str:
    """The legend of the thin-percentile mark, under a table that has one."""
    if any(isinstance(cell, ThinPercentile) for row in rows for cell in row):
        return f'<p class="note">{escape(THIN_LEGEND)}</p>'
    return ""


def html_cell(value: object, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, ThinPercentile):
        return f'<span class="thin" title="{escape(THIN_LEGEND)}">{value.value:,.{digits}f}{THIN_MARK}</span>'
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return escape(str(value))


def html_table(headers: list[str], rows: list[list[object]], table_id: str, text_columns: int = 1) -> str:
    head = "".join(f'<th class="{"text" if i < text_columns else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    header_row = f"<tr>{head}</tr>" if any(headers) else ""  # a key-value table has no header
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"text" if i < text_columns else ""}">{html_cell(v)}</td>' for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{escape(table_id)}">{header_row}{body}</table>'


def metadata_block(summary: RunSummary, config: RunConfig | None, levels: Sequence[RunSummary] = ()) -> str:
    """The run's metadata from ``summary`` (a sweep's first level); the verdict from every one of
    ``levels`` (default: ``summary`` alone), each as it was judged."""
    rows: list[list[object]] = [
        ["endpoint", summary.endpoint],
        ["API", summary.api],
        ["model", summary.model],
        ["started", summary.started_at],
        ["loadgen", summary.loadgen_version],
        ["token counting", summary.token_counting.output_method],
        ["stamps", (summary.clock.stamp_source if summary.clock else None) or "user space (before kernel stamps)"],
    ]
    verdict = _verdict(levels or (summary,))
    if verdict:
        rows.append(["verdict", verdict])
    lost = [f"{name}: {detail.error}" for name, detail in (summary.output_errors or {}).items()]
    lost += [f"worker {name} died" for name in summary.lost_workers]
    if lost:
        rows.append(["results incomplete", "; ".join(lost)])
    html = html_table(["", ""], rows, "metadata", text_columns=2)
    if config:
        html += f"<p>options: <code>{escape(as_flags(config.options))}</code></p>"
        slos = slo_texts(config)
        if slos:
            html += f"<p>SLOs: {escape(', '.join(text for text, *_ in slos))}</p>"
    return html


def _verdict(levels: Sequence[RunSummary]) -> str | None:
    judged = [level for level in levels if level.validity is not None]
    if not judged:
        return None
    invalid = [level for level in judged if level.validity is not None and not level.validity.valid]
    if len(judged) == 1:
        validity = judged[0].validity
        assert validity is not None
        return "valid" if validity.valid else "INVALID: " + "; ".join(validity.reasons)
    head = f"{len(judged) - len(invalid)} of {len(judged)} levels valid"
    reasons = [f"{level.label}: {'; '.join(level.validity.reasons)}" for level in invalid if level.validity]
    return head + (" · INVALID at " + " · ".join(reasons) if reasons else "")


def imported_block(source: ImportedSource) -> str:
    """Where an imported sweep's figures came from, what they mean in loadgen's terms, what they lack."""
    rows: list[list[object]] = [["imported from", source.tool], ["files", ", ".join(source.files)]]
    rows += [[f"loadgen {name}", text] for name, text in source.definitions.items()]
    rows += [["lacks", ", ".join(source.lacks)]]
    rows += [["derived", item] for item in source.derived]
    rows += [["assumption", item] for item in source.assumptions]
    note = "Figures measured by another tool and imported: no histograms or per-request records stand behind them."
    return f'<p class="warn">{note}</p>' + html_table(["", ""], rows, "imported", text_columns=2)


def as_flags(options: dict[str, Any]) -> str:
    """The options as flags a user types: only those given (not the defaults), in their own syntax."""
    flags = []
    for name, value in options.items():
        option = OPTIONS_BY_NAME.get(name)
        if option is None or value in (None, False, [], {}, ()) or value == option.default:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif name == "warmup" and isinstance(value, list) and len(value) == 2:  # (requests, seconds)
            flags.append(f"{flag} {value[1]:g}s" if value[1] else f"{flag} {value[0]}")
        elif name == "slo":
            flags.append(f"{flag} " + ",".join(_slo_flag(t) for t in value if isinstance(t, dict)))
        elif isinstance(value, list) and all(isinstance(item, dict) and "text" in item for item in value):
            flags.append(f"{flag} " + ",".join(str(item["text"]) for item in value))  # --fail-on as typed
        elif isinstance(value, list):
            flags.append(f"{flag} " + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value))
        else:
            flags.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(flags) or "(defaults)"


def _slo_flag(recorded: dict[str, Any]) -> str:
    target = SloTarget(**recorded)
    statistic = f"_{target.statistic}" if target.statistic else ""
    return f"{target.metric}{statistic}={target.threshold_ns / 1e6:g}ms"


def range_text(low: object, high: object) -> str:
    if low is None:
        return "–"
    return str(low) if high in (None, low) else f"{low}–{high}"


def percent_text(value: object) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "–"


def slo_texts(config: RunConfig | None) -> list[tuple[str, str, float]]:
    """(``ttft p99 ≤ 500 ms``, metric, threshold ms) for each SLO a run's config recorded."""
    found = []
    for recorded in (config.options.get("slo") if config else None) or []:
        if isinstance(recorded, dict) and "metric" in recorded:
            target = SloTarget(**recorded)
            threshold = target.threshold_ns / 1e6
            found.append((f"{target.metric} {target.statistic or 'per request'} ≤ {threshold:g} ms", target.metric,
                          threshold))  # fmt: skip
    return found
