"""`scoring_daily` and `scoring_daily_values`: per contact and UTC day, what the scores are summed from.

Decay, the 7/30-day changes, the growth windows, the channel evidence, the lifecycle's purchase days
and the preference lookbacks all move with the as-of day, but each is a sum over days of per-day
figures: points (decay is linear, so a day's points decay together), positive points, interactions,
purchases, discounts, the channels a purchase day converted through (email attribution looks only
backwards from the purchase, so it never changes with the as-of day) and the weighted values each
preference dimension ranks. So a new day reads these contact-sized tables, never the timeline.
Rows of a recomputed contact are recomputed from its timeline and staged orders, order lines, products and
web events (all contacts on a full build) and written by difference (`profiles.rewrite`): from the first day
the profile builds changed its timeline on (`since_day` of `profile_changes`), or whole when that is unknown.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from crm_pipeline.profiles import rewrite
from crm_pipeline.profiles.sql import EPOCH, is_purchase, utc_day
from crm_pipeline.scoring.config import ORDER_CHANNELS, ScoringConfig
from crm_pipeline.scoring.sql import utc_hour, weekday_index

RECOMPUTE = "tmp_scoring_recompute"
CHANNEL_COLUMNS = (*ORDER_CHANNELS, "email")
_BUYS = "tmp_scoring_buys"
TOUCHED = "tmp_scoring_timeline"
_KEYS = {"scoring_daily": ("contact_id", "brand", "day"),
         "scoring_daily_values": ("contact_id", "day", "dimension", "value")}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _timeline(full: bool) -> str:
    """The timeline rows a build reads: all of them, or the recomputed contacts' (`TOUCHED`, copied once: joined
    in each statement, DuckDB joined and filtered the whole timeline first, which cost a drop as much as a full
    build)."""
    return "timeline" if full else TOUCHED


def _points_case(config: ScoringConfig) -> str:
    """CASE over the timeline's event type; point values travel as bound parameters."""
    whens = " ".join(f"WHEN '{event}' THEN :pt_{event}" for event in config.points if event != "purchase")
    return f"CASE t.event_type {whens} ELSE 0 END" if whens else "0"


def points_params(config: ScoringConfig) -> dict:
    bound = {"pt_purchase": float(config.points.get("purchase", 0.0))}
    bound.update({f"pt_{event}": float(value) for event, value in config.points.items() if event != "purchase"})
    return bound


def _buys_sql(full: bool) -> str:
    """Purchases (orders on the timeline neither cancelled nor refunded) with their day and money."""
    return f"""
CREATE TEMPORARY TABLE {_BUYS} AS
SELECT t.contact_id, t.brand, o.order_id, t.occurred_at AS ordered_at, {utc_day('t.occurred_at')} AS day,
       o.channel, CAST(o.subtotal AS DOUBLE PRECISION) AS subtotal,
       CAST(o.discount_total AS DOUBLE PRECISION) AS discount_total
FROM {_timeline(full)} t
JOIN stg_orders o ON o._brand = t.brand AND o.order_id = t.source_key
WHERE t.event_type = 'order' AND {is_purchase('o.status')}"""


def _daily_sql(config: ScoringConfig, full: bool, into: str) -> str:
    """The day rows: the interactions (nearly one per contact, brand and day) summed with the three sums they feed,
    the purchases and their channels (a tenth as many) with theirs, joined on the day. One GROUP BY of every
    row with all fifteen sums took three times as long as these two."""
    order_chans = ", ".join(f"'{c}'" for c in config.channels if c != "email")
    if "email" in config.channels:
        # purchases with an email click of the same contact and brand in the lookback: a join, not an EXISTS inside
        # the CASE (a subquery's mark join is the shape DuckDB 1.5.6 can park every thread on, duckdb/duckdb#24961)
        clicked = f""", clicked AS (
    SELECT DISTINCT p.contact_id, p.brand, p.order_id
    FROM {_BUYS} p JOIN {_timeline(full)} c ON c.contact_id = p.contact_id AND c.brand = p.brand
    WHERE c.event_type = 'email_click' AND c.occurred_at <= p.ordered_at
      AND {utc_day('c.occurred_at')} >= p.day - :attribution
)"""
        attributed = "CASE WHEN k.order_id IS NOT NULL THEN 'email' ELSE p.channel END"
        click_join = (" LEFT JOIN clicked k ON k.contact_id = p.contact_id AND k.brand = p.brand "
                      "AND k.order_id = p.order_id")
        order_chans += ", 'email'"
    else:
        clicked, attributed, click_join = "", "p.channel", ""
    columns = ("points, positive_points, interaction_count, purchase_count, discount_rate_sum, discount_rate_count, "
               "discounted_count, " + ", ".join(f"{c}_conversion" for c in CHANNEL_COLUMNS))
    conv = ", ".join(f"MAX(CASE WHEN channel = '{c}' THEN 1 ELSE 0 END) AS {c}_conversion" for c in CHANNEL_COLUMNS)
    either = ", ".join(f"COALESCE(e.{k}, b.{k})" for k in ("contact_id", "brand", "day"))
    purchase = "CAST(:pt_purchase AS DOUBLE PRECISION)"
    return f"""
INSERT INTO {into} (contact_id, brand, day, {columns})
WITH events AS (
    SELECT contact_id, brand, day, SUM(points) AS points, SUM(CASE WHEN points > 0 THEN points ELSE 0 END) AS positive,
           COUNT(*) AS n
    FROM (SELECT t.contact_id, t.brand, {utc_day('t.occurred_at')} AS day, {_points_case(config)} AS points
          FROM {_timeline(full)} t WHERE t.event_type <> 'order') f
    GROUP BY contact_id, brand, day
), buys AS (
    SELECT contact_id, brand, day, COUNT(*) AS n,
           SUM(CASE WHEN subtotal > 0 THEN COALESCE(discount_total, 0) / subtotal ELSE 0 END) AS rate_sum,
           SUM(CASE WHEN subtotal > 0 THEN 1 ELSE 0 END) AS rate_n,
           SUM(CASE WHEN COALESCE(discount_total, 0) > 0 THEN 1 ELSE 0 END) AS discounted
    FROM {_BUYS} GROUP BY contact_id, brand, day
){clicked}, conv AS (
    SELECT contact_id, brand, day, {conv}
    FROM (SELECT DISTINCT p.contact_id, p.brand, p.day, {attributed} AS channel FROM {_BUYS} p{click_join}) a
    WHERE channel IN ({order_chans}) GROUP BY contact_id, brand, day
), bought AS (
    SELECT b.*, {", ".join(f"COALESCE(c.{ch}_conversion, 0) AS {ch}_conversion" for ch in CHANNEL_COLUMNS)}
    FROM buys b LEFT JOIN conv c ON c.contact_id = b.contact_id AND c.brand = b.brand AND c.day = b.day
)
SELECT {either}, COALESCE(e.points, 0) + COALESCE(b.n, 0) * {purchase},
       COALESCE(e.positive, 0) + CASE WHEN {purchase} > 0 THEN COALESCE(b.n, 0) * {purchase} ELSE 0 END,
       COALESCE(e.n, 0) + COALESCE(b.n, 0), COALESCE(b.n, 0), COALESCE(b.rate_sum, 0), COALESCE(b.rate_n, 0),
       COALESCE(b.discounted, 0), {", ".join(f"COALESCE(b.{c}_conversion, 0)" for c in CHANNEL_COLUMNS)}
FROM events e FULL OUTER JOIN bought b ON b.contact_id = e.contact_id AND b.brand = e.brand AND b.day = e.day"""


def _values_sql(full: bool, into: str) -> str:
    """The preference dimensions' values per contact and day (dimension = index in `preferences.DIMENSIONS`)."""
    weekday = (f"CASE {weekday_index(utc_day('t.occurred_at'))} "
               + " ".join(f"WHEN {i} THEN '{d}'" for i, d in enumerate(_WEEKDAYS)) + " END")
    hour = f"LPAD(CAST({utc_hour('t.occurred_at')} AS VARCHAR), 2, '0')"
    bought = f"""SELECT b.contact_id, b.day, pr.top_category, COALESCE(pr.maker, b.brand) AS maker, pr.price_band,
               CAST(i.quantity AS DOUBLE PRECISION) AS weight
        FROM {_BUYS} b JOIN stg_order_items i ON i._brand = b.brand AND i.order_id = b.order_id
        LEFT JOIN tmp_scoring_products pr ON pr.brand = i._brand AND pr.sku = i.sku
        WHERE i.quantity > 0"""
    browsed = f"""SELECT t.contact_id, {utc_day('t.occurred_at')} AS day, pr.top_category, pr.maker, pr.price_band,
               CAST(1 AS DOUBLE PRECISION) AS weight
        FROM {_timeline(full)} t
        JOIN stg_web_events w ON w._brand = t.brand AND w.event_id = t.source_key
        JOIN tmp_scoring_products pr ON pr.brand = w._brand AND pr.sku = w.sku
        WHERE t.event_type IN ('product_view', 'add_to_cart') AND t.source_entity = 'web_events'
          AND w.sku IS NOT NULL"""
    email = f"""SELECT t.contact_id, {utc_day('t.occurred_at')} AS day, {weekday} AS weekday, {hour} AS hour
        FROM {_timeline(full)} t WHERE t.event_type IN ('email_open', 'email_click')"""
    one = "CAST(1 AS DOUBLE PRECISION)"
    # (source, value, weight) per dimension, in the order of `preferences.DIMENSIONS`; each grouped on its own: the
    # dimensions' groups never meet, and nine small aggregates cost a third less CPU at 1M people than one over
    # the union of all their rows (45 M groups with the dimension and a string value in the key)
    sources = (("bought", "top_category", "weight"), ("browsed", "top_category", "weight"),
               ("bought", "maker", "weight"), ("browsed", "maker", "weight"),
               ("bought", "price_band", "weight"), ("browsed", "price_band", "weight"),
               (_BUYS, "channel", one), ("email", "weekday", one), ("email", "hour", one))
    union = "\n    UNION ALL ".join(
        f"SELECT contact_id, day, {i}{' AS dimension' if i == 0 else ''}, {value}{' AS value' if i == 0 else ''}, "
        f"SUM({weight}){' AS weight' if i == 0 else ''} FROM {source} WHERE {value} IS NOT NULL "
        f"GROUP BY contact_id, day, {value}"
        for i, (source, value, weight) in enumerate(sources))
    return f"""
INSERT INTO {into} (contact_id, day, dimension, value, weight)
WITH bought AS ({bought}), browsed AS ({browsed}), email AS ({email})
{union}"""


# A recomputed contact's days from its `since_day` on (all when NULL): the days the profile builds changed.
_REDONE = "r.since_day IS NULL OR t.day >= r.since_day"


def _first_day(conn: sa.Connection) -> int | None:
    """The earliest `since_day` of the recomputed contacts; None when one is redone whole (or none is)."""
    first, whole = conn.execute(sa.text(f"SELECT MIN(since_day), COUNT(*) - COUNT(since_day) FROM {RECOMPUTE}")).one()
    return None if whole or first is None else int(first)


def build_daily(conn: sa.Connection, config: ScoringConfig, *, full: bool) -> int:
    """Rewrite the recomputed contacts' daily rows (all when `full`); needs `tmp_scoring_products`. Of a contact
    with a `since_day`, only the days from it on: the reads start there (email attribution's lookback before
    it), the rows before it are dropped from the copy and the stored rows compared are those days'. Every
    figure of a day is summed from that day's rows, and attribution looks only backwards, so a change on a
    day moves no earlier day. Returns the `scoring_daily` rows recomputed (all of them when `full`)."""
    for name in (_BUYS, TOUCHED):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    bound = points_params(config)
    if "email" in config.channels:
        bound["attribution"] = int(config.email_attribution_days)
    first = None if full else _first_day(conn)
    if not full:
        reach = int(config.email_attribution_days) if "email" in config.channels else 0
        # the earliest day any contact's read starts on, a plain filter first: a drop's since_day is recent, so
        # the join with the recomputed contacts sees few of the timeline's rows
        earliest = "" if first is None else " AND t.occurred_at >= :from_at"
        from_at = {} if first is None else {"from_at": dt.datetime.combine(
            EPOCH + dt.timedelta(days=first - reach), dt.time(), dt.timezone.utc)}
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {TOUCHED} AS SELECT t.* FROM timeline t "
                             f"JOIN {RECOMPUTE} r ON r.contact_id = t.contact_id WHERE (r.since_day IS NULL "
                             f"OR {utc_day('t.occurred_at')} >= r.since_day - :reach){earliest}"),
                     {"reach": reach, **from_at})
    conn.execute(sa.text(_buys_sql(full)))
    recomputed = 0
    for table, key in _KEYS.items():
        into = rewrite.begin(conn, table, full=full)
        conn.execute(sa.text(_daily_sql(config, full, into) if table == "scoring_daily" else _values_sql(full, into)),
                     bound if table == "scoring_daily" else {})
        if not full:  # the attribution lookback's days: read, not redone
            conn.execute(sa.text(f"DELETE FROM {into} WHERE EXISTS (SELECT 1 FROM {RECOMPUTE} r WHERE r.contact_id "
                                 f"= {into}.contact_id AND r.since_day IS NOT NULL AND {into}.day < r.since_day)"))
        if table == "scoring_daily":
            recomputed = conn.execute(sa.text(f"SELECT COUNT(*) FROM {into}")).scalar_one()
        rewrite.finish(conn, table, key, RECOMPUTE, full=full,
                       stored=f"SELECT t.* FROM {table} t JOIN {RECOMPUTE} r ON r.contact_id = t.contact_id "
                              f"WHERE ({_REDONE})" + ("" if first is None else " AND t.day >= :first"),
                       params=None if first is None else {"first": first})
    for name in (_BUYS, TOUCHED):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    return int(recomputed)
