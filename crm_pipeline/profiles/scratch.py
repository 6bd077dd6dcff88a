"""Scratch tables of one profile build: each source joined to its contact once, cut at `as_of`.

The 360 figures and the timeline both read a contact's orders, email events and web
events; joining the big staging tables to `identity_map` once, into temporary tables,
keeps the build to one pass over each. Temporary tables are private to the build's
connection and dropped at its end (plain `CREATE TEMPORARY TABLE ... AS SELECT`, which
DuckDB and PostgreSQL both run). An incremental build joins only the contacts it
recomputes (`tmp_profile_recompute`). Email and web events are kept whole
(`tmp_profile_email_all`, `tmp_profile_web_all`: `contact_daily` holds every day, also
those after `as_of`); `tmp_profile_email` and `tmp_profile_web` are views of them cut at `as_of`.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.profiles.sql import (PRICE_TERCILE_CUTS, counts, is_purchase, latest_of, only_recomputed,
                                       top_level_category)

SCRATCH = ("tmp_profile_products", "tmp_profile_orders", "tmp_profile_email_all", "tmp_profile_web_all",
           "tmp_profile_subscribers", "tmp_profile_customers")
VIEWS = ("tmp_profile_email", "tmp_profile_web")


def _joined(entity: str, key: str) -> str:
    return (f"JOIN identity_map m ON m.entity = '{entity}' AND m.brand = s._brand "
            f"AND m.source_key = s.{key}{{scope}}")


_STATEMENTS = {
    # The catalogue per selling brand: top-level category and the price band by the brand's price
    # terciles (NTILE(3) over list price; a price on a tercile's upper edge belongs to that tercile).
    "tmp_profile_products": f"""
        WITH {PRICE_TERCILE_CUTS}
        SELECT p._brand AS brand, p.sku, p.name, {top_level_category('p.category')} AS top_category, p.price,
               c.low_max, c.mid_max
        FROM stg_products p LEFT JOIN cuts c ON c.brand = p._brand""",
    "tmp_profile_orders": f"""
        SELECT m.contact_id, s._brand AS brand, s.order_id, s.status, s.total, s.currency, s.ordered_at,
               CASE WHEN {is_purchase('s.status')} THEN 1 ELSE 0 END AS is_purchase,
               {latest_of('s.ordered_at', 's.updated_at')} AS changed_at
        FROM stg_orders s {_joined('orders', 'order_id')}
        WHERE s.ordered_at < :as_of_end""",
    "tmp_profile_email_all": f"""
        SELECT m.contact_id, s._brand AS brand, s.event_id, s.event_type, s.occurred_at, s.campaign_id, s.url
        FROM stg_email_events s {_joined('email_events', 'event_id')}
        WHERE s.occurred_at IS NOT NULL""",
    "tmp_profile_web_all": f"""
        SELECT m.contact_id, s._brand AS brand, s.event_id, s.event_type, s.occurred_at, s.url, s.sku,
               p.name AS product_name, p.top_category
        FROM stg_web_events s {_joined('web_events', 'event_id')}
        LEFT JOIN tmp_profile_products p ON p.brand = s._brand AND p.sku = s.sku
        WHERE s.occurred_at IS NOT NULL""",
    # Subscriber records as they stood at the end of as_of: the record as stored when it was last
    # changed by then; otherwise what its own dates say (unsubscribed by then, else subscribed by then).
    "tmp_profile_subscribers": f"""
        WITH dated AS (
            SELECT m.contact_id, s._brand AS brand, s.subscriber_id, s.email, s.status, s.source,
                   s.subscribed_at, s.unsubscribed_at,
                   COALESCE(s.updated_at, {latest_of('s.subscribed_at', 's.unsubscribed_at')}) AS record_at
            FROM stg_subscribers s {_joined('subscribers', 'subscriber_id')}
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
        WHERE {counts('record_at')} OR unsubscribed_at < :as_of_end OR subscribed_at < :as_of_end""",
    "tmp_profile_customers": f"""
        SELECT DISTINCT m.contact_id, s._brand AS brand
        FROM stg_customers s {_joined('customers', 'customer_id')}
        WHERE {counts('COALESCE(s.updated_at, s.created_at)')}""",
}


def create_scratch(conn: sa.Connection, params: dict, *, full: bool = True) -> None:
    """The scratch tables of the recomputed contacts (all contacts when `full`)."""
    drop_scratch(conn)
    bound = {"as_of_end": params["as_of_end"]}
    scope = only_recomputed("m", full)
    for name in SCRATCH:
        sql = _STATEMENTS[name].replace("{scope}", scope)
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {name} AS {sql}"), bound if ":as_of_end" in sql else {})
    # a view's text cannot take a bound parameter: the cut is a timestamp literal made from the date
    end = params["as_of_end"].strftime("%Y-%m-%d %H:%M:%S+00")
    for view in VIEWS:
        conn.execute(sa.text(f"CREATE TEMPORARY VIEW {view} AS SELECT * FROM {view}_all "
                             f"WHERE occurred_at < TIMESTAMP WITH TIME ZONE '{end}'"))


def drop_scratch(conn: sa.Connection) -> None:
    for view in VIEWS:
        conn.execute(sa.text(f"DROP VIEW IF EXISTS {view}"))
    for name in reversed(SCRATCH):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
