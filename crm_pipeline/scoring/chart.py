"""The chart on the lifecycle asset: moves between stages over the last days, as horizontal bars."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from crm_pipeline.markdown import figure_png

# Part of the stored chart's inputs (crm_pipeline/defs/stored_charts.py): raise it when the drawing changes.
VERSION = 1


def transitions_png(moves: pd.DataFrame, as_of: dt.date, days: int) -> bytes:
    """PNG of `from -> to` contact counts (a funnel's `from_stage, to_stage, contacts` frame), one bar per move."""
    import matplotlib  # seconds to import: only in the runs that draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 0.8 + 0.32 * max(len(moves), 3)), dpi=90)
    if not moves.empty:
        labels = moves["from_stage"] + " -> " + moves["to_stage"]
        bars = axes.barh(labels[::-1], moves["contacts"][::-1], color="#4C72B0")
        axes.bar_label(bars, fontsize=7, padding=2)
    else:
        axes.text(0.5, 0.5, "no moves", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(f"Lifecycle moves across brands, {days} days to {as_of}")
    axes.set_xlabel("contacts")
    figure.tight_layout()
    return figure_png(figure)
