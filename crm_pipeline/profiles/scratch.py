"""Scratch tables of one profile build: each source joined to its contact once, cut at `as_of`.

The 360 figures and the timeline read a contact's orders, subscriber records and accounts; the
timeline and the daily counts its email and web events. Joining the staging tables to their
contacts once, into temporary tables, keeps the build to one pass over each. Temporary tables
are private to the build's connection and dropped at its end (plain `CREATE TEMPORARY TABLE
... AS SELECT`, which DuckDB and PostgreSQL both run). An incremental build reads:
- orders, subscriber records and accounts of the contacts whose 360 figures it recomputes (`PROFILED`),
  email and web events only of those it rebuilds whole (`tmp_profile_whole`): kept whole
  (`tmp_profile_email_all`, `tmp_profile_web_all`: `contact_daily` holds every day, also those
  after `as_of`), `tmp_profile_email` and `tmp_profile_web` are views of them cut at `as_of`;
- the appended contacts' new records, by lineage from the new files only (`create_new_scratch`);
- on a new day, the appended contacts' records dated into it (`create_window_scratch`).
No step of an incremental build reads the history of a contact's events.
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from crm_pipeline.profiles.sql import (APPEND, NEW, PRICE_TERCILE_CUTS, PROFILED, WHOLE, counts, is_purchase,
                                       latest_of, only_recomputed, top_level_category)

SCRATCH = ("tmp_profile_products", "tmp_profile_orders", "tmp_profile_email_all", "tmp_profile_web_all",
           "tmp_profile_subscribers", "tmp_profile_customers")
VIEWS = ("tmp_profile_email", "tmp_profile_web")
NEW_PARTS = ("email_all", "web_all", "subscribers")
WINDOW_PARTS = ("orders", "email_all", "web_all", "subscribers")
_EXTRA = tuple(f"tmp_profile_new_{p}" for p in NEW_PARTS) + tuple(f"tmp_profile_win_{p}" for p in WINDOW_PARTS)


def map_link(scope: str) -> str:
    """Records joined to their contact through `identity_map` (`scope`: a join keeping some contacts, or '')."""
    return ("JOIN identity_map m ON m.entity = '{entity}' AND m.brand = s._brand AND m.source_key = s.{key}"
            + scope.replace("{", "{{").replace("}", "}}"))


# New records joined to their contact by the staged row's lineage (two integers): only rows of the new files.
NEW_LINK = (f"JOIN {NEW} m ON m._file_id = s._file_id AND m._row_number = s._row_number "
             "AND m.entity = '{entity}'")

# Per scratch table: its entity and key, and its SELECT (`{link}` joins the source `s` to its contact `m`,
# `{where}` adds conditions on `s`).
_STATEMENTS = {
    # The catalogue per selling brand: top-level category and the price band by the brand's price
    # terciles (NTILE(3) over list price; a price on a tercile's upper edge belongs to that tercile).
    "products": (None, None, f"""
        WITH {PRICE_TERCILE_CUTS}
        SELECT p._brand AS brand, p.sku, p.name, {top_level_category('p.category')} AS top_category, p.price,
               c.low_max, c.mid_max
        FROM stg_products p LEFT JOIN cuts c ON c.brand = p._brand"""),
    "orders": ("orders", "order_id", f"""
        SELECT m.contact_id, s._brand AS brand, s.order_id, s.status, s.total, s.currency, s.ordered_at,
               CASE WHEN {is_purchase('s.status')} THEN 1 ELSE 0 END AS is_purchase,
               {latest_of('s.ordered_at', 's.updated_at')} AS changed_at
        FROM stg_orders s {{link}}
        WHERE s.ordered_at < :as_of_end{{where}}"""),
    "email_all": ("email_events", "event_id", """
        SELECT m.contact_id, s._brand AS brand, s.event_id, s.event_type, s.occurred_at, s.campaign_id, s.url
        FROM stg_email_events s {link}
        WHERE s.occurred_at IS NOT NULL{where}"""),
    "web_all": ("web_events", "event_id", """
        SELECT m.contact_id, s._brand AS brand, s.event_id, s.event_type, s.occurred_at, s.url, s.sku,
               p.name AS product_name, p.top_category
        FROM stg_web_events s {link}
        LEFT JOIN tmp_profile_products p ON p.brand = s._brand AND p.sku = s.sku
        WHERE s.occurred_at IS NOT NULL{where}"""),
    # Subscriber records as they stood at the end of as_of: the record as stored when it was last
    # changed by then; otherwise what its own dates say (unsubscribed by then, else subscribed by then).
    "subscribers": ("subscribers", "subscriber_id", f"""
        WITH dated AS (
            SELECT m.contact_id, s._brand AS brand, s.subscriber_id, s.email, s.status, s.source,
                   s.subscribed_at, s.unsubscribed_at,
                   COALESCE(s.updated_at, {latest_of('s.subscribed_at', 's.unsubscribed_at')}) AS record_at
            FROM stg_subscribers s {{link}}
            WHERE 1 = 1{{where}}
        )
        SELECT contact_id, brand, subscriber_id, email, source,
               CASE WHEN {counts('record_at')} THEN status
                    WHEN unsubscribed_at < :as_of_end AND status IN ('unsubscribed', 'bounced') THEN status
                    WHEN subscribed_at < :as_of_end THEN 'subscribed' END AS status,
               CASE WHEN {counts('record_at')} THEN record_at
                    WHEN unsubscribed_at < :as_of_end AND status IN ('unsubscribed', 'bounced') THEN unsubscribed_at
                    WHEN subscribed_at < :as_of_end THEN subscribed_at END AS state_at,
               CASE WHEN subscribed_at < :as_of_end THEN subscribed_at END AS subscribed_at,
               CASE WHEN unsubscribed_at < :as_of_end THEN unsubscribed_at END AS unsubscribed_at
        FROM dated
        WHERE {counts('record_at')} OR unsubscribed_at < :as_of_end OR subscribed_at < :as_of_end"""),
    "customers": ("customers", "customer_id", f"""
        SELECT DISTINCT m.contact_id, s._brand AS brand
        FROM stg_customers s {{link}}
        WHERE {counts('COALESCE(s.updated_at, s.created_at)')}{{where}}"""),
}


def _create(conn: sa.Connection, name: str, part: str, link: str, where: str, bound: dict) -> None:
    entity, key, sql = _STATEMENTS[part]
    if entity is not None:
        sql = sql.replace("{link}", link.format(entity=entity, key=key)).replace("{where}", where)
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {name} AS {sql}"),
                 {k: v for k, v in bound.items() if re.search(rf":{k}\b", sql)})


def _cut_views(conn: sa.Connection, params: dict, names: dict[str, str]) -> None:
    """`names`: view -> table. A view's text cannot take a bound parameter: the cut is a timestamp literal."""
    end = params["as_of_end"].strftime("%Y-%m-%d %H:%M:%S+00")
    for view, table in names.items():
        conn.execute(sa.text(f"CREATE TEMPORARY VIEW {view} AS SELECT * FROM {table} "
                             f"WHERE occurred_at < TIMESTAMP WITH TIME ZONE '{end}'"))


def create_scratch(conn: sa.Connection, params: dict, *, full: bool = True, whole: bool = True) -> None:
    """The scratch tables: orders, subscribers and customer accounts of the recomputed contacts (all when `full`),
    email and web events of those rebuilt whole (`WHOLE`; none read when `whole` is false: there are none)."""
    drop_scratch(conn)
    bound = {"as_of_end": params["as_of_end"]}
    for part in ("products", "orders", "subscribers", "customers", "email_all", "web_all"):
        events = part in ("email_all", "web_all")
        scope = only_recomputed("m", full, WHOLE if events else PROFILED)
        _create(conn, f"tmp_profile_{part}", part, map_link(scope), "" if whole or not events else " AND 1 = 0",
                bound)
    _cut_views(conn, params, {v: f"{v}_all" for v in VIEWS})


def create_new_scratch(conn: sa.Connection, params: dict) -> None:
    """The appended contacts' new records (`NEW`) as scratch tables, `tmp_profile_new_<part>`: read by lineage
    from the new files only (a literal list of file ids, which DuckDB prunes row groups with)."""
    files = [int(f) for f in conn.execute(sa.text(f"SELECT DISTINCT _file_id FROM {NEW}")).scalars()]
    where = f" AND s._file_id IN ({', '.join(map(str, files))})" if files else " AND 1 = 0"
    bound = {"as_of_end": params["as_of_end"]}
    for part in NEW_PARTS:
        _create(conn, f"tmp_profile_new_{part}", part, NEW_LINK, where, bound)


def create_window_scratch(conn: sa.Connection, params: dict, since: dt.datetime) -> None:
    """The appended contacts' records with a time from `since` (the previous build's day end) to the end of
    as_of, `tmp_profile_win_<part>`: what a new day brings into their timelines. Each source is cut by time
    first, so only the day's records meet `identity_map`."""
    bound = {"as_of_end": params["as_of_end"], "since": since}
    inside = "{0} >= :since AND {0} < :as_of_end"
    where = {"orders": f" AND ({inside.format('s.ordered_at')} OR {inside.format('s.updated_at')})",
             "email_all": f" AND {inside.format('s.occurred_at')}",
             "web_all": f" AND {inside.format('s.occurred_at')}",
             "subscribers": f" AND ({inside.format('s.subscribed_at')} OR {inside.format('s.unsubscribed_at')})"}
    link = map_link(only_recomputed("m", False, APPEND))
    for part, extra in where.items():
        _create(conn, f"tmp_profile_win_{part}", part, link, extra, bound)


def drop_scratch(conn: sa.Connection) -> None:
    for view in VIEWS:
        conn.execute(sa.text(f"DROP VIEW IF EXISTS {view}"))
    for name in (*_EXTRA, *reversed(SCRATCH)):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
