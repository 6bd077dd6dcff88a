"""`contact_daily`: per contact, brand and UTC day, the counts the time windows are summed from.

Every day a record of the contact is dated on gets a row (`record_count` counts its dated
times: an event, an order placed or changed, a subscribe or unsubscribe, an account change),
also days after the build's `as_of`. So a new day's windows are sums over a contact-sized
table, and the same table answers which contacts a new day changes: those with a record
dated between the previous build's day and today, and those with opens or clicks on a day
that just left a window. It does not move with the day. The rows of a contact rebuilt whole
are recomputed from the build's scratch tables (email and web events) and its staged orders,
subscribers and customer accounts, and written by difference (`rewrite`); an appended
contact's new records add their counts to its rows (`rewrite.add`: a drop's new day is one
row, and no other day of the contact is read).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from crm_pipeline.profiles import rewrite
from crm_pipeline.profiles.scratch import NEW_LINK, map_link
from crm_pipeline.profiles.slices import in_slice, slice_params
from crm_pipeline.profiles.sql import WHOLE, is_purchase, latest_of, only_recomputed, utc_day_date

KEY = ("contact_id", "brand", "day")
_DELTA = "tmp_profile_daily_delta"

_OPT_OUT = "('unsubscribe', 'bounce', 'complaint')"
_NO_TIME = "CAST(NULL AS TIMESTAMP WITH TIME ZONE)"
# the columns after contact_id, brand and day, in order; each part of the union fills all of them
_COUNTS = ("record_count", "order_count", "purchase_count", "revenue", "email_send_count", "email_open_count",
           "email_click_count", "email_opt_out_count", "web_event_count", "product_view_count")
_LATEST = ("last_open_at", "last_click_at", "last_opt_out_at", "last_browse_at")


def _part(source: str, at: str, where: str = "", **values: str) -> str:
    """One union part: a row per dated time `at` of `source`, its counts and latest times (0 / NULL unless given)."""
    counts = ", ".join(values.get(c, "CAST(0 AS DOUBLE PRECISION)" if c == "revenue" else "0") + f" AS {c}"
                       for c in _COUNTS if c != "record_count")
    latest = ", ".join(values.get(c, _NO_TIME) + f" AS {c}" for c in _LATEST)
    return (f"SELECT contact_id, brand, {utc_day_date(at)} AS day, 1 AS record_count, {counts}, {latest} "
            f"FROM {source} WHERE {at} IS NOT NULL{where}")


# The staged records the daily rows count besides the events: entity -> (key, the columns read).
_STAGED = {
    "subscribers": ("subscriber_id", "s.subscribed_at, s.unsubscribed_at, "
                    f"COALESCE(s.updated_at, {latest_of('s.subscribed_at', 's.unsubscribed_at')}) AS record_at"),
    "customers": ("customer_id", "COALESCE(s.updated_at, s.created_at) AS record_at"),
    "orders": ("order_id", f"s.ordered_at, s.updated_at, CASE WHEN {is_purchase('s.status')} THEN 1 ELSE 0 END AS buy, "
                           "CAST(CAST(s.total AS DECIMAL(18, 2)) AS DOUBLE PRECISION) AS total"),
}
_STAGED_SCRATCH = "tmp_profile_daily_"


def _staged_select(entity: str, link: str) -> str:
    key, columns = _STAGED[entity]
    return f"SELECT m.contact_id, s._brand AS brand, {columns} FROM stg_{entity} s {link.format(entity=entity, key=key)}"


def _staged(entity: str, link: str, kept: bool) -> str:
    """The staged records of `entity` joined to their contact: read from the scratch table `_keep_staged` made
    when `kept`, else joined here."""
    return f"{_STAGED_SCRATCH}{entity}" if kept else f"({_staged_select(entity, link)}) x"


def _keep_staged(conn: sa.Connection, link: str) -> None:
    """The staged records of `_STAGED` joined to their contact once, into scratch tables, for a build summed in
    several slices: each slice's statement would join them again (six joins with identity_map: subscribers are
    counted on three times of theirs, orders on two)."""
    for entity in _STAGED:
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_STAGED_SCRATCH}{entity} AS {_staged_select(entity, link)}"))


def _drop_staged(conn: sa.Connection) -> None:
    for entity in _STAGED:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {_STAGED_SCRATCH}{entity}"))


def _daily_sql(into: str, email: str, web: str, link: str, *, orders: bool = True, where: str = "",
               kept: bool = False) -> str:
    """Daily rows from the email and web event tables `email`, `web` and the staged orders (unless not
    `orders`), subscribers and customer accounts joined to their contact by `link` (see `scratch`; or read from
    `_keep_staged`'s tables when `kept`); `where` (` AND ...` on `contact_id`) narrows the contacts (a slice)."""
    subscribers = _staged("subscribers", link, kept)
    customers = _staged("customers", link, kept)
    parts = [
        _part(email, "occurred_at",
              email_send_count="CASE WHEN event_type = 'send' THEN 1 ELSE 0 END",
              email_open_count="CASE WHEN event_type = 'open' THEN 1 ELSE 0 END",
              email_click_count="CASE WHEN event_type = 'click' THEN 1 ELSE 0 END",
              email_opt_out_count=f"CASE WHEN event_type IN {_OPT_OUT} THEN 1 ELSE 0 END",
              last_open_at=f"CASE WHEN event_type = 'open' THEN occurred_at END",
              last_click_at=f"CASE WHEN event_type = 'click' THEN occurred_at END",
              last_opt_out_at=f"CASE WHEN event_type IN {_OPT_OUT} THEN occurred_at END"),
        _part(web, "occurred_at", web_event_count="1",
              product_view_count="CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END",
              last_browse_at="occurred_at"),
        _part(subscribers, "subscribed_at"),
        _part(subscribers, "unsubscribed_at"),
        _part(subscribers, "record_at"),
        _part(customers, "record_at"),
    ]
    if orders:
        staged = _staged("orders", link, kept)
        parts += [_part(staged, "ordered_at", order_count="1", purchase_count="buy",
                        revenue="CASE WHEN buy = 1 THEN COALESCE(total, 0) ELSE 0 END"),
                  _part(staged, "updated_at")]  # an order's change dates its returns
    union = "\n    UNION ALL ".join(parts)
    sums = ", ".join(f"SUM({c})" for c in _COUNTS)
    latest = ", ".join(f"MAX({c})" for c in _LATEST)
    return f"""
    INSERT INTO {into} (contact_id, brand, day, {", ".join(_COUNTS)}, {", ".join(_LATEST)})
    SELECT contact_id, brand, day, {sums}, {latest}
    FROM ({union}) d
    WHERE 1 = 1{where}
    GROUP BY contact_id, brand, day"""


def build_contact_daily(conn: sa.Connection, *, full: bool = True, whole: bool = True,
                        slices: Sequence[tuple[str | None, str | None]] = ((None, None),)) -> None:
    """Rewrite the `contact_daily` rows of the contacts rebuilt whole (all when `full`; none unless `whole`) after
    `create_scratch`, one range of contacts (`slices`) at a time: at 1M people the aggregate's 20 million groups
    did not fit a 4 GB memory limit. Then add the appended contacts' new records to theirs (after
    `create_new_scratch`)."""
    if whole:
        into = rewrite.begin(conn, "contact_daily", full=full)
        link = map_link(only_recomputed("m", full, WHOLE))
        kept = len(slices) > 1
        if kept:
            _keep_staged(conn, link)
        for lo, hi in slices:
            conn.execute(sa.text(_daily_sql(into, "tmp_profile_email_all", "tmp_profile_web_all", link,
                                            where=in_slice("contact_id", lo, hi), kept=kept)), slice_params(lo, hi))
        if kept:
            _drop_staged(conn)
        rewrite.finish(conn, "contact_daily", KEY, WHOLE, full=full)
    if not full:
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_DELTA} AS SELECT * FROM contact_daily WHERE 1 = 0"))
        conn.execute(sa.text(_daily_sql(_DELTA, "tmp_profile_new_email_all", "tmp_profile_new_web_all", NEW_LINK,
                                        orders=False)))
        rewrite.add(conn, "contact_daily", KEY, _DELTA, sums=_COUNTS, latest=_LATEST)
        conn.execute(sa.text(f"DROP TABLE {_DELTA}"))
