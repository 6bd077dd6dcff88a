"""The 360 profile: per contact and brand (`profile_360_brand`) and across brands (`profile_360`).

Definitions a reader of the tables relies on:
- A purchase is an order that is neither cancelled nor fully refunded (a missing status
  counts as a purchase). Order count, revenue (sum of `total`), average order value and
  first/last order dates are over purchases. Amounts stay in their own currency: no FX
  conversion is done, so `revenue` across brands or currencies is a plain sum and
  `currencies` names what went into it.
- Return rate = returned units (negative order lines) / purchased units (positive lines),
  both on purchases; a return counts once the order's last change is on or before as_of.
- Engagement over the last n days counts events on as_of and the n - 1 days before.
- Top category bought is the top level of the category path with the most units bought,
  top category browsed the one with the most web events on a product; ties go to the
  alphabetically first. Price band bought: low/mid/high by the selling brand's list-price
  terciles, the band with the most units (ties -> the higher band).
- Subscription status is that of the brand's latest subscriber record as of as_of.
  `email_consent` (per brand) is true when that status is `subscribed` and no unsubscribe,
  bounce or complaint event of the brand happened at or after the last subscribe. Orders
  never grant consent, so an unsubscribe landing with a purchase still wins.
- Engagement score and growth, preferred channel and lifecycle stage come from the scoring stage
  (`crm_pipeline/scoring/`) for the same day: `attach_scoring` fills them after a scoring run, and a
  profile rebuild keeps them when that day is already scored; NULL until then.
- Overall figures are the same aggregates across brands, rolled up from the per-brand
  aggregates in the same statement (the overall row carries brand '' in the scratch).
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from crm_pipeline.profiles import rewrite
from crm_pipeline.profiles.sql import (BROWSED, ENGAGEMENT_WINDOWS, PROFILED, WINDOWED, only_recomputed,
                                       string_list_agg, utc_date)
from crm_pipeline.warehouse.profile_schema import GOLDEN_FIELDS, SCORING_COLUMNS, profile_360, profile_360_brand

OVERALL = ""  # the brand value of the across-brands rows in the scratch table


def _two_level(name: str, source: str, aggregates: list[tuple[str, str, str]]) -> str:
    """Aggregates per contact and brand, then the same rolled up across brands (brand_key '').

    `aggregates` = (alias, per-brand expression, roll-up expression over the per-brand rows).
    Rolling up the per-brand rows is far cheaper than aggregating the events twice.
    """
    per_brand = ", ".join(f"{expr} AS {alias}" for alias, expr, _ in aggregates)
    rolled = ", ".join(f"{roll} AS {alias}" for alias, _, roll in aggregates)
    aliases = ", ".join(alias for alias, _, _ in aggregates)
    return f"""{name}_brand AS (
        SELECT contact_id, brand, {per_brand} FROM {source} GROUP BY contact_id, brand
    ),
    {name} AS (
        SELECT contact_id, brand AS brand_key, {aliases} FROM {name}_brand
        UNION ALL
        SELECT contact_id, '{OVERALL}', {rolled} FROM {name}_brand GROUP BY contact_id
    )"""


def _engagement() -> list[tuple[str, str, str]]:
    """Opens and clicks of the last n days: sums over `contact_daily`, never over the events."""
    return [(f"email_{kind}_{n}d_count",
             f"SUM(CASE WHEN day >= :day_since_{n}d THEN email_{kind}_count ELSE 0 END)",
             f"SUM(email_{kind}_{n}d_count)")
            for kind in ("open", "click") for n in ENGAGEMENT_WINDOWS]


def _top(name: str, source: str, value: str, weight: str, tie: str) -> str:
    """The value with the largest weight per contact and brand, and across brands."""
    return f"""{name}_brand AS (
        SELECT contact_id, brand, {value}, {weight} AS weight FROM {source} GROUP BY contact_id, brand, {value}
    ),
    {name}_weights AS (
        SELECT contact_id, brand AS brand_key, {value}, weight FROM {name}_brand
        UNION ALL
        SELECT contact_id, '{OVERALL}', {value}, SUM(weight) FROM {name}_brand GROUP BY contact_id, {value}
    ),
    {name} AS (
        SELECT contact_id, brand_key, {value} AS top_value FROM (
            SELECT contact_id, brand_key, {value},
                   ROW_NUMBER() OVER (PARTITION BY contact_id, brand_key ORDER BY weight DESC, {tie}) AS pick
            FROM {name}_weights
        ) r WHERE pick = 1
    )"""


# Each order to the cent first: staged amounts may be single-precision floats.
_REVENUE = "SUM(CAST(total AS DECIMAL(18, 2)))"
_ENGAGEMENT_COLUMNS = [f"email_{k}_{n}d_count" for k in ("open", "click") for n in ENGAGEMENT_WINDOWS]
FIGURE_COLUMNS = [
    "order_count", "revenue", "currencies", "average_order_value", "first_order_date", "last_order_date",
    "purchased_unit_count", "returned_unit_count", "return_rate", "last_open_at", "last_click_at",
    "last_browse_at", *_ENGAGEMENT_COLUMNS, "top_category_bought", "top_category_browsed", "price_band_bought",
]

_DAILY = "tmp_profile_daily"


def _figures_sql(full: bool) -> str:
    """The figures of the recomputed contacts (all when `full`); the email and browse figures come from
    `contact_daily` and `contact_browse_daily` up to as_of, never from the events. An incremental build reads
    its contacts' daily rows once, into `tmp_profile_daily` (`_DAILY_SQL`): the figures read them twice."""
    daily = "(SELECT * FROM contact_daily WHERE day <= :as_of) x" if full else _DAILY
    browsed = f"(SELECT b.* FROM contact_browse_daily b{only_recomputed('b', full, PROFILED)} WHERE b.day <= :as_of) x"
    return _FIGURES_SQL.replace("{daily}", daily).replace("{browsed}", browsed)


# the daily columns the figures read (a narrower scan of a table with a row per contact, brand and day)
_DAILY_COLUMNS = ("contact_id", "brand", "day", "email_send_count", "email_open_count", "email_click_count",
                  "email_opt_out_count", "web_event_count", "last_open_at", "last_click_at", "last_opt_out_at",
                  "last_browse_at")
_DAILY_SQL = (f"CREATE TEMPORARY TABLE {_DAILY} AS SELECT {', '.join('d.' + c for c in _DAILY_COLUMNS)} "
              f"FROM contact_daily d{only_recomputed('d', False, PROFILED)} WHERE d.day <= :as_of")


# A brand with email or web events up to as_of (the contract's six email event types are all counted)
_EVENT_DAYS = ("email_send_count + email_open_count + email_click_count + email_opt_out_count + web_event_count "
               "> 0")


_FIGURES_SQL = f"""
CREATE TEMPORARY TABLE tmp_profile_figures AS
WITH
keys AS (
    SELECT contact_id, brand FROM tmp_profile_customers
    UNION SELECT contact_id, brand FROM tmp_profile_subscribers
    UNION SELECT contact_id, brand FROM tmp_profile_orders
    UNION SELECT contact_id, brand FROM {{daily}} WHERE {_EVENT_DAYS}
),
all_keys AS (
    SELECT contact_id, brand FROM keys UNION ALL SELECT DISTINCT contact_id, '{OVERALL}' FROM keys
),
purchases AS (SELECT * FROM tmp_profile_orders WHERE is_purchase = 1),
{_two_level("order_figs", "purchases", [
    ("order_count", "COUNT(*)", "SUM(order_count)"),
    ("revenue", _REVENUE, "SUM(revenue)"),
    ("first_order_at", "MIN(ordered_at)", "MIN(first_order_at)"),
    ("last_order_at", "MAX(ordered_at)", "MAX(last_order_at)"),
])},
currency_brand AS (SELECT DISTINCT contact_id, brand, currency FROM purchases WHERE currency IS NOT NULL),
currency_figs AS (
    SELECT contact_id, brand AS brand_key, {string_list_agg('currency')} AS currencies
    FROM currency_brand GROUP BY contact_id, brand
    UNION ALL
    SELECT contact_id, '{OVERALL}', {string_list_agg('currency', distinct=True)}
    FROM currency_brand GROUP BY contact_id
),
lines AS (
    SELECT o.contact_id, o.brand, p.top_category,
           CASE WHEN COALESCE(p.price, i.unit_price) IS NULL THEN NULL
                WHEN COALESCE(p.price, i.unit_price) <= p.low_max THEN 'low'
                WHEN COALESCE(p.price, i.unit_price) <= p.mid_max THEN 'mid'
                WHEN p.low_max IS NULL THEN NULL ELSE 'high' END AS price_band,
           CASE WHEN i.quantity > 0 THEN i.quantity ELSE 0 END AS bought_units,
           CASE WHEN i.quantity < 0 AND o.changed_at < :as_of_end THEN -i.quantity ELSE 0 END AS returned_units
    FROM purchases o
    JOIN stg_order_items i ON i._brand = o.brand AND i.order_id = o.order_id
    LEFT JOIN tmp_profile_products p ON p.brand = i._brand AND p.sku = i.sku
),
{_two_level("unit_figs", "lines", [
    ("purchased_unit_count", "SUM(bought_units)", "SUM(purchased_unit_count)"),
    ("returned_unit_count", "SUM(returned_units)", "SUM(returned_unit_count)"),
])},
{_top('bought', "(SELECT * FROM lines WHERE bought_units > 0 AND top_category IS NOT NULL) x",
      'top_category', 'SUM(bought_units)', 'top_category')},
{_top('band', "(SELECT * FROM lines WHERE bought_units > 0 AND price_band IS NOT NULL) x",
      'price_band', 'SUM(bought_units)', "CASE price_band WHEN 'high' THEN 0 WHEN 'mid' THEN 1 ELSE 2 END")},
{_two_level("email_figs", "{daily}", [
    ("last_open_at", "MAX(last_open_at)", "MAX(last_open_at)"),
    ("last_click_at", "MAX(last_click_at)", "MAX(last_click_at)"),
    ("last_opt_out_at", "MAX(last_opt_out_at)", "MAX(last_opt_out_at)"),
    ("last_browse_at", "MAX(last_browse_at)", "MAX(last_browse_at)"),
    *_engagement(),
])},
{_top('browsed', "{browsed}", 'top_category', 'SUM(web_event_count)', 'top_category')},
subs AS (
    SELECT contact_id, brand, status, subscribed_at, state_at FROM (
        SELECT s.*, ROW_NUMBER() OVER (
                   PARTITION BY contact_id, brand
                   ORDER BY state_at DESC NULLS LAST, CASE WHEN status = 'subscribed' THEN 1 ELSE 0 END,
                            subscriber_id) AS pick
        FROM tmp_profile_subscribers s WHERE status IS NOT NULL
    ) r WHERE pick = 1
)
SELECT k.contact_id, k.brand,
       COALESCE(o.order_count, 0) AS order_count,
       CAST(COALESCE(o.revenue, 0) AS DOUBLE PRECISION) AS revenue,
       c.currencies,
       CASE WHEN o.order_count > 0 THEN CAST(o.revenue AS DOUBLE PRECISION) / o.order_count END
           AS average_order_value,
       {utc_date('o.first_order_at')} AS first_order_date,
       {utc_date('o.last_order_at')} AS last_order_date,
       COALESCE(u.purchased_unit_count, 0) AS purchased_unit_count,
       COALESCE(u.returned_unit_count, 0) AS returned_unit_count,
       CASE WHEN u.purchased_unit_count > 0
            THEN CAST(u.returned_unit_count AS DOUBLE PRECISION) / u.purchased_unit_count END AS return_rate,
       e.last_open_at, e.last_click_at, e.last_browse_at,
       {", ".join(f"COALESCE(e.{c}, 0) AS {c}" for c in _ENGAGEMENT_COLUMNS)},
       tb.top_value AS top_category_bought,
       tw.top_value AS top_category_browsed,
       pb.top_value AS price_band_bought,
       s.status AS subscription_status,
       {utc_date('s.subscribed_at')} AS subscribed_date,
       CASE WHEN s.status = 'subscribed'
             AND (e.last_opt_out_at IS NULL
                  OR e.last_opt_out_at < COALESCE(s.subscribed_at, s.state_at)) THEN 1 ELSE 0 END AS email_consent
FROM all_keys k
LEFT JOIN order_figs o ON o.contact_id = k.contact_id AND o.brand_key = k.brand
LEFT JOIN currency_figs c ON c.contact_id = k.contact_id AND c.brand_key = k.brand
LEFT JOIN unit_figs u ON u.contact_id = k.contact_id AND u.brand_key = k.brand
LEFT JOIN bought tb ON tb.contact_id = k.contact_id AND tb.brand_key = k.brand
LEFT JOIN band pb ON pb.contact_id = k.contact_id AND pb.brand_key = k.brand
LEFT JOIN email_figs e ON e.contact_id = k.contact_id AND e.brand_key = k.brand
LEFT JOIN browsed tw ON tw.contact_id = k.contact_id AND tw.brand_key = k.brand
LEFT JOIN subs s ON s.contact_id = k.contact_id AND s.brand = k.brand
"""

_BRAND_COLUMNS = ["contact_id", "brand", "as_of", *FIGURE_COLUMNS, "subscription_status", "subscribed_date",
                  "email_consent"]
assert set(_BRAND_COLUMNS) | set(SCORING_COLUMNS) == {c.name for c in profile_360_brand.columns}

_BRAND_SQL = f"""
INSERT INTO {{into}} ({", ".join(_BRAND_COLUMNS)})
SELECT contact_id, brand, :as_of, {", ".join(FIGURE_COLUMNS)}, subscription_status, subscribed_date,
       email_consent = 1
FROM tmp_profile_figures WHERE brand <> '{OVERALL}'
"""

_OVERALL_COLUMNS = ["contact_id", "as_of", *GOLDEN_FIELDS, "brands", "brand_count", *FIGURE_COLUMNS,
                    "subscribed_brands", "email_consent_brands", "email_consent"]
assert set(_OVERALL_COLUMNS) | set(SCORING_COLUMNS) == {c.name for c in profile_360.columns}


def _golden_pivot() -> str:
    cols = []
    for field in GOLDEN_FIELDS:
        value = f"MAX(CASE WHEN field = '{field}' THEN value END)"
        cols.append(f"CAST({value} AS DATE) AS {field}" if field == "birth_date" else f"{value} AS {field}")
    return f"SELECT g.contact_id, {', '.join(cols)} FROM golden_records g{{scope}} GROUP BY g.contact_id"


_OVERALL_SQL = f"""
INSERT INTO {{into}} ({", ".join(_OVERALL_COLUMNS)})
WITH per_brand AS (
    SELECT contact_id, {string_list_agg('brand')} AS brands, COUNT(*) AS brand_count,
           {string_list_agg("CASE WHEN subscription_status = 'subscribed' THEN brand END")} AS subscribed_brands,
           {string_list_agg("CASE WHEN email_consent = 1 THEN brand END")} AS email_consent_brands
    FROM tmp_profile_figures WHERE brand <> '{OVERALL}' GROUP BY contact_id
),
golden AS ({_golden_pivot()})
SELECT f.contact_id, :as_of, {", ".join(f"g.{c}" for c in GOLDEN_FIELDS)}, b.brands, b.brand_count,
       {", ".join(f"f.{c}" for c in FIGURE_COLUMNS)},
       b.subscribed_brands, b.email_consent_brands, b.email_consent_brands IS NOT NULL
FROM tmp_profile_figures f
JOIN per_brand b ON b.contact_id = f.contact_id
LEFT JOIN golden g ON g.contact_id = f.contact_id
WHERE f.brand = '{OVERALL}'
"""


# Figures of contacts of whom only some can change, per brand and across brands ('' as in the figures), from
# the per-day tables: a web event in a brand the contact has a profile in changes its browse figures only
# (`BROWSED`); opens or clicks leaving a window change its engagement counts only (`WINDOWED`).
_PARTIAL = "tmp_profile_partial_figures"
_BROWSE_SQL = f"""
WITH {_two_level("last_browse", f"(SELECT d.contact_id, d.brand, d.last_browse_at FROM contact_daily d"
                                f"{only_recomputed('d', False, BROWSED)} WHERE d.day <= :as_of) x",
                 [("last_browse_at", "MAX(last_browse_at)", "MAX(last_browse_at)")])},
{_top('browsed', f"(SELECT b.* FROM contact_browse_daily b{only_recomputed('b', False, BROWSED)} "
                 "WHERE b.day <= :as_of) x", 'top_category', 'SUM(web_event_count)', 'top_category')}
SELECT l.contact_id, l.brand_key AS brand, l.last_browse_at, t.top_value AS top_category_browsed
FROM last_browse l LEFT JOIN browsed t ON t.contact_id = l.contact_id AND t.brand_key = l.brand_key
"""
_WINDOWS_SQL = f"""
WITH {_two_level("eng", f"(SELECT d.* FROM contact_daily d{only_recomputed('d', False, WINDOWED)} "
                        "WHERE d.day <= :as_of) x", _engagement())}
SELECT contact_id, brand_key AS brand, {", ".join(_ENGAGEMENT_COLUMNS)} FROM eng
"""


def _update_some_figures(conn: sa.Connection, params: dict, sql: str, columns: list[str]) -> None:
    """Set `columns` of the stored rows (per brand and overall) to the figures `sql` selects, where they differ."""
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_PARTIAL}"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_PARTIAL} AS {sql}"), _bound(sql, params))
    for table, match in (("profile_360_brand", "f.brand = profile_360_brand.brand"),
                         ("profile_360", f"f.brand = '{OVERALL}'")):
        differ = " OR ".join(f"{table}.{c} IS DISTINCT FROM f.{c}" for c in columns)
        conn.execute(sa.text(f"UPDATE {table} SET {', '.join(f'{c} = f.{c}' for c in columns)} FROM {_PARTIAL} f "
                             f"WHERE f.contact_id = {table}.contact_id AND {match} AND ({differ})"))
    conn.execute(sa.text(f"DROP TABLE {_PARTIAL}"))


def build_profile_360(conn: sa.Connection, params: dict, *, full: bool = True) -> int:
    """Rewrite the rows (all when `full`, else those of `PROFILED`) of `profile_360_brand` and `profile_360`
    from the scratch tables, `contact_daily`, `contact_browse_daily` and `golden_records`; of the contacts
    whose only new records are web events (`BROWSED`) set the browse figures only, of those due only to the
    windows (`WINDOWED`) the engagement counts.

    Runs inside the caller's transaction after `create_scratch`, `contact_daily` and the golden records;
    returns the number of contacts profiled.
    """
    if not full:
        _update_some_figures(conn, params, _BROWSE_SQL, ["last_browse_at", "top_category_browsed"])
        _update_some_figures(conn, params, _WINDOWS_SQL, _ENGAGEMENT_COLUMNS)
        if not conn.execute(sa.text(f"SELECT COUNT(*) FROM {PROFILED}")).scalar_one():
            return conn.execute(sa.text("SELECT COUNT(*) FROM profile_360")).scalar_one()
    figures = _figures_sql(full)
    conn.execute(sa.text("DROP TABLE IF EXISTS tmp_profile_figures"))
    if not full:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {_DAILY}"))
        conn.execute(sa.text(_DAILY_SQL), {"as_of": params["as_of"]})
    conn.execute(sa.text(figures), _bound(figures, params))
    if not full:
        conn.execute(sa.text(f"DROP TABLE {_DAILY}"))
    brand, overall = (rewrite.begin(conn, t, full=full) for t in ("profile_360_brand", "profile_360"))
    conn.execute(sa.text(_BRAND_SQL.replace("{into}", brand)), {"as_of": params["as_of"]})
    conn.execute(sa.text(_OVERALL_SQL.replace("{into}", overall).replace("{scope}",
                                                                           only_recomputed("g", full, PROFILED))),
                 {"as_of": params["as_of"]})
    conn.execute(sa.text("DROP TABLE tmp_profile_figures"))
    # a rebuilt profile keeps the day's scores, when they exist (the kept rows have theirs)
    attach_scoring(conn, params["as_of"], into=(overall, brand))
    for table, key in (("profile_360_brand", ("contact_id", "brand")), ("profile_360", ("contact_id",))):
        rewrite.finish(conn, table, key, PROFILED, full=full)
    return conn.execute(sa.text("SELECT COUNT(*) FROM profile_360")).scalar_one()


def _bound(sql: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if re.search(rf":{k}\b", sql)}


# The scoring columns (SCORING_COLUMNS) from the scoring tables of one day: across brands (brand '')
# into profile_360, per brand into profile_360_brand. Column names are fixed here, never user input.
_SCORES = """
    SELECT e.contact_id, e.brand, e.score, e.change_7d, e.change_30d, e.growth_band, e.top_percent,
           c.preferred_channel, l.stage
    FROM engagement_scores e
    LEFT JOIN channel_preferences c ON c.as_of = e.as_of AND c.contact_id = e.contact_id AND c.brand = e.brand
    LEFT JOIN lifecycle_stages l ON l.as_of = e.as_of AND l.contact_id = e.contact_id AND l.brand = e.brand
    WHERE e.as_of = :as_of"""
_PAIRS = (("engagement_score", "score"), ("engagement_change_7d", "change_7d"),
          ("engagement_change_30d", "change_30d"), ("engagement_growth_band", "growth_band"),
          ("engagement_top_percent", "top_percent"), ("preferred_channel", "preferred_channel"),
          ("lifecycle_stage", "stage"))


def _differs(table: str) -> str:
    return " OR ".join(f"{table}.{column} IS DISTINCT FROM s.{value}" for column, value in _PAIRS)


_SET = ", ".join(f"{column} = s.{value}" for column, value in _PAIRS)


def attach_scoring(conn: sa.Connection, as_of, into: tuple[str, str] = ("profile_360", "profile_360_brand")) -> int:
    """Fill the scoring columns of `profile_360` / `profile_360_brand` (or of the tables `into` names in their
    place: a build's rows before they are written) from the scoring tables of `as_of`.

    Only when the profile snapshot is of the same day (a backfill of an older day leaves the current
    profile alone) and the scoring tables exist. Contacts without a score keep NULL. Returns the
    number of profile_360 rows that carry a score afterwards.
    """
    inspector = sa.inspect(conn)
    if not all(inspector.has_table(t) for t in ("engagement_scores", "channel_preferences", "lifecycle_stages")):
        return 0
    overall, brand = into
    if conn.execute(sa.text(f"SELECT MAX(as_of) FROM {overall}")).scalar() != as_of:
        return 0
    # Scores into a temporary table first, the views read once: DuckDB runs UPDATE ... FROM a plain table in a
    # fraction of a second, but UPDATE ... FROM (a join) over a million rows took minutes. Only rows whose values
    # differ are updated (a re-run, or a drop's contacts on the day: the rest stay unwritten).
    conn.execute(sa.text("DROP TABLE IF EXISTS tmp_profile_scores"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE tmp_profile_scores AS {_SCORES}"), {"as_of": as_of})
    for table, keys in ((overall, "s.brand = ''"), (brand, f"s.brand <> '' AND s.brand = {brand}.brand")):
        conn.execute(sa.text(f"UPDATE {table} SET {_SET} FROM tmp_profile_scores s "
                             f"WHERE s.contact_id = {table}.contact_id AND {keys} AND ({_differs(table)})"))
    conn.execute(sa.text("DROP TABLE tmp_profile_scores"))
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {overall} WHERE engagement_score IS NOT NULL")).scalar_one()
