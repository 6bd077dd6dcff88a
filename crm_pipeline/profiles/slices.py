"""Contact slices: a full build numbers the timeline one range of contact ids at a time.

At 1M people the timeline's numbering, a window over 38 million rows with their text, did not fit a
4 GB DuckDB memory limit: it spilled most of its rows and took 371 s, against 136 s in five ranges of
contacts (each fits). A contact's rows never depend on another contact's, so a statement run per range
gives the same rows. Ranges are half-open and cover every id (the first has no lower bound, the last no
upper one), so the boundaries only balance the slices: they need not name every contact. Not worth it
where a statement's cost is its joins rather than its memory: slicing the daily counts and the golden
records re-ran their joins per range and cost more than it saved (measured at 1M people). Portable SQL
(NTILE, comparisons of text), on DuckDB and PostgreSQL alike.
"""

from __future__ import annotations

import math

import sqlalchemy as sa

# Timeline rows numbered at a time: about 1 GB of window state at the timeline's width, inside a 4 GB memory
# limit with the build's scratch tables beside it.
ROWS_PER_SLICE = 8_000_000


def slice_count(rows: int) -> int:
    return max(1, math.ceil(rows / ROWS_PER_SLICE))


def contact_slices(conn: sa.Connection, contacts_sql: str, count: int) -> list[tuple[str | None, str | None]]:
    """`count` ranges (lo, hi) of contact ids, balanced over the ids `contacts_sql` selects (a SELECT of
    `contact_id`); `[(None, None)]` (everyone) for one."""
    if count <= 1:
        return [(None, None)]
    starts = conn.execute(sa.text(f"""
        SELECT MIN(contact_id) FROM (
            SELECT contact_id, NTILE({int(count)}) OVER (ORDER BY contact_id) AS slice
            FROM (SELECT DISTINCT contact_id FROM ({contacts_sql}) c) d
        ) t GROUP BY slice ORDER BY 1""")).scalars().all()
    bounds = [None, *starts[1:], None]
    return list(zip(bounds[:-1], bounds[1:]))


def in_slice(column: str, lo: str | None, hi: str | None) -> str:
    """The condition (with ` AND ` before it, or '') keeping `column` in [lo, hi): binds :slice_lo, :slice_hi."""
    return (f" AND {column} >= :slice_lo" if lo is not None else "") + \
           (f" AND {column} < :slice_hi" if hi is not None else "")


def slice_params(lo: str | None, hi: str | None) -> dict:
    return {k: v for k, v in (("slice_lo", lo), ("slice_hi", hi)) if v is not None}


EVENT_SCRATCH = ("tmp_profile_email_all", "tmp_profile_web_all")


def event_slices(conn: sa.Connection) -> list[tuple[str | None, str | None]]:
    """The timeline's slices in a build after `create_scratch`: one per `ROWS_PER_SLICE` of its email and web
    events (one for an incremental build's few contacts), balanced over the contacts of `identity_map`."""
    rows = sum(conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in EVENT_SCRATCH)
    return contact_slices(conn, "SELECT contact_id FROM identity_map", slice_count(rows))
