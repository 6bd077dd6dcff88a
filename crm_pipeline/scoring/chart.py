"""The chart on the lifecycle asset: moves between stages over the last days, as horizontal bars.

Written as SVG text, not drawn with matplotlib: the chart follows every drop that moves the 90-day counts, and
importing matplotlib cost about 0.5 CPU s (1 s wall) per such run, more than the funnel's queries.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape

import pandas as pd

# Part of the stored chart's inputs (crm_pipeline/defs/stored_charts.py): raise it when the drawing changes.
VERSION = 2

_WIDTH, _LABELS, _ROW, _TOP, _BOTTOM, _RIGHT = 760, 190, 22, 34, 44, 60
_FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def _ticks(top: int) -> list[int]:
    """Round axis marks from 0 to at least `top`: steps of 1, 2 or 5 times a power of ten, at most 6 marks."""
    raw = max(top, 1) / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(int(step), 1)
    return list(range(0, math.ceil(max(top, 1) / step) * step + 1, step))


def transitions_svg(moves: pd.DataFrame, as_of: dt.date, days: int) -> bytes:
    """SVG of `from -> to` contact counts (a funnel's `from_stage, to_stage, contacts` frame), one bar per move in
    the frame's order, each labelled with its count, over an axis of contacts."""
    rows = max(len(moves), 3)
    height = _TOP + rows * _ROW + _BOTTOM
    plot = _WIDTH - _LABELS - _RIGHT
    ticks = _ticks(int(moves["contacts"].max()) if not moves.empty else 1)
    scale = plot / ticks[-1]
    base = _TOP + rows * _ROW
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
             f'viewBox="0 0 {_WIDTH} {height}" {_FONT} font-size="12">',
             f'<rect width="{_WIDTH}" height="{height}" fill="#ffffff"/>',
             f'<text x="{_WIDTH / 2:.0f}" y="20" text-anchor="middle" font-size="14">'
             f'Lifecycle moves across brands, {days} days to {as_of}</text>']
    for tick in ticks:
        x = _LABELS + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{base}" stroke="#dddddd"/>'
                     f'<text x="{x:.1f}" y="{base + 15}" text-anchor="middle" font-size="10">{tick:,}</text>')
    parts.append(f'<text x="{_LABELS + plot / 2:.0f}" y="{base + 34}" text-anchor="middle">contacts</text>')
    if moves.empty:
        parts.append(f'<text x="{_LABELS + plot / 2:.0f}" y="{_TOP + rows * _ROW / 2:.0f}" '
                     'text-anchor="middle">no moves</text>')
    for i, (source, target, contacts) in enumerate(moves[["from_stage", "to_stage", "contacts"]]
                                                   .itertuples(index=False)):
        y, width = _TOP + i * _ROW, int(contacts) * scale   # a few dozen moves at most: one bar each
        parts.append(f'<text x="{_LABELS - 6}" y="{y + 15}" text-anchor="end">'
                     f'{escape(str(source))} -&gt; {escape(str(target))}</text>'
                     f'<rect x="{_LABELS}" y="{y + 3}" width="{width:.1f}" height="{_ROW - 6}" fill="#4C72B0"/>'
                     f'<text x="{_LABELS + width + 4:.1f}" y="{y + 15}" font-size="10">{int(contacts):,}</text>')
    parts.append(f'<line x1="{_LABELS}" y1="{_TOP}" x2="{_LABELS}" y2="{base}" stroke="#333333"/></svg>')
    return "\n".join(parts).encode()
