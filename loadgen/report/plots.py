"""Report layer: interactive charts with Plotly.js (hover, zoom, log axes, legends), embedded in
the page so it works offline and fetches nothing.

Figures are written as Plotly's JSON (``data`` and ``layout``) inside ``<script
type="application/json">`` elements, with ``<`` escaped so text from results can never close the
script; one small loader draws them. The Plotly.js bundle comes from the ``plotly`` package and is
included once per page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

MAX_LEVEL_TICKS = 12
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
LOADER = """
document.querySelectorAll('script.plot-spec').forEach(function (spec) {
  var figure = JSON.parse(spec.textContent);
  var div = document.getElementById(spec.dataset.target);
  Plotly.newPlot(div, figure.data, figure.layout, {displaylogo: false, responsive: true, displayModeBar: false});
});
// charts drawn inside a closed <details> have no width yet: size them when it opens
document.querySelectorAll('details').forEach(function (details) {
  details.addEventListener('toggle', function () {
    details.querySelectorAll('.js-plotly-plot').forEach(function (div) { Plotly.Plots.resize(div); });
  });
});
"""


@dataclass
class Chart:
    """One figure: traces added with ``line``/``scatter``/``bars``, lines and marks on top."""

    chart_id: str
    title: str
    x_title: str
    y_title: str
    log_x: bool = False
    log_y: bool = False
    traces: list[dict[str, Any]] = field(default_factory=list)
    shapes: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    height: int = 340
    stacked: bool = False  # bars stacked, each level's parts adding up to its whole

    def _color(self) -> str:
        return PALETTE[len(self.traces) % len(PALETTE)]

    def line(self, name: str, xs: Sequence[float | None], ys: Sequence[float | None], dashed: bool = False,
             text: Sequence[str] | None = None, unit: str = "", errors: tuple[list[float], list[float]] | None = None,
             markers: bool = True) -> Chart:  # fmt: skip
        trace: dict[str, Any] = {
            "type": "scatter", "mode": "lines+markers" if markers else "lines", "name": name, "x": list(xs),
            "y": list(ys), "line": {"color": self._color(), "dash": "dash" if dashed else "solid"},
            "hovertemplate": f"%{{y:.4g}} {unit}<extra>{escape(name)}</extra>",
        }  # fmt: skip
        if text is not None:
            trace["text"] = list(text)
            trace["hovertemplate"] = f"%{{text}}: %{{y:.4g}} {unit}<extra>{escape(name)}</extra>"
        if errors is not None:
            trace["error_y"] = {"type": "data", "symmetric": False, "array": errors[1], "arrayminus": errors[0]}
        self.traces.append(trace)
        return self

    def scatter(self, name: str, xs: Sequence[float], ys: Sequence[float], text: Sequence[str] | None = None,
                labelled: bool = False, symbol: str = "circle", color: str | None = None) -> Chart:  # fmt: skip
        trace: dict[str, Any] = {
            "type": "scatter", "mode": "markers+text" if labelled else "markers", "name": name, "x": list(xs),
            "y": list(ys), "marker": {"color": color or self._color(), "symbol": symbol, "size": 8},
        }  # fmt: skip
        if text is not None:
            trace["text"] = list(text)
            trace["textposition"] = "top center"
            trace["hovertemplate"] = "%{text}: %{x:.4g}, %{y:.4g}<extra></extra>"
        self.traces.append(trace)
        return self

    def bars(self, name: str, xs: Sequence[str], ys: Sequence[float | None], unit: str = "") -> Chart:
        self.traces.append({"type": "bar", "name": name, "x": list(xs), "y": list(ys),
                            "marker": {"color": self._color()},
                            "hovertemplate": f"%{{x}}: %{{y:.4g}} {unit}<extra></extra>"})  # fmt: skip
        return self

    def limit(self, y: float, label: str) -> Chart:
        """A horizontal line across the chart (an SLO, speedup 1×) with its label."""
        label_y = math.log10(y) if self.log_y and y > 0 else y
        self.shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": y, "y1": y,
                            "line": {"color": "#888", "dash": "dot", "width": 1.5}})  # fmt: skip
        font = {"size": 11, "color": "#666"}
        self.annotations.append({"xref": "paper", "x": 1, "y": label_y, "text": label, "showarrow": False,
                                 "xanchor": "right", "yanchor": "bottom", "font": font})  # fmt: skip
        return self

    def band(self, x0: float, x1: float, label: str) -> Chart:
        """A shaded span of x (the warm-up, a level's window)."""
        if self.log_x:
            x0, x1 = (math.log10(x0) if x0 > 0 else x0), (math.log10(x1) if x1 > 0 else x1)
        self.shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
                            "fillcolor": "#ddd", "opacity": 0.5, "line": {"width": 0}, "layer": "below"})  # fmt: skip
        self.annotations.append({"xref": "x", "yref": "paper", "x": x0, "y": 1, "text": label, "showarrow": False,
                                 "xanchor": "left", "font": {"size": 10, "color": "#666"}})  # fmt: skip
        return self

    def mark(self, x: float, y: float, label: str) -> Chart:
        # Plotly places annotations on a log axis by the logarithm of the value
        x, y = (math.log10(x) if self.log_x and x > 0 else x), (math.log10(y) if self.log_y and y > 0 else y)
        self.annotations.append({"x": x, "y": y, "text": label, "showarrow": True, "arrowhead": 2, "ax": 30,
                                 "ay": -30, "font": {"size": 11}})  # fmt: skip
        return self

    def _log_ticks(self) -> dict[str, Any]:
        """A log axis labelled at the levels themselves (1 2 4 … 64), or at powers of ten: Plotly's
        own minor labels read "5 2 100 5 2"."""
        xs = sorted({x for trace in self.traces for x in trace.get("x", ()) if isinstance(x, int | float) and x > 0})
        if 0 < len(xs) <= MAX_LEVEL_TICKS:
            return {"tickvals": xs, "ticktext": [f"{x:g}" for x in xs]}
        return {"dtick": 1}

    def html(self) -> str:
        if not any(_has_points(trace) for trace in self.traces):  # e.g. an imported sweep without E2E
            return f'<div class="chart empty" id="{escape(self.chart_id)}">{escape(self.title)}: no data</div>'
        axis = {"gridcolor": "#eee", "zeroline": False, "automargin": True}
        layout = {
            "title": {"text": self.title, "font": {"size": 14}, "x": 0.02},
            "xaxis": {**axis, "title": {"text": self.x_title}, "type": "log" if self.log_x else "-",
                      **(self._log_ticks() if self.log_x else {})},
            "yaxis": {**axis, "title": {"text": self.y_title}, "type": "log" if self.log_y else "-",
                      **({"dtick": 1} if self.log_y else {})},
            "height": self.height, "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
            "legend": {"orientation": "h", "y": -0.25}, "shapes": self.shapes, "annotations": self.annotations,
            "hovermode": "closest", "plot_bgcolor": "#fff", **({"barmode": "stack"} if self.stacked else {}),
        }  # fmt: skip
        spec = json.dumps({"data": [_plain_trace(trace) for trace in self.traces], "layout": _plain_layout(layout)},
                          allow_nan=False)  # fmt: skip
        spec = spec.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        chart_id = escape(self.chart_id)
        script = f'<script type="application/json" class="plot-spec" data-target="{chart_id}">{spec}</script>'
        return f'<div class="chart" id="{chart_id}"></div>{script}'


def _has_points(trace: dict[str, Any]) -> bool:
    ys = trace.get("y") or [None] * len(trace.get("x") or ())
    return any(x is not None and (y is not None or trace.get("type") == "bar")
               for x, y in zip(trace.get("x") or (), ys, strict=False))  # fmt: skip


def _plain(value: Any) -> Any:
    """Text from results shown as text: Plotly reads tags in labels (``<a href>`` makes a link), so
    ``<`` and ``&`` become entities, which it shows as the characters themselves."""
    if isinstance(value, str):
        return escape(value, quote=False)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _plain_trace(trace: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(value) if key in ("name", "text", "x", "y") else value for key, value in trace.items()}


def _plain_layout(layout: dict[str, Any]) -> dict[str, Any]:
    annotations = [{**note, "text": _plain(note["text"])} for note in layout["annotations"]]
    titled = {key: {**layout[key], "title": {"text": _plain(layout[key]["title"]["text"])}}
              for key in ("xaxis", "yaxis")}  # fmt: skip
    return {**layout, **titled, "title": {**layout["title"], "text": _plain(layout["title"]["text"])},
            "annotations": annotations}  # fmt: skip


def long_tail(values: Sequence[float | None]) -> bool:
    """A log axis pays when the largest value is over 20× the smallest positive one."""
    positive = [v for v in values if v is not None and v > 0]
    return bool(positive) and max(positive) > 20 * min(positive)


def plotly_script() -> str:
    """Plotly.js itself (once per page) and the loader that draws every figure."""
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs().replace("</script", "<\\/script")
    return f"<script>{bundle}</script><script>{LOADER}</script>"
