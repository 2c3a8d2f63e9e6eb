"""Report layer: small, dependency-free SVG line charts for the HTML report (works offline)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 44


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    return [start + i * step for i in range(count + 2) if start + i * step <= high + step * 0.01]


def _label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[Series],
    *,
    chart_id: str,
    log_x: bool = False,
    markers: Sequence[tuple[float, str]] = (),
    y_line: float | None = None,
) -> str:
    """An SVG chart; ``markers`` are vertical lines with a label (e.g. the knee, the crossover)."""
    points = [p for s in series for p in s.points if p[1] is not None and (p[0] > 0 or not log_x)]
    if not points:
        return f'<p class="empty">{escape(title)}: nothing measured</p>'

    def fx(x: float) -> float:
        return math.log2(x) if log_x else x

    xs = [fx(p[0]) for p in points]
    ys = [p[1] for p in points] + ([y_line] if y_line is not None else [])
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = 0.0, max(ys) * 1.08 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (fx(x) - x_low) / ((x_high - x_low) or 1.0) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - (y - y_low) / ((y_high - y_low) or 1.0) * plot_h

    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="title">{escape(title)}</text>',
    ]
    for tick in _ticks(y_low, y_high):
        y = py(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>'
        )
    last_x = -1e9
    for value in sorted({p[0] for p in points}):
        if px(value) - last_x < 36:  # keep labels apart
            continue
        last_x = px(value)
        parts.append(
            f'<text x="{px(value):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{_label(value)}</text>'
        )
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>'
    )
    if y_line is not None:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(y_line):.1f}" y2="{py(y_line):.1f}" class="limit"/>'
        )
    for x, text in markers:
        parts.append(
            f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="marker"/>'
            f'<text x="{px(x) + 4:.1f}" y="{TOP + 12}" class="marker-label">{escape(text)}</text>'
        )
    for number, line in enumerate(series):
        valid = [(x, y) for x, y in line.points if y is not None and (x > 0 or not log_x)]
        if not valid:
            continue
        colour = PALETTE[number % len(PALETTE)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in valid)
        dash = ' stroke-dasharray="5 3"' if line.dashed else ""
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in valid]
        parts.append(
            f'<text x="{LEFT + 8}" y="{TOP + 14 + 14 * number}" text-anchor="start" '
            f'fill="{colour}" class="legend">{escape(line.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
