"""Scratch tables of one scoring run, cut at the end of `as_of`: purchases and the catalogue.

A run reads its purchase days from `scoring_daily` (`create_daily_purchases`); the funnel over past
days reads them from the timeline (`create_scratch`).

The timeline carries every interaction with its contact already resolved; only its `order` rows
need the staged order (status, channel, discount) to tell a purchase from a cancelled order, so
that join is done once here. Temporary tables are private to the run's connection (plain
`CREATE TEMPORARY TABLE ... AS SELECT`, which DuckDB and PostgreSQL both run).
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.profiles.sql import PRICE_TERCILE_CUTS, is_purchase, top_level_category, utc_day

SCRATCH = ("tmp_scoring_purchases", "tmp_scoring_products", "tmp_scoring_known", "tmp_scoring_movers")

# A purchase: an order on the timeline up to as_of that is neither cancelled nor refunded (as in profile_360).
PURCHASES_SQL = f"""
CREATE TEMPORARY TABLE tmp_scoring_purchases AS
SELECT t.contact_id, t.brand, o.order_id, t.occurred_at AS ordered_at, {utc_day('t.occurred_at')} AS purchase_day,
       o.channel, CAST(o.subtotal AS DOUBLE PRECISION) AS subtotal,
       CAST(o.discount_total AS DOUBLE PRECISION) AS discount_total
FROM timeline t
JOIN stg_orders o ON o._brand = t.brand AND o.order_id = t.source_key
WHERE t.event_type = 'order' AND t.occurred_at < :as_of_end AND {is_purchase('o.status')}
"""

# The catalogue per selling brand: top-level category, maker (the selling brand when none is given)
# and the price band by the selling brand's list-price terciles, as in profile_360.
PRODUCTS_SQL = f"""
CREATE TEMPORARY TABLE tmp_scoring_products AS
WITH {PRICE_TERCILE_CUTS}
SELECT p._brand AS brand, p.sku, {top_level_category('p.category')} AS top_category,
       COALESCE(NULLIF(TRIM(p.brand), ''), p._brand) AS maker,
       CASE WHEN p.price IS NULL OR c.low_max IS NULL THEN NULL
            WHEN p.price <= c.low_max THEN 'low' WHEN p.price <= c.mid_max THEN 'mid' ELSE 'high' END AS price_band
FROM stg_products p LEFT JOIN cuts c ON c.brand = p._brand
"""


# The run's purchase days, from the daily aggregates (what the lifecycle reads), cut at the end of as_of.
DAILY_PURCHASES_SQL = """
CREATE TEMPORARY TABLE tmp_scoring_purchases AS
SELECT s.contact_id, brand, day AS purchase_day FROM scoring_daily s{due}
WHERE purchase_count > 0 AND day <= :as_of_day
"""


def create_products(conn: sa.Connection) -> None:
    drop_scratch(conn)
    conn.execute(sa.text(PRODUCTS_SQL))


def create_daily_purchases(conn: sa.Connection, as_of_day: int, due: str | None = None) -> None:
    """The purchase days up to `as_of_day` (of the contacts in `due` only, when given)."""
    join = "" if due is None else f" JOIN {due} d ON d.contact_id = s.contact_id"
    conn.execute(sa.text("DROP TABLE IF EXISTS tmp_scoring_purchases"))
    conn.execute(sa.text(DAILY_PURCHASES_SQL.format(due=join)), {"as_of_day": as_of_day})


def create_scratch(conn: sa.Connection, params: dict) -> None:
    drop_scratch(conn)
    conn.execute(sa.text(PURCHASES_SQL), {"as_of_end": params["as_of_end"]})
    conn.execute(sa.text(PRODUCTS_SQL))


def drop_scratch(conn: sa.Connection) -> None:
    for name in SCRATCH:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
