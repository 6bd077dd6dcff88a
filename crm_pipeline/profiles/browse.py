"""`contact_browse_daily`: per contact, brand, UTC day and top-level category, the web events on a product.

What the 360 profile's `top_category_browsed` is counted from, so a profile is recomputed from
per-day counts instead of the contact's web events (the largest source, and it grows every day).
Like `contact_daily` it holds every day, also those after the build's `as_of`: it does not move
with the day, and new records only add to it (`rewrite.add`). A contact rebuilt whole gets its
rows recomputed from its events; a catalogue change rebuilds the contacts of that brand (a
product's category names the row).
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.profiles import rewrite
from crm_pipeline.profiles.sql import WHOLE, utc_day_date
from crm_pipeline.warehouse.profile_schema import contact_browse_daily
from crm_pipeline.warehouse.schema import metadata

KEY = ("contact_id", "brand", "day", "top_category")
_DELTA = "tmp_profile_browse_delta"


def create_browse_table(bind: sa.Engine | sa.Connection) -> bool:
    """Create the table if it is missing; True when it was (a warehouse profiled before it existed needs a full
    build to fill it)."""
    missing = not sa.inspect(bind).has_table(contact_browse_daily.name)
    if missing:
        metadata.create_all(bind, tables=[contact_browse_daily])
    return missing


def _insert(into: str, web: str) -> str:
    return (f"INSERT INTO {into} ({', '.join(c.name for c in contact_browse_daily.columns)}) "
            f"SELECT contact_id, brand, {utc_day_date('occurred_at')}, top_category, COUNT(*) FROM {web} "
            f"WHERE top_category IS NOT NULL GROUP BY contact_id, brand, {utc_day_date('occurred_at')}, top_category")


def build_browse_daily(conn: sa.Connection, *, full: bool = True, whole: bool = True) -> None:
    """Rewrite the rows of the contacts rebuilt whole (all when `full`; none unless `whole`) from
    `tmp_profile_web_all`; add the appended contacts' new web events (`tmp_profile_new_web_all`) to theirs."""
    if whole:
        into = rewrite.begin(conn, contact_browse_daily.name, full=full)
        conn.execute(sa.text(_insert(into, "tmp_profile_web_all")))
        rewrite.finish(conn, contact_browse_daily.name, KEY, WHOLE, full=full)
    if not full:
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_DELTA} AS SELECT * FROM {contact_browse_daily.name} "
                             "WHERE 1 = 0"))
        conn.execute(sa.text(_insert(_DELTA, "tmp_profile_new_web_all")))
        rewrite.add(conn, contact_browse_daily.name, KEY, _DELTA, sums=("web_event_count",))
        conn.execute(sa.text(f"DROP TABLE {_DELTA}"))
