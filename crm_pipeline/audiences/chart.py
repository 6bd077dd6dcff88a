"""The chart a data engineer wants on the audiences asset: sizes over the last 90 days."""

from __future__ import annotations

import datetime as dt

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from crm_pipeline.markdown import figure_png  # noqa: E402
from crm_pipeline.warehouse.audience_schema import audience_sizes  # noqa: E402


def sizes_over_time_png(conn: sa.Connection, as_of: dt.date, *, days: int = 90, top: int = 8) -> bytes:
    """PNG of the across-brands audiences' daily sizes in the `days` before `as_of` (the largest `top`)."""
    frame = pd.read_sql(sa.select(audience_sizes.c.as_of, audience_sizes.c.audience, audience_sizes.c.size)
                        .where(audience_sizes.c.as_of > as_of - dt.timedelta(days=days),
                               audience_sizes.c.as_of <= as_of, audience_sizes.c.brand_scope == ""), conn)
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
