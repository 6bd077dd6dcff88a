"""What each contact likes, from what they bought and browsed (up to as_of, within lookback_days).

Per contact, across brands:
- top category (top level of the category path), brand (the product's maker; the selling brand when
  the catalogue names none) and price band (low / mid / high by the selling brand's list-price
  terciles), each bought (weighted by units on purchases) and browsed (product views and add-to-carts),
  with the value's share of the contact's total for that dimension;
- preferred purchase channel (web / store / app / marketplace, by purchases);
- preferred weekday and hour (UTC) for email engagement (opens and clicks);
- average discount taken: mean of discount_total / subtotal over purchases, and the share of purchases
  with any discount.
Ties go to the alphabetically first value. `contact_preferences` has one row per known contact with each
top value and its share, and for categories, brands and price bands the top_n values as a readable list
(`Women 83%; Men 17%`). A long table of every ranked value was dropped: writing ~15 rows per contact
cost more than the rest of the preferences together at a million contacts.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from crm_pipeline.profiles.sql import day_number
from crm_pipeline.scoring.carry import only_due
from crm_pipeline.scoring.config import ScoringConfig
from crm_pipeline.scoring.engagement import ALL_BRANDS

# (dimension, source, facts, value, weight, top column, list column); a dimension's index is its number in
# `scoring_daily_values`, whose rows `daily._values_sql` writes in this order. A contact's total weight per
# dimension is the shares' denominator; `brand` values are never NULL, so its totals are the units bought
# and products browsed.
DIMENSIONS = (
    ("category", "bought", "tmp_scoring_bought", "top_category", "weight", "top_category_bought",
     "top_categories_bought"),
    ("category", "browsed", "tmp_scoring_browsed", "top_category", "weight", "top_category_browsed",
     "top_categories_browsed"),
    ("brand", "bought", "tmp_scoring_bought", "maker", "weight", "top_brand_bought", "top_brands_bought"),
    ("brand", "browsed", "tmp_scoring_browsed", "maker", "weight", "top_brand_browsed", "top_brands_browsed"),
    ("price_band", "bought", "tmp_scoring_bought", "price_band", "weight", "price_band_bought",
     "price_bands_bought"),
    ("price_band", "browsed", "tmp_scoring_browsed", "price_band", "weight", "price_band_browsed",
     "price_bands_browsed"),
    ("purchase_channel", "bought", "tmp_scoring_purchases", "channel", "1", "preferred_purchase_channel", None),
    ("email_weekday", "email", "tmp_scoring_email_times", "weekday", "1", "preferred_email_weekday", None),
    ("email_hour", "email", "tmp_scoring_email_times", "hour", "1", "preferred_email_hour", None),
)


def _listed(i: int, r: int) -> str:
    """The r-th value of dimension i and its share in whole percent (`Women 83%`), NULL when there is none.
    Half up on every backend (PostgreSQL rounds a double's half to even, DuckDB away from zero): 12.5% -> 13%."""
    return (f"p.value_{i}_{r} || ' ' || CAST(CAST(FLOOR(100.0 * p.weight_{i}_{r} / p.total_{i} + 0.5) AS INTEGER) "
            "AS VARCHAR) || '%'")


def _tops_sql(due: str | None, top_n: int) -> str:
    """CTEs ending in `tops`: one row per contact with, per dimension i, its total weight (`total_i`) and its
    top_n values with their weights (`value_i_r`, `weight_i_r`, best first; ties: alphabetically first), from
    `scoring_daily_values` (the due contacts' rows only, when given) within the lookback.

    One statement: the rows read once (the due contacts' joined in the read, not copied to a table first),
    ranked by one window and pivoted by one GROUP BY whose sums are the totals. A ranked table with a second
    window for the total, pivoted by a GROUP BY and a join per dimension, cost a tenth more CPU for everyone
    and half as much again for a drop's contacts. (A total over the rank's own ordered window with a full frame
    ran twenty times slower on DuckDB.)"""
    columns = []
    for i, dimension in enumerate(DIMENSIONS):
        columns.append(f"SUM(CASE WHEN dimension = {i} THEN weight END) AS total_{i}")
        for r in range(1, (top_n if dimension[6] else 1) + 1):
            columns += [f"MAX(CASE WHEN dimension = {i} AND rank = {r} THEN value END) AS value_{i}_{r}",
                        f"MAX(CASE WHEN dimension = {i} AND rank = {r} THEN weight END) AS weight_{i}_{r}"]
    return f"""weighted AS (
    SELECT v.contact_id, dimension, value, SUM(weight) AS weight
    FROM scoring_daily_values v{only_due('v', due)}
    WHERE day >= :since_day AND day <= :as_of_day
    GROUP BY v.contact_id, dimension, value
),
ranked AS (
    SELECT contact_id, dimension, value, weight,
           ROW_NUMBER() OVER (PARTITION BY contact_id, dimension ORDER BY weight DESC, value) AS rank
    FROM weighted
),
tops AS (SELECT contact_id, {", ".join(columns)} FROM ranked GROUP BY contact_id)"""


def _wide_sql(top_n: int, due: str | None, into: str = "contact_preferences") -> str:
    """INSERT of the day's `contact_preferences` rows: the known contacts' (the `due` ones only, when given) top
    values and shares, with the top_n as a list joined with CONCAT_WS (which skips NULLs: an ordered STRING_AGG
    was ten times slower on DuckDB)."""
    columns, values = [], []
    for i, (_, _, _, _, _, column, listed) in enumerate(DIMENSIONS):
        columns += [column, f"{column}_share"]
        values += [f"CAST(p.value_{i}_1 AS INTEGER)" if column == "preferred_email_hour" else f"p.value_{i}_1",
                   f"p.weight_{i}_1 / p.total_{i}"]
        if listed:
            columns.append(listed)
            values.append(f"CASE WHEN p.total_{i} IS NOT NULL "  # none of the dimension: no list, not ''
                          f"THEN CONCAT_WS('; ', {', '.join(_listed(i, r) for r in range(1, top_n + 1))}) END")
    brand_bought, brand_browsed, weekday = (next(i for i, d in enumerate(DIMENSIONS) if d[:2] == key)
                                            for key in (("brand", "bought"), ("brand", "browsed"),
                                                        ("email_weekday", "email")))
    return f"""
INSERT INTO {into} (as_of, contact_id, {", ".join(columns)}, average_discount_rate,
                                 discounted_order_share, bought_unit_count, browsed_product_count,
                                 email_engagement_count)
WITH {_tops_sql(due, top_n)},
discounts AS (
    SELECT s.contact_id,
           CASE WHEN SUM(discount_rate_count) > 0 THEN SUM(discount_rate_sum) / SUM(discount_rate_count) END
               AS average_discount_rate,
           CAST(SUM(discounted_count) AS DOUBLE PRECISION) / SUM(purchase_count) AS discounted_order_share
    FROM scoring_daily s{only_due('s', due)}
    WHERE day >= :since_day AND day <= :as_of_day AND purchase_count > 0 GROUP BY s.contact_id
)
SELECT CAST(:as_of AS DATE), k.contact_id, {", ".join(values)},
       x.average_discount_rate, x.discounted_order_share,
       CAST(COALESCE(p.total_{brand_bought}, 0) AS INTEGER), CAST(COALESCE(p.total_{brand_browsed}, 0) AS INTEGER),
       CAST(COALESCE(p.total_{weekday}, 0) AS INTEGER)
FROM tmp_scoring_known k{only_due('k', due)}
LEFT JOIN tops p ON p.contact_id = k.contact_id
LEFT JOIN discounts x ON x.contact_id = k.contact_id
WHERE k.brand = '{ALL_BRANDS}'
"""


def build_preferences(conn: sa.Connection, config: ScoringConfig, params: dict, due: str | None = None,
                      into: str | None = None) -> int:
    """Replace the day's `contact_preferences` (of the `due` contacts only, when given), or fill the empty copy
    `into`; returns contacts written."""
    as_of = params["as_of"]
    as_of_day = day_number(as_of)
    bound = {"as_of": as_of, "as_of_day": as_of_day, "since_day": as_of_day + 1 - config.preference_lookback_days}
    if into is None:
        conn.execute(sa.text("DELETE FROM contact_preferences WHERE as_of = :as_of"), {"as_of": as_of})
    table = into or "contact_preferences"
    wide = _wide_sql(int(config.top_n), due, table)
    conn.execute(sa.text(wide), _only(wide, bound))
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE as_of = :as_of"),
                        {"as_of": as_of}).scalar_one()


def _only(sql: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if re.search(rf":{k}\b", sql)}
