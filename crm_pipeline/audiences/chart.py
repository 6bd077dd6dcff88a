"""The chart a data engineer wants on the audiences asset: sizes over the last 90 days.

Written as SVG text (crm_pipeline/svg_chart.py), not drawn with matplotlib: the sizes change with every new day or
drop, and importing matplotlib and drawing cost about 0.5 CPU s per such run.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.svg_chart import lines
from crm_pipeline.warehouse.audience_schema import audience_sizes

# Part of the stored chart's inputs (crm_pipeline/defs/stored_charts.py): raise it when the drawing changes.
VERSION = 2


def sizes_over_time(conn: sa.Connection, as_of: dt.date, *, days: int = 90) -> pd.DataFrame:
    """The across-brands audiences' daily sizes (as_of, audience, size) in the `days` before `as_of`: what the
    chart draws."""
    return pd.read_sql(sa.select(audience_sizes.c.as_of, audience_sizes.c.audience, audience_sizes.c.size)
                       .where(audience_sizes.c.as_of > as_of - dt.timedelta(days=days),
                              audience_sizes.c.as_of <= as_of, audience_sizes.c.brand_scope == "")
                       .order_by(audience_sizes.c.as_of, audience_sizes.c.audience), conn)


def sizes_over_time_svg(frame: pd.DataFrame, as_of: dt.date, *, days: int = 90, top: int = 8) -> bytes:
    """SVG of `sizes_over_time`'s frame: the largest `top` audiences on the last day, one line each over every day
    from the first in the frame to the last (a day without a size is joined over), largest first in the legend."""
    title = f"Audience sizes, last {days} days to {as_of}"
    if frame.empty:
        return lines([], {}, title, "contacts", empty="no sizes")
    wide = frame.pivot_table(index="as_of", columns="audience", values="size", aggfunc="sum")
    wide.index = pd.to_datetime(wide.index)
    wide = wide.reindex(pd.date_range(wide.index.min(), wide.index.max(), freq="D"))
    largest = wide.iloc[-1].sort_values(ascending=False, kind="stable").index[:top]
    shown = wide[largest].astype(object).where(wide[largest].notna(), None)
    return lines(wide.index.strftime("%Y-%m-%d").tolist(), {name: shown[name].tolist() for name in largest},
                 title, "contacts", empty="no sizes")
