"""The chart on the lifecycle asset: moves between stages over the last days, as horizontal bars.

Written as SVG text (crm_pipeline/svg_chart.py), not drawn with matplotlib: the chart follows every drop that moves
the 90-day counts, and importing matplotlib cost about 0.5 CPU s (1 s wall) per such run, more than the funnel's
queries.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from crm_pipeline.svg_chart import horizontal_bars

# Part of the stored chart's inputs (crm_pipeline/defs/stored_charts.py): raise it when the drawing changes.
VERSION = 2


def transitions_svg(moves: pd.DataFrame, as_of: dt.date, days: int) -> bytes:
    """SVG of `from -> to` contact counts (a funnel's `from_stage, to_stage, contacts` frame), one bar per move in
    the frame's order, each labelled with its count, over an axis of contacts."""
    labels = (moves["from_stage"].astype(str) + " -> " + moves["to_stage"].astype(str)).tolist()
    return horizontal_bars(labels, [int(n) for n in moves["contacts"]],
                           f"Lifecycle moves across brands, {days} days to {as_of}", "contacts", empty="no moves")
