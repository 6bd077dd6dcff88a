"""Features per contact as of one or several dates, computed in one grouped SQL pass over the staged tables.

Only records of days up to and including a date are read for that date, so a feature row
never sees the future. Days are whole UTC day numbers (epoch seconds / 86400), which keeps
the date arithmetic portable between DuckDB and PostgreSQL; a record belongs to the day of
its timestamp in UTC (midnight belongs to the new day). A purchase is an order that is
neither cancelled nor fully refunded; orders on the same day are merged into one purchase
(the BG/NBD convention). Monetary values are in the order's currency.

Several dates (the classifier's training and evaluation windows) are computed together:
each event is joined to the dates on or after its day (`cutoffs`), then grouped by date and
contact, so the staged tables are scanned once however many windows are asked for. Order lines
are first reduced to a row per contact and day (units) and per contact and category (its first
day): what is paired with the dates is those rows, not every line. SQL
returns exact integer sums (money in cents) and pandas divides, so DuckDB and PostgreSQL give
bit-identical features.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.profiles.sql import day_number, is_purchase, utc_day
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.predict_schema import features


def cutoff_of(as_of: dt.date) -> dt.datetime:
    """The first instant after `as_of` (UTC): records strictly before it are known at as_of."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)


FEATURE_COLUMNS = [c.name for c in features.columns if c.name not in ("as_of", "contact_id")]
# Computed with the features but not stored in `features` (model inputs only).
MODEL_ONLY_COLUMNS = ["purchase_90d_count", "purchase_prev_90d_count"]
_EXACT = ["purchase_count", "total_cents", "repeat_cents", "t_x_days", "T_days", "gap_count", "gap_sum", "gap_sq_sum",
          "units_bought", "units_returned"]

_PURCHASE = is_purchase("o.status")
_SCRATCH = "tmp_predict_features"

# The classifier's sample: every :every-th contact with an order before :sample_cutoff in contact_id order (a
# deterministic subsample, the same at every date and unmoved by later orders).
_SAMPLED_SQL = """
    SELECT contact_id FROM (
        SELECT contact_id, ROW_NUMBER() OVER (ORDER BY contact_id) AS rn
        FROM (SELECT DISTINCT m.contact_id FROM identity_map m
              JOIN stg_orders o ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id
              WHERE o.ordered_at < :sample_cutoff) d
    ) s WHERE MOD(rn, :every) = 0
"""

# Dates with training = 1 (classifier windows) keep only the sampled buyers; training = 0 keeps everyone.
_SQL = f"""
WITH cutoffs (as_of, day, training) AS (VALUES {{cutoffs}}),
sampled AS ({_SAMPLED_SQL}),
purchases AS (
    SELECT m.contact_id, o._brand AS brand, o.order_id, o.total, {utc_day('o.ordered_at')} AS day,
           {{in_sample}} AS in_sample
    FROM stg_orders o
    JOIN identity_map m ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id
    {{sample_join}}
    WHERE o.ordered_at < :cutoff AND {_PURCHASE}
),
orders_first AS (
    SELECT m.contact_id, MAX({{in_sample}}) AS in_sample, MIN({utc_day('o.ordered_at')}) AS day
    FROM stg_orders o
    JOIN identity_map m ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id
    {{sample_join}}
    WHERE o.ordered_at < :cutoff
    GROUP BY m.contact_id
),
purchase_days AS (
    SELECT contact_id, in_sample, day, value,
           ROW_NUMBER() OVER (PARTITION BY contact_id ORDER BY day) AS nth,
           day - LAG(day) OVER (PARTITION BY contact_id ORDER BY day) AS gap
    FROM (SELECT contact_id, in_sample, day, SUM(CAST(ROUND(COALESCE(total, 0) * 100) AS BIGINT)) AS value
          FROM purchases GROUP BY contact_id, in_sample, day) d
),
buyer AS (
    SELECT c.as_of, c.day AS cutoff_day, p.contact_id, COUNT(*) AS purchase_count, MIN(p.day) AS first_day,
           MAX(p.day) AS last_day, CAST(SUM(p.value) AS BIGINT) AS total_cents,
           CAST(SUM(CASE WHEN p.nth > 1 THEN p.value END) AS BIGINT) AS repeat_cents, COUNT(p.gap) AS gap_count,
           CAST(SUM(p.gap) AS BIGINT) AS gap_sum, CAST(SUM(p.gap * p.gap) AS BIGINT) AS gap_sq_sum,
           SUM(CASE WHEN p.day > c.day - 90 THEN 1 ELSE 0 END) AS purchase_90d_count,
           SUM(CASE WHEN p.day > c.day - 180 AND p.day <= c.day - 90 THEN 1 ELSE 0 END) AS purchase_prev_90d_count
    FROM purchase_days p JOIN cutoffs c ON p.day <= c.day AND (c.training = 0 OR p.in_sample = 1)
    GROUP BY c.as_of, c.day, p.contact_id
),
basket_lines AS (
    SELECT p.contact_id, p.in_sample, p.day, i.quantity, pr.category
    FROM purchases p
    JOIN stg_order_items i ON i._brand = p.brand AND i.order_id = p.order_id
    LEFT JOIN stg_products pr ON pr._brand = i._brand AND pr.sku = i.sku
),
basket_days AS (
    SELECT contact_id, in_sample, day,
           SUM(CASE WHEN quantity > 0 THEN quantity ELSE 0 END) AS bought,
           SUM(CASE WHEN quantity < 0 THEN -quantity ELSE 0 END) AS returned
    FROM basket_lines GROUP BY contact_id, in_sample, day
),
category_days AS (
    SELECT contact_id, in_sample, category, MIN(day) AS day
    FROM basket_lines WHERE category IS NOT NULL GROUP BY contact_id, in_sample, category
),
basket_units AS (
    SELECT c.as_of, b.contact_id, SUM(b.bought) AS units_bought, SUM(b.returned) AS units_returned
    FROM basket_days b JOIN cutoffs c ON b.day <= c.day AND (c.training = 0 OR b.in_sample = 1)
    GROUP BY c.as_of, b.contact_id
),
basket_categories AS (
    SELECT c.as_of, g.contact_id, COUNT(*) AS category_count
    FROM category_days g JOIN cutoffs c ON g.day <= c.day AND (c.training = 0 OR g.in_sample = 1)
    GROUP BY c.as_of, g.contact_id
),
basket AS (
    SELECT u.as_of, u.contact_id, u.units_bought, u.units_returned, COALESCE(g.category_count, 0) AS category_count
    FROM basket_units u LEFT JOIN basket_categories g ON g.as_of = u.as_of AND g.contact_id = u.contact_id
),
brands AS (
    SELECT c.as_of, p.contact_id, COUNT(DISTINCT p.brand) AS brand_count
    FROM purchases p JOIN cutoffs c ON p.day <= c.day AND (c.training = 0 OR p.in_sample = 1)
    GROUP BY c.as_of, p.contact_id
),
email_days AS (
    SELECT m.contact_id, MAX({{in_sample}}) AS in_sample, {utc_day('e.occurred_at')} AS day,
           SUM(CASE WHEN e.event_type = 'open' THEN 1 ELSE 0 END) AS opens,
           SUM(CASE WHEN e.event_type = 'click' THEN 1 ELSE 0 END) AS clicks
    FROM stg_email_events e
    JOIN identity_map m ON m.entity = 'email_events' AND m.brand = e._brand AND m.source_key = e.event_id
    {{sample_join}}
    WHERE e.occurred_at < :cutoff
    GROUP BY m.contact_id, {utc_day('e.occurred_at')}
),
email_agg AS (
    SELECT c.as_of, e.contact_id,
           CAST(SUM(CASE WHEN e.day > c.day - 30 THEN e.opens ELSE 0 END) AS INTEGER) AS open_30,
           CAST(SUM(CASE WHEN e.day > c.day - 90 THEN e.opens ELSE 0 END) AS INTEGER) AS open_90,
           CAST(SUM(CASE WHEN e.day > c.day - 30 THEN e.clicks ELSE 0 END) AS INTEGER) AS click_30,
           CAST(SUM(CASE WHEN e.day > c.day - 90 THEN e.clicks ELSE 0 END) AS INTEGER) AS click_90,
           MAX(CASE WHEN e.opens > 0 THEN e.day END) AS last_open,
           MAX(CASE WHEN e.clicks > 0 THEN e.day END) AS last_click,
           MIN(e.day) AS first_day
    FROM email_days e JOIN cutoffs c ON e.day <= c.day AND (c.training = 0 OR e.in_sample = 1)
    GROUP BY c.as_of, e.contact_id
),
web_days AS (
    SELECT m.contact_id, MAX({{in_sample}}) AS in_sample, {utc_day('w.occurred_at')} AS day, COUNT(*) AS events
    FROM stg_web_events w
    JOIN identity_map m ON m.entity = 'web_events' AND m.brand = w._brand AND m.source_key = w.event_id
    {{sample_join}}
    WHERE w.occurred_at < :cutoff
    GROUP BY m.contact_id, {utc_day('w.occurred_at')}
),
web_agg AS (
    SELECT c.as_of, w.contact_id,
           CAST(SUM(CASE WHEN w.day > c.day - 30 THEN w.events ELSE 0 END) AS INTEGER) AS browse_30,
           CAST(SUM(CASE WHEN w.day > c.day - 90 THEN w.events ELSE 0 END) AS INTEGER) AS browse_90,
           MAX(w.day) AS last_day, MIN(w.day) AS first_day
    FROM web_days w JOIN cutoffs c ON w.day <= c.day AND (c.training = 0 OR w.in_sample = 1)
    GROUP BY c.as_of, w.contact_id
),
subs AS (
    SELECT c.as_of, s.contact_id, MIN(s.day) AS first_day
    FROM (SELECT m.contact_id, {{in_sample}} AS in_sample, {utc_day('s.subscribed_at')} AS day
          FROM stg_subscribers s
          JOIN identity_map m ON m.entity = 'subscribers' AND m.brand = s._brand AND m.source_key = s.subscriber_id
          {{sample_join}}
          WHERE s.subscribed_at < :cutoff) s
    JOIN cutoffs c ON s.day <= c.day AND (c.training = 0 OR s.in_sample = 1)
    GROUP BY c.as_of, s.contact_id
),
first_seen AS (
    SELECT as_of, contact_id, MIN(first_day) AS first_day FROM (
        SELECT c.as_of, o.contact_id, o.day AS first_day FROM orders_first o
        JOIN cutoffs c ON o.day <= c.day AND (c.training = 0 OR o.in_sample = 1)
        UNION ALL SELECT as_of, contact_id, first_day FROM email_agg
        UNION ALL SELECT as_of, contact_id, first_day FROM web_agg
        UNION ALL SELECT as_of, contact_id, first_day FROM subs
    ) known GROUP BY as_of, contact_id
)
SELECT
    f.as_of,
    f.contact_id,
    COALESCE(b.purchase_count, 0) AS purchase_count,
    GREATEST(COALESCE(b.purchase_count, 0) - 1, 0) AS frequency,
    t.day - b.last_day AS recency_days,
    b.total_cents, b.repeat_cents,
    t.day - f.first_day AS tenure_days,
    b.last_day - b.first_day AS t_x_days,
    t.day - b.first_day AS "T_days",
    b.gap_count, b.gap_sum, b.gap_sq_sum,
    CAST(k.units_bought AS BIGINT) AS units_bought, CAST(k.units_returned AS BIGINT) AS units_returned,
    k.category_count,
    r.brand_count,
    COALESCE(e.open_30, 0) AS email_open_30d_count,
    COALESCE(e.open_90, 0) AS email_open_90d_count,
    COALESCE(e.click_30, 0) AS email_click_30d_count,
    COALESCE(e.click_90, 0) AS email_click_90d_count,
    t.day - e.last_open AS days_since_open,
    t.day - e.last_click AS days_since_click,
    COALESCE(w.browse_30, 0) AS browse_30d_count,
    COALESCE(w.browse_90, 0) AS browse_90d_count,
    t.day - w.last_day AS days_since_browse,
    t.day - s.first_day AS subscription_age_days,
    CAST(COALESCE(b.purchase_90d_count, 0) AS INTEGER) AS purchase_90d_count,
    CAST(COALESCE(b.purchase_prev_90d_count, 0) AS INTEGER) AS purchase_prev_90d_count
FROM first_seen f
JOIN cutoffs t ON t.as_of = f.as_of
LEFT JOIN buyer b ON b.contact_id = f.contact_id AND b.as_of = f.as_of
LEFT JOIN basket k ON k.contact_id = f.contact_id AND k.as_of = f.as_of
LEFT JOIN brands r ON r.contact_id = f.contact_id AND r.as_of = f.as_of
LEFT JOIN email_agg e ON e.contact_id = f.contact_id AND e.as_of = f.as_of
LEFT JOIN web_agg w ON w.contact_id = f.contact_id AND w.as_of = f.as_of
LEFT JOIN subs s ON s.contact_id = f.contact_id AND s.as_of = f.as_of
WHERE t.training = 0 OR b.contact_id IS NOT NULL
"""


def _cutoffs(dates: Sequence[dt.date], training: Sequence[dt.date] = ()) -> tuple[str, dict]:
    """The rows of the `cutoffs (as_of, day, training)` VALUES list and their bound parameters."""
    values = ", ".join(f"(CAST(:as_of_{i} AS DATE), :day_{i}, {int(d in training)})" for i, d in enumerate(dates))
    params = {f"as_of_{i}": d for i, d in enumerate(dates)} | {f"day_{i}": day_number(d) for i, d in enumerate(dates)}
    return values, params


def _dates(value) -> list[dt.date]:
    return [value] if isinstance(value, dt.date) else list(value)


def features_query(as_ofs: dt.date | Sequence[dt.date] = (), *, training: Sequence[dt.date] = (),
                   every: int = 1, sample_until: dt.date | None = None) -> sa.TextClause:
    """One row per contact known at each date (rows carry their `as_of`), in one pass; sums are exact
    integers (money in cents) that `compute_features` turns into the feature columns.

    Dates in `as_ofs` get every contact; dates in `training` only contacts with a purchase and,
    when `every` > 1, only every n-th contact with an order up to `sample_until` (default: the last
    date; by contact_id: the same sample at every date and run), to bound the classifier's training rows.
    """
    sql, params = _features_sql(as_ofs, training, every, sample_until)
    return sa.text(sql).bindparams(**params)


def _features_sql(as_ofs, training, every: int, sample_until: dt.date | None,
                  only: str | None = None) -> tuple[str, dict]:
    training = set(_dates(training)) - set(_dates(as_ofs))
    dates = sorted(set(_dates(as_ofs)) | training)
    values, params = _cutoffs(dates, training)
    sampled = every > 1 and training
    # A record is in the sample when its contact is: a LEFT JOIN to the sampled contacts (distinct), not an
    # `IN (SELECT ... FROM sampled)` inside a CASE, a shape DuckDB 1.5.6 can hang on under load (duckdb/duckdb#24961).
    in_sample = "CASE WHEN smp.contact_id IS NOT NULL THEN 1 ELSE 0 END" if sampled else "1"
    sample_join = "LEFT JOIN sampled smp ON smp.contact_id = m.contact_id" if sampled else ""
    sql = _SQL.replace("{cutoffs}", values).replace("{in_sample}", in_sample).replace("{sample_join}", sample_join)
    if only:    # the identity rows of those contacts only: the staged tables are probed against a small table
        sql = sql.replace("JOIN identity_map m ON", f"JOIN {only} m ON")
    return sql, {**params, "cutoff": cutoff_of(dates[-1]), "every": max(int(every), 1),
                 "sample_cutoff": cutoff_of(sample_until or dates[-1])}


_SAMPLE_MAP = "tmp_predict_sample_map"
# The identity rows of the classifier's sample (the `sampled` CTE of _SQL, which is what `training` dates keep).
_SAMPLE_MAP_SQL = f"""
SELECT m.entity, m.brand, m.source_key, m.contact_id FROM identity_map m
JOIN ({_SAMPLED_SQL}) smp ON smp.contact_id = m.contact_id
"""


def training_windows(conn: sa.Connection, training: Sequence[dt.date], *, every: int = 1,
                     sample_until: dt.date | None = None) -> pd.DataFrame:
    """The classifier's windows: `compute_features(conn, training=training, every=every, sample_until=...)`, from
    the sampled contacts' records only.

    The sample's identity rows go into a scratch table first and the grouped pass probes the staged tables against
    it (as `features_of` does): a feature row reads its own contact's records only, so the rows are those of the
    pass over everyone, at a fraction of the join and of the event-day x cutoff pairs (at 100k people, one
    contact in three of the buyers; the day's features of everyone are a separate one-date pass).
    """
    dates = sorted(set(_dates(training)))
    if not dates:       # too little history for a classifier window
        return pd.DataFrame(columns=[c.name for c in features.columns] + MODEL_ONLY_COLUMNS)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_SAMPLE_MAP}"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_SAMPLE_MAP} AS {_SAMPLE_MAP_SQL}").bindparams(
        every=max(int(every), 1), sample_cutoff=cutoff_of(sample_until or dates[-1])))
    # every = 1 here: the scratch table is the sample; training dates keep its buyers.
    sql, params = _features_sql((), dates, 1, None, only=_SAMPLE_MAP)
    raw = read_frame(conn, sa.text(sql).bindparams(**params))
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_SAMPLE_MAP}"))
    return _dated(_derived(raw)).sort_values(["as_of", "contact_id"], ignore_index=True)


_BUYERS_SQL = f"""
WITH purchase_days AS (
    SELECT contact_id, day, value, ROW_NUMBER() OVER (PARTITION BY contact_id ORDER BY day) AS nth
    FROM (SELECT m.contact_id, {utc_day('o.ordered_at')} AS day,
                 SUM(CAST(ROUND(COALESCE(o.total, 0) * 100) AS BIGINT)) AS value
          FROM stg_orders o
          JOIN identity_map m ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id
          WHERE o.ordered_at < :cutoff AND {_PURCHASE}
          GROUP BY m.contact_id, {utc_day('o.ordered_at')}) d
)
SELECT contact_id, COUNT(*) AS purchase_count, COUNT(*) - 1 AS frequency, :day - MAX(day) AS recency_days,
       MAX(day) - MIN(day) AS t_x_days, :day - MIN(day) AS "T_days",
       CAST(SUM(CASE WHEN nth > 1 THEN value END) AS BIGINT) AS repeat_cents
FROM purchase_days GROUP BY contact_id ORDER BY contact_id
"""


def buyers_at(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """What BG/NBD and Gamma-Gamma fit on, per buyer at `as_of` (purchase_count, frequency, recency_days, t_x_weeks,
    T_weeks, monetary_repeat as `compute_features` gives them), from the orders alone: a training day's fits need
    no other record, so they cost one narrow pass."""
    raw = read_frame(conn, sa.text(_BUYERS_SQL).bindparams(cutoff=cutoff_of(as_of), day=day_number(as_of)))
    f = raw.astype({c: "float64" for c in ("purchase_count", "t_x_days", "T_days", "repeat_cents")})
    n = f["purchase_count"]
    return raw.assign(t_x_weeks=f["t_x_days"] / 7.0, T_weeks=f["T_days"] / 7.0,
                      monetary_repeat=f["repeat_cents"] / 100.0 / (n - 1).where(n > 1)).drop(
        columns=["t_x_days", "T_days", "repeat_cents"])


def features_of(conn: sa.Connection, as_of: dt.date, identity_rows: str) -> pd.DataFrame:
    """Features (and the model-only columns) at `as_of` of some contacts, given a table of their `identity_map`
    rows: the grouped pass over their records only, exactly as for everyone (no feature reads another contact)."""
    sql, params = _features_sql(as_of, (), 1, None, only=identity_rows)
    return _dated(_derived(read_frame(conn, sa.text(sql).bindparams(**params))))


# The day's features of every contact with the model-only columns: what a run writes to `features` and scores.
DAY = sa.Table("tmp_predict_day", sa.MetaData(),
               *(sa.Column(c.name, c.type, nullable=c.nullable) for c in features.columns),
               *(sa.Column(c, sa.Integer, nullable=False) for c in MODEL_ONLY_COLUMNS), prefixes=["TEMPORARY"])

# Day-counted columns a day later: the same last purchase, first record, open, click, visit, subscription.
_SHIFTED = ("recency_days", "tenure_days", "days_since_open", "days_since_click", "days_since_browse",
            "subscription_age_days")
# Window counts from `contact_daily` (the profiles' per contact, brand and day counts): (column, its count over
# the rows in the window, window in days, end of the window in days before as_of). A purchase day is a day with a
# purchase in any brand.
_WINDOWS = (("email_open_30d_count", "SUM({in} email_open_count ELSE 0 END)", 30, 0),
            ("email_open_90d_count", "SUM({in} email_open_count ELSE 0 END)", 90, 0),
            ("email_click_30d_count", "SUM({in} email_click_count ELSE 0 END)", 30, 0),
            ("email_click_90d_count", "SUM({in} email_click_count ELSE 0 END)", 90, 0),
            ("browse_30d_count", "SUM({in} web_event_count ELSE 0 END)", 30, 0),
            ("browse_90d_count", "SUM({in} web_event_count ELSE 0 END)", 90, 0),
            ("purchase_90d_count", "COUNT(DISTINCT {in} CASE WHEN purchase_count > 0 THEN day END END)", 90, 0),
            ("purchase_prev_90d_count", "COUNT(DISTINCT {in} CASE WHEN purchase_count > 0 THEN day END END)", 90, 90))


def create_day(conn: sa.Connection) -> None:
    DAY.drop(conn, checkfirst=True)
    DAY.create(conn)


def add_to_day(conn: sa.Connection, frame: pd.DataFrame) -> int:
    return insert_arrow(conn, DAY, pa.Table.from_pandas(frame[[c.name for c in DAY.columns]], preserve_index=False))


def carry_to_day(conn: sa.Connection, previous: dt.date, as_of: dt.date, recomputed: str) -> None:
    """The features at `as_of` of the contacts stored at `previous` and not in `recomputed`, into the day table.

    Such a contact has no record dated after `previous` up to `as_of` and no changed record (the caller's
    `recomputed` holds those), so its sums stay and its day counts move by the days between; its 30- and 90-day
    windows are summed again from `contact_daily`, a narrow read of the last 180 days, never the events.
    """
    delta = (as_of - previous).days
    windows = ", ".join(count.replace("{in}", f"CASE WHEN day > :from_{n} AND day <= :to_{n} THEN") + f" AS {n}"
                        for n, count, _, _ in _WINDOWS)
    picked = []
    for column in DAY.columns:
        name = column.name
        if name == "as_of":
            picked.append("CAST(:as_of AS DATE)")
        elif name in _SHIFTED:
            picked.append(f"f.{name} + {delta}")
        elif name == "T_weeks":     # T in whole days, a day later, in weeks (the division pandas does)
            picked.append(f'(ROUND(f."T_weeks" * 7) + {delta}) / 7.0')
        elif name in {w[0] for w in _WINDOWS}:
            picked.append(f"COALESCE(w.{name}, 0)")
        else:
            picked.append(f'f."{name}"')
    params = {"as_of": as_of, "previous": previous, "since": as_of - dt.timedelta(days=180)}
    for n, _, length, end in _WINDOWS:
        params[f"to_{n}"] = as_of - dt.timedelta(days=end)
        params[f"from_{n}"] = as_of - dt.timedelta(days=end + length)
    columns = ", ".join(f'"{c.name}"' for c in DAY.columns)
    conn.execute(sa.text(f"""
        INSERT INTO {DAY.name} ({columns})
        SELECT {", ".join(picked)}
        FROM features f
        LEFT JOIN (SELECT contact_id, {windows} FROM contact_daily WHERE day > :since AND day <= :as_of
                   GROUP BY contact_id) w
          ON w.contact_id = f.contact_id
        WHERE f.as_of = :previous AND f.contact_id NOT IN (SELECT contact_id FROM {recomputed})"""), params)


def _pages(conn: sa.Connection, table: str, batch_rows: int, where: str = "1 = 1") -> Iterator[pd.DataFrame]:
    """Rows of `table` matching `where`, `batch_rows` at a time in contact_id order."""
    after = None
    while True:
        page = sa.text(f"SELECT * FROM {table} WHERE {where}{'' if after is None else ' AND contact_id > :after'} "
                       "ORDER BY contact_id LIMIT :n").bindparams(n=batch_rows)
        frame = read_frame(conn, page.bindparams(after=after) if after is not None else page)
        if frame.empty:
            return
        after = frame["contact_id"].iloc[-1]
        yield frame


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame


def day_batches(conn: sa.Connection, batch_rows: int, where: str = "1 = 1") -> Iterator[pd.DataFrame]:
    """Rows of the day table matching `where`, `batch_rows` at a time in contact_id order."""
    return (_dated(frame) for frame in _pages(conn, DAY.name, batch_rows, where))


def feature_batches(conn: sa.Connection, as_of: dt.date, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The features of every contact at `as_of` (as `compute_features`), `batch_rows` contacts at a time in
    contact_id order: the grouped pass runs once into a scratch table, Python sees one batch at a time."""
    sql, params = _features_sql(as_of, (), 1, None)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_SCRATCH}"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_SCRATCH} AS {sql}").bindparams(**params))
    for raw in _pages(conn, _SCRATCH, batch_rows):
        yield _dated(_derived(raw))
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_SCRATCH}"))


def compute_features(conn: sa.Connection, as_ofs: dt.date | Sequence[dt.date] = (), *,
                     training: Sequence[dt.date] = (), every: int = 1,
                     sample_until: dt.date | None = None) -> pd.DataFrame:
    """Features (and the model-only columns) at the dates, sorted by as_of then contact_id (see features_query)."""
    query = features_query(as_ofs, training=training, every=every, sample_until=sample_until)
    return _dated(_derived(read_frame(conn, query))).sort_values(["as_of", "contact_id"], ignore_index=True)


def _derived(raw: pd.DataFrame) -> pd.DataFrame:
    """Means, spreads and ratios from the exact integer sums SQL returns (money in cents).

    Dividing here rather than in SQL gives identical doubles on every backend (PostgreSQL's
    numeric averages and DuckDB's double sums differed in the last bits, which broke ties).
    """
    f = raw.astype({c: "float64" for c in _EXACT})
    n, gaps = f["purchase_count"], f["gap_count"]
    variance = (f["gap_sq_sum"] - f["gap_sum"] ** 2 / gaps) / (gaps - 1)
    out = raw.assign(
        monetary=f["total_cents"] / 100.0 / n.where(n > 0),
        monetary_repeat=f["repeat_cents"] / 100.0 / (n - 1).where(n > 1),
        total_value=f["total_cents"] / 100.0,
        t_x_weeks=f["t_x_days"] / 7.0,
        T_weeks=f["T_days"] / 7.0,
        interpurchase_mean_days=f["gap_sum"] / gaps.where(gaps > 0),
        interpurchase_std_days=np.sqrt(variance.clip(lower=0)).where(gaps > 1),
        return_rate=f["units_returned"] / f["units_bought"].where(f["units_bought"] > 0),
    )
    return out[[c.name for c in features.columns] + MODEL_ONLY_COLUMNS]


def first_purchase_after(conn: sa.Connection, cutoffs: Sequence[dt.date], until: dt.date) -> pd.DataFrame:
    """Per cutoff and contact, the first purchase day after the cutoff and not after `until` (classifier labels)."""
    dates = sorted(set(cutoffs))
    values, params = _cutoffs(dates)
    query = sa.text(f"""
        WITH cutoffs (as_of, day, training) AS (VALUES {values}),
        days AS (
            SELECT DISTINCT m.contact_id, {utc_day('o.ordered_at')} AS day
            FROM stg_orders o
            JOIN identity_map m ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id
            WHERE o.ordered_at >= :start AND o.ordered_at < :end AND {_PURCHASE}
        )
        SELECT c.as_of, d.contact_id, MIN(d.day) AS first_day
        FROM days d JOIN cutoffs c ON d.day > c.day
        GROUP BY c.as_of, d.contact_id
    """).bindparams(start=cutoff_of(dates[0]), end=cutoff_of(until), **params)
    return _dated(read_frame(conn, query))
