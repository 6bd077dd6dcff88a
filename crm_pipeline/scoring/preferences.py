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
# `Women 83%; Men 17%`: a value and its share in whole percent, best first
# Half up on every backend (PostgreSQL rounds a double's half to even, DuckDB away from zero): 12.5% -> 13%.
_LISTED = "value || ' ' || CAST(CAST(FLOOR(100.0 * weight / total + 0.5) AS INTEGER) AS VARCHAR) || '%'"
_DUE_VALUES = "tmp_scoring_due_values"
_RANKED = "tmp_scoring_pref_ranked"


def _ranked_sql(values: str) -> str:
    """Every dimension's values per contact within the lookback, weighted and ranked (ties: alphabetically
    first), from `scoring_daily_values` (or `values`, the due contacts' rows of it), in one pass: nine
    statements, one per dimension, read the rows nine times.

    (A total over the rank's own ordered window with a full frame ran twenty times slower on DuckDB.)"""
    return f"""
CREATE TEMPORARY TABLE {_RANKED} AS
WITH weighted AS (
    SELECT v.contact_id, dimension, value, SUM(weight) AS weight
    FROM {values} v
    WHERE day >= :since_day AND day <= :as_of_day
    GROUP BY v.contact_id, dimension, value
)
SELECT contact_id, dimension, value, weight,
       ROW_NUMBER() OVER (PARTITION BY contact_id, dimension ORDER BY weight DESC, value) AS rank,
       SUM(weight) OVER (PARTITION BY contact_id, dimension) AS total
FROM weighted
"""


def _per_contact(i: int, top_n: int) -> str:
    """One row per contact for dimension i: its top value and share, total weight, and the top_n as a list.

    The list is pivoted by rank and joined with CONCAT_WS (which skips NULLs): an ordered STRING_AGG
    was ten times slower on DuckDB.
    """
    listed = DIMENSIONS[i][6]
    items = ", ".join(f"MAX(CASE WHEN rank = {r} THEN {_LISTED} END)" for r in range(1, top_n + 1))
    return (f"p{i} AS (SELECT contact_id, MAX(CASE WHEN rank = 1 THEN value END) AS value, "
            f"MAX(CASE WHEN rank = 1 THEN weight / total END) AS share, MAX(total) AS total"
            + (f", CONCAT_WS('; ', {items}) AS listed" if listed else "")
            + f" FROM {_RANKED} WHERE dimension = {i} AND rank <= {top_n} GROUP BY contact_id)")


def _wide_sql(top_n: int, due: str | None, into: str = "contact_preferences") -> str:
    columns, values, joins, parts = [], [], [], []
    for i, (_, _, _, _, _, column, listed) in enumerate(DIMENSIONS):
        parts.append(_per_contact(i, int(top_n)))
        columns += [column, f"{column}_share"]
        values += [f"CAST(p{i}.value AS INTEGER)" if column == "preferred_email_hour" else f"p{i}.value",
                   f"p{i}.share"]
        if listed:
            columns.append(listed)
            values.append(f"p{i}.listed")
        joins.append(f"LEFT JOIN p{i} ON p{i}.contact_id = k.contact_id")
    brand_bought, brand_browsed, weekday = (next(i for i, d in enumerate(DIMENSIONS) if d[:2] == key)
                                            for key in (("brand", "bought"), ("brand", "browsed"),
                                                        ("email_weekday", "email")))
    return f"""
INSERT INTO {into} (as_of, contact_id, {", ".join(columns)}, average_discount_rate,
                                 discounted_order_share, bought_unit_count, browsed_product_count,
                                 email_engagement_count)
WITH discounts AS (
    SELECT s.contact_id,
           CASE WHEN SUM(discount_rate_count) > 0 THEN SUM(discount_rate_sum) / SUM(discount_rate_count) END
               AS average_discount_rate,
           CAST(SUM(discounted_count) AS DOUBLE PRECISION) / SUM(purchase_count) AS discounted_order_share
    FROM scoring_daily s{only_due('s', due)}
    WHERE day >= :since_day AND day <= :as_of_day AND purchase_count > 0 GROUP BY s.contact_id
),
{("," + chr(10)).join(parts)}
SELECT CAST(:as_of AS DATE), k.contact_id, {", ".join(values)},
       x.average_discount_rate, x.discounted_order_share,
       CAST(COALESCE(p{brand_bought}.total, 0) AS INTEGER), CAST(COALESCE(p{brand_browsed}.total, 0) AS INTEGER),
       CAST(COALESCE(p{weekday}.total, 0) AS INTEGER)
FROM tmp_scoring_known k{only_due('k', due)}
{chr(10).join(joins)}
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
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_RANKED}"))
    values = "scoring_daily_values"
    if due is not None:
        # the due contacts' values read once, not once per dimension (nine scans of the whole table)
        values = _DUE_VALUES
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {values}"))
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {values} AS SELECT v.* FROM scoring_daily_values v"
                             f"{only_due('v', due)} WHERE day >= :since_day AND day <= :as_of_day"),
                     {"since_day": bound["since_day"], "as_of_day": as_of_day})
    conn.execute(sa.text(_ranked_sql(values)), {"since_day": bound["since_day"], "as_of_day": as_of_day})
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_DUE_VALUES}"))
    if into is None:
        conn.execute(sa.text("DELETE FROM contact_preferences WHERE as_of = :as_of"), {"as_of": as_of})
    table = into or "contact_preferences"
    wide = _wide_sql(config.top_n, due, table)
    conn.execute(sa.text(wide), _only(wide, bound))
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_RANKED}"))
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE as_of = :as_of"),
                        {"as_of": as_of}).scalar_one()


def _only(sql: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if re.search(rf":{k}\b", sql)}
