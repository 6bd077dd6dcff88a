"""The chart a data engineer wants on the audiences asset: sizes over the last 90 days."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.markdown import figure_png
from crm_pipeline.warehouse.audience_schema import audience_sizes

# Part of the stored chart's inputs (crm_pipeline/defs/stored_charts.py): raise it when the drawing changes.
VERSION = 1


def sizes_over_time(conn: sa.Connection, as_of: dt.date, *, days: int = 90) -> pd.DataFrame:
    """The across-brands audiences' daily sizes (as_of, audience, size) in the `days` before `as_of`: what the
    chart draws."""
    return pd.read_sql(sa.select(audience_sizes.c.as_of, audience_sizes.c.audience, audience_sizes.c.size)
                       .where(audience_sizes.c.as_of > as_of - dt.timedelta(days=days),
                              audience_sizes.c.as_of <= as_of, audience_sizes.c.brand_scope == "")
                       .order_by(audience_sizes.c.as_of, audience_sizes.c.audience), conn)


def sizes_over_time_png(frame: pd.DataFrame, as_of: dt.date, *, days: int = 90, top: int = 8) -> bytes:
    """PNG of `sizes_over_time`'s frame: the largest `top` audiences' daily sizes."""
    import matplotlib  # seconds to import: only in the runs that draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4), dpi=90)
    if not frame.empty:
        wide = frame.pivot_table(index="as_of", columns="audience", values="size", aggfunc="sum").sort_index()
        largest = wide.iloc[-1].sort_values(ascending=False).index[:top]
        wide[largest].plot(ax=axes, marker="o" if len(wide) < 15 else None)
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    axes.set_title(f"Audience sizes, last {days} days to {as_of}")
    axes.set_ylabel("contacts")
    figure.tight_layout()
    return figure_png(figure)
