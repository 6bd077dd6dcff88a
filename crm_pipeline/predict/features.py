"""Features per contact as of a date, computed in SQL from the staged tables joined to `identity_map`.

Only records dated before the end of `as_of` (midnight UTC of the next day) are read, so
a feature row never sees the future. Days are whole UTC day numbers (epoch seconds / 86400),
which keeps the date arithmetic portable between DuckDB and PostgreSQL. A purchase is an
order that is neither cancelled nor fully refunded; orders on the same day are merged into
one purchase (the BG/NBD convention). Monetary values are in the order's currency.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.predict_schema import features

NOT_PURCHASES = ("cancelled", "refunded")
_EPOCH = dt.date(1970, 1, 1)


def epoch_day(column: str) -> str:
    """Whole UTC day number of a timestamptz column (EXTRACT(EPOCH ...) works on DuckDB and PostgreSQL)."""
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / 86400) AS INTEGER)"


def day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def cutoff_of(as_of: dt.date) -> dt.datetime:
    """The first instant after `as_of` (UTC): records strictly before it are known at as_of."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)


FEATURE_COLUMNS = [c.name for c in features.columns if c.name not in ("as_of", "contact_id")]

_SQL = f"""
WITH orders_known AS (
    SELECT m.contact_id, o._brand AS brand, o.order_id, o.status, o.total, {epoch_day('o.ordered_at')} AS day
    FROM stg_orders o
    JOIN identity_map m ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id
    WHERE o.ordered_at < :cutoff
),
purchases AS (
    SELECT * FROM orders_known WHERE status IS NULL OR status NOT IN ('cancelled', 'refunded')
),
purchase_days AS (
    SELECT contact_id, day, value,
           ROW_NUMBER() OVER (PARTITION BY contact_id ORDER BY day) AS nth,
           day - LAG(day) OVER (PARTITION BY contact_id ORDER BY day) AS gap
    FROM (SELECT contact_id, day, SUM(COALESCE(total, 0)) AS value FROM purchases GROUP BY contact_id, day) d
),
buyer AS (
    SELECT contact_id, COUNT(*) AS purchase_count, MIN(day) AS first_day, MAX(day) AS last_day,
           AVG(value) AS monetary, AVG(CASE WHEN nth > 1 THEN value END) AS monetary_repeat,
           SUM(value) AS total_value, AVG(gap) AS gap_mean, STDDEV_SAMP(gap) AS gap_std
    FROM purchase_days GROUP BY contact_id
),
basket AS (
    SELECT p.contact_id,
           SUM(CASE WHEN i.quantity > 0 THEN i.quantity ELSE 0 END) AS units_bought,
           SUM(CASE WHEN i.quantity < 0 THEN -i.quantity ELSE 0 END) AS units_returned,
           COUNT(DISTINCT pr.category) AS category_count
    FROM purchases p
    JOIN stg_order_items i ON i._brand = p.brand AND i.order_id = p.order_id
    LEFT JOIN stg_products pr ON pr._brand = i._brand AND pr.sku = i.sku
    GROUP BY p.contact_id
),
brands AS (
    SELECT contact_id, COUNT(DISTINCT brand) AS brand_count FROM purchases GROUP BY contact_id
),
email AS (
    SELECT m.contact_id, e.event_type, {epoch_day('e.occurred_at')} AS day
    FROM stg_email_events e
    JOIN identity_map m ON m.entity = 'email_events' AND m.brand = e._brand AND m.source_key = e.event_id
    WHERE e.occurred_at < :cutoff
),
email_agg AS (
    SELECT contact_id,
           CAST(SUM(CASE WHEN event_type = 'open' AND day > :day - 30 THEN 1 ELSE 0 END) AS INTEGER) AS open_30,
           CAST(SUM(CASE WHEN event_type = 'open' AND day > :day - 90 THEN 1 ELSE 0 END) AS INTEGER) AS open_90,
           CAST(SUM(CASE WHEN event_type = 'click' AND day > :day - 30 THEN 1 ELSE 0 END) AS INTEGER) AS click_30,
           CAST(SUM(CASE WHEN event_type = 'click' AND day > :day - 90 THEN 1 ELSE 0 END) AS INTEGER) AS click_90,
           MAX(CASE WHEN event_type = 'open' THEN day END) AS last_open,
           MAX(CASE WHEN event_type = 'click' THEN day END) AS last_click,
           MIN(day) AS first_day
    FROM email GROUP BY contact_id
),
web AS (
    SELECT m.contact_id, {epoch_day('w.occurred_at')} AS day
    FROM stg_web_events w
    JOIN identity_map m ON m.entity = 'web_events' AND m.brand = w._brand AND m.source_key = w.event_id
    WHERE w.occurred_at < :cutoff
),
web_agg AS (
    SELECT contact_id,
           CAST(SUM(CASE WHEN day > :day - 30 THEN 1 ELSE 0 END) AS INTEGER) AS browse_30,
           CAST(SUM(CASE WHEN day > :day - 90 THEN 1 ELSE 0 END) AS INTEGER) AS browse_90,
           MAX(day) AS last_day, MIN(day) AS first_day
    FROM web GROUP BY contact_id
),
subs AS (
    SELECT m.contact_id, MIN({epoch_day('s.subscribed_at')}) AS first_day
    FROM stg_subscribers s
    JOIN identity_map m ON m.entity = 'subscribers' AND m.brand = s._brand AND m.source_key = s.subscriber_id
    WHERE s.subscribed_at < :cutoff
    GROUP BY m.contact_id
),
first_seen AS (
    SELECT contact_id, MIN(day) AS first_day FROM (
        SELECT contact_id, MIN(day) AS day FROM orders_known GROUP BY contact_id
        UNION ALL SELECT contact_id, first_day FROM email_agg
        UNION ALL SELECT contact_id, first_day FROM web_agg
        UNION ALL SELECT contact_id, first_day FROM subs
    ) known GROUP BY contact_id
)
SELECT
    CAST(:as_of AS DATE) AS as_of,
    f.contact_id,
    COALESCE(b.purchase_count, 0) AS purchase_count,
    GREATEST(COALESCE(b.purchase_count, 0) - 1, 0) AS frequency,
    :day - b.last_day AS recency_days,
    b.monetary, b.monetary_repeat, b.total_value,
    :day - f.first_day AS tenure_days,
    (b.last_day - b.first_day) / 7.0 AS t_x_weeks,
    (:day - b.first_day) / 7.0 AS "T_weeks",
    b.gap_mean AS interpurchase_mean_days,
    b.gap_std AS interpurchase_std_days,
    CASE WHEN k.units_bought > 0 THEN CAST(k.units_returned AS DOUBLE PRECISION) / k.units_bought END AS return_rate,
    k.category_count,
    r.brand_count,
    COALESCE(e.open_30, 0) AS email_open_30d_count,
    COALESCE(e.open_90, 0) AS email_open_90d_count,
    COALESCE(e.click_30, 0) AS email_click_30d_count,
    COALESCE(e.click_90, 0) AS email_click_90d_count,
    :day - e.last_open AS days_since_open,
    :day - e.last_click AS days_since_click,
    COALESCE(w.browse_30, 0) AS browse_30d_count,
    COALESCE(w.browse_90, 0) AS browse_90d_count,
    :day - w.last_day AS days_since_browse,
    :day - s.first_day AS subscription_age_days
FROM first_seen f
LEFT JOIN buyer b ON b.contact_id = f.contact_id
LEFT JOIN basket k ON k.contact_id = f.contact_id
LEFT JOIN brands r ON r.contact_id = f.contact_id
LEFT JOIN email_agg e ON e.contact_id = f.contact_id
LEFT JOIN web_agg w ON w.contact_id = f.contact_id
LEFT JOIN subs s ON s.contact_id = f.contact_id
"""

_COLUMNS = ", ".join(f'"{c.name}"' for c in features.columns)


def _params(as_of: dt.date) -> dict:
    return {"cutoff": cutoff_of(as_of), "day": day_number(as_of), "as_of": as_of}


def features_query(as_of: dt.date) -> sa.TextClause:
    """The SELECT producing one feature row per contact known at `as_of`."""
    return sa.text(_SQL).bindparams(**_params(as_of))


def compute_features(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """Features at `as_of` as a frame, sorted by contact_id (for model training windows; nothing is written)."""
    frame = read_frame(conn, features_query(as_of))
    return frame.sort_values("contact_id", ignore_index=True)


def write_features(conn: sa.Connection, as_of: dt.date) -> int:
    """Replace the `features` rows of `as_of` (delete-then-insert, inside the caller's transaction)."""
    conn.execute(features.delete().where(features.c.as_of == as_of))
    result = conn.execute(sa.text(f"INSERT INTO features ({_COLUMNS}) {_SQL}").bindparams(**_params(as_of)))
    return result.rowcount


def read_features(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    frame = read_frame(conn, sa.select(features).where(features.c.as_of == as_of))
    return frame.sort_values("contact_id", ignore_index=True)


def purchase_days_between(conn: sa.Connection, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Per contact, the number of purchase days in (start, end] and the first of them (labels for the classifier)."""
    query = sa.text(f"""
        SELECT m.contact_id, COUNT(DISTINCT {epoch_day('o.ordered_at')}) AS purchase_days,
               MIN({epoch_day('o.ordered_at')}) AS first_day
        FROM stg_orders o
        JOIN identity_map m ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id
        WHERE o.ordered_at >= :start AND o.ordered_at < :end
          AND (o.status IS NULL OR o.status NOT IN ('cancelled', 'refunded'))
        GROUP BY m.contact_id
    """).bindparams(start=cutoff_of(start), end=cutoff_of(end))
    return read_frame(conn, query)
