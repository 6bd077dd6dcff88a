"""Small charts for asset metadata written as SVG text, not drawn with matplotlib.

The audiences and lifecycle charts follow every new day or drop; importing matplotlib and drawing cost about 0.5 CPU
s per such run, more than some of the stage's queries. A chart here is a few dozen SVG elements: a title, round axis
marks, and bars or lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")   # matplotlib's default cycle, so the lines keep the colours the PNG had

_WIDTH = 760


def ticks(top: float) -> list[int]:
    """Round axis marks from 0 to at least `top`: steps of 1, 2 or 5 times a power of ten, at most 6 marks."""
    raw = max(top, 1) / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(int(step), 1)
    return list(range(0, math.ceil(max(top, 1) / step) * step + 1, step))


def _open(height: int, title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
            f'viewBox="0 0 {_WIDTH} {height}" {FONT} font-size="12">',
            f'<rect width="{_WIDTH}" height="{height}" fill="#ffffff"/>',
            f'<text x="{_WIDTH / 2:.0f}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>']


def horizontal_bars(labels: Sequence[str], values: Sequence[int], title: str, axis: str, *,
                    empty: str = "no rows") -> bytes:
    """One bar per label, top to bottom in the given order, each with its count, over an axis named `axis`."""
    left, row, top, bottom, right = 190, 22, 34, 44, 60
    rows = max(len(labels), 3)
    height = top + rows * row + bottom
    plot = _WIDTH - left - right
    marks = ticks(max(values) if len(values) else 1)
    scale = plot / marks[-1]
    base = top + rows * row
    parts = _open(height, title)
    for tick in marks:
        x = left + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{base}" stroke="#dddddd"/>'
                     f'<text x="{x:.1f}" y="{base + 15}" text-anchor="middle" font-size="10">{tick:,}</text>')
    parts.append(f'<text x="{left + plot / 2:.0f}" y="{base + 34}" text-anchor="middle">{escape(axis)}</text>')
    if not len(labels):
        parts.append(f'<text x="{left + plot / 2:.0f}" y="{top + rows * row / 2:.0f}" '
                     f'text-anchor="middle">{escape(empty)}</text>')
    for i, (label, value) in enumerate(zip(labels, values)):   # a few dozen bars at most
        y, width = top + i * row, int(value) * scale
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(str(label))}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" fill="#4C72B0"/>'
                     f'<text x="{left + width + 4:.1f}" y="{y + 15}" font-size="10">{int(value):,}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#333333"/></svg>')
    return "\n".join(parts).encode()


def lines(days: Sequence[str], series: dict[str, Sequence[float | None]], title: str, axis: str, *,
          empty: str = "no rows") -> bytes:
    """One line per series over `days` (x labels, evenly spaced), with a legend in the series' order and its last
    value; a None breaks no line (the points on either side are joined), it is only not marked. Points are marked
    when there are fewer than 15 days."""
    left, top, plot_height, bottom, legend = 64, 34, 250, 44, 250
    height = top + plot_height + bottom
    plot = _WIDTH - left - legend
    base = top + plot_height
    known = [v for values in series.values() for v in values if v is not None]
    marks = ticks(max(known) if known else 1)
    scale = plot_height / marks[-1]
    step = plot / max(len(days) - 1, 1)

    def x_of(i: int) -> float:
        return left + (i * step if len(days) > 1 else plot / 2)

    parts = _open(height, title)
    for tick in marks:
        y = base - tick * scale
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot}" y2="{y:.1f}" stroke="#dddddd"/>'
                     f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:,}</text>')
    every = max(math.ceil(len(days) / 6), 1)   # at most 6 day labels, the last day always among them
    for i in range(len(days) - 1, -1, -every):
        parts.append(f'<text x="{x_of(i):.1f}" y="{base + 15}" text-anchor="middle" font-size="10">'
                     f'{escape(str(days[i]))}</text>')
    parts.append(f'<text x="14" y="{top + plot_height / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_height / 2:.0f})">{escape(axis)}</text>')
    if not series:
        parts.append(f'<text x="{left + plot / 2:.0f}" y="{top + plot_height / 2:.0f}" '
                     f'text-anchor="middle">{escape(empty)}</text>')
    for n, (name, values) in enumerate(series.items()):   # a handful of lines of at most a few hundred points
        colour = COLOURS[n % len(COLOURS)]
        points = [(x_of(i), base - v * scale) for i, v in enumerate(values) if v is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        if len(days) < 15:
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points)
        last = next((v for v in reversed(values) if v is not None), None)
        y = top + 8 + n * 18
        parts.append(f'<line x1="{left + plot + 12}" y1="{y}" x2="{left + plot + 30}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="2"/><text x="{left + plot + 35}" y="{y + 4}" font-size="10">'
                     f'{escape(str(name))}{"" if last is None else f" ({int(last):,})"}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#333333"/>'
                 f'<line x1="{left}" y1="{base}" x2="{left + plot}" y2="{base}" stroke="#333333"/></svg>')
    return "\n".join(parts).encode()
