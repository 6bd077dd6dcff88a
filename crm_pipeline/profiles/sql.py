"""SQL fragments the profile stage shares, and the time bounds of an `as_of` day.

Everything here renders standard SQL that DuckDB and PostgreSQL both run (`AT TIME ZONE`,
`POSITION ... IN`, `SUBSTRING ... FROM ... FOR`, window functions, `GROUPING SETS`).
The one non-standard aggregate, an ordered string list, is `string_list_agg`: the place
to switch when a backend spells it differently (Spark: `array_join(array_sort(collect_set(x)), ',')`).
"""

from __future__ import annotations

import datetime as dt

ENGAGEMENT_WINDOWS = (30, 90, 365)

# Order statuses that are not a purchase: revenue, order counts and units ignore them.
NOT_PURCHASE_STATUSES = ("cancelled", "refunded")


def as_of_params(as_of: dt.date) -> dict:
    """Bound parameters for an `as_of` day, all derived from the date (never the wall clock).

    `as_of_end` is midnight UTC after `as_of`: a record counts when its time is before it.
    `since_<n>d` starts the last n days: `as_of` and the n - 1 days before it, so an event
    29 days before `as_of` counts in the 30-day window and one 30 days before does not.
    """
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    params = {"as_of": as_of, "as_of_end": end}
    params.update({f"since_{n}d": end - dt.timedelta(days=n) for n in ENGAGEMENT_WINDOWS})
    # the same window starts as UTC days, for sums over `contact_daily`
    params.update({f"day_since_{n}d": as_of - dt.timedelta(days=n - 1) for n in ENGAGEMENT_WINDOWS})
    return params


# The contacts an incremental build recomputes (every contact on a full build, when no such table is joined in):
# all of them get new 360 figures; of those, WHOLE are rebuilt from all their records (a record removed or moved
# to another contact, changed order lines or catalogue, a new order), the others (APPEND) only gain the events of
# their new records (NEW: the lineage of those records) and of the records dated into a new day; GOLDEN are
# those whose golden records can change. BROWSED: appended contacts whose only new records are web events of
# brands they have a profile in, on the same day: of their 360 figures only the browse ones can change; WINDOWED:
# those due only because opens or clicks left a window (their engagement counts alone change); PROFILED the
# others, whose figures are recomputed.
RECOMPUTE = "tmp_profile_recompute"
BROWSED = "tmp_profile_browsed"
WINDOWED = "tmp_profile_windowed"
PROFILED = "tmp_profile_profiled"
WHOLE = "tmp_profile_whole"
APPEND = "tmp_profile_append"
NEW = "tmp_profile_new"
GOLDEN = "tmp_profile_golden"


def only_recomputed(alias: str, full: bool, scope: str = RECOMPUTE) -> str:
    """A join keeping the rows of `alias` whose contact is in `scope` (a table of contact_id); nothing on a full
    build."""
    return "" if full else f" JOIN {scope} rc_{alias} ON rc_{alias}.contact_id = {alias}.contact_id"


def fast_row_hash(conn, columns: str) -> str | None:
    """An integer hash of `columns` of a row where the backend has a fast one (DuckDB's `hash`, DuckDB-only
    syntax); None elsewhere, where a caller compares the rows themselves."""
    return f"hash({columns})" if conn.dialect.name == "duckdb" else None


def counts(column: str | None, as_of_end: str = ":as_of_end") -> str:
    """A record counts when its time is before the end of `as_of`; an undated record always counts."""
    return "1 = 1" if column is None else f"({column} IS NULL OR {column} < {as_of_end})"


def utc_date(expr: str) -> str:
    """The UTC calendar date of a timestamp with time zone, whatever the session time zone."""
    return f"CAST(({expr}) AT TIME ZONE 'UTC' AS DATE)"


# Common table expressions `tiled, cuts`: per selling brand the upper edges of the lower two list-price
# terciles (NTILE(3) over price; a price on a tercile's upper edge belongs to that tercile), for price bands.
PRICE_TERCILE_CUTS = """tiled AS (
    SELECT _brand AS brand, price, NTILE(3) OVER (PARTITION BY _brand ORDER BY price) AS tercile
    FROM stg_products WHERE price IS NOT NULL
),
cuts AS (
    SELECT brand, MAX(CASE WHEN tercile = 1 THEN price END) AS low_max,
           MAX(CASE WHEN tercile = 2 THEN price END) AS mid_max
    FROM tiled GROUP BY brand
)"""


EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    """A date as its UTC day number (days since 1970-01-01), for a bound parameter."""
    return (day - EPOCH).days


def utc_day(expr: str) -> str:
    """The UTC day number of a timestamp with time zone (EXTRACT(EPOCH ...) runs on DuckDB and PostgreSQL)."""
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {expr}) / 86400) AS INTEGER)"


def utc_day_date(expr: str) -> str:
    """The UTC date of a timestamp with time zone, by epoch arithmetic: the same day as `utc_date`, about
    five times faster on DuckDB, where `AT TIME ZONE` goes through ICU for every row."""
    return f"(DATE '1970-01-01' + {utc_day(expr)})"


def latest_of(a: str, b: str) -> str:
    """The later of two timestamps, ignoring a NULL (GREATEST treats NULL differently per backend)."""
    return f"CASE WHEN {b} IS NULL OR {a} >= {b} THEN COALESCE({a}, {b}) ELSE {b} END"


def top_level_category(expr: str) -> str:
    """`Women > Shoes > Boots` -> `Women` (the whole path when it has no `>`)."""
    return (f"NULLIF(TRIM(CASE WHEN POSITION('>' IN {expr}) > 0 "
            f"THEN SUBSTRING({expr} FROM 1 FOR POSITION('>' IN {expr}) - 1) ELSE {expr} END), '')")


def money_text(expr: str) -> str:
    """An amount as text with two decimals: 79.9 -> '79.90'."""
    return f"CAST(CAST(ROUND(CAST({expr} AS NUMERIC), 2) AS DECIMAL(18, 2)) AS VARCHAR)"


def text(expr: str) -> str:
    """Text of a string, date or integer, the same on every engine. Not for floating point: DuckDB renders a
    DOUBLE 10 as '10.0', PostgreSQL as '10' (money has `money_text`)."""
    return f"CAST({expr} AS VARCHAR)"


def string_list_agg(expr: str, *, distinct: bool = False) -> str:
    """Comma-separated, sorted values of `expr` in a group (NULLs skipped; NULL when none).

    STRING_AGG with ORDER BY runs on DuckDB and PostgreSQL; the one helper to change elsewhere.
    """
    return f"STRING_AGG({'DISTINCT ' if distinct else ''}{expr}, ',' ORDER BY {expr})"


def in_list(values: tuple[str, ...]) -> str:
    """A literal IN list for fixed vocabulary defined in code (never user input)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def is_purchase(status: str) -> str:
    return f"({status} IS NULL OR {status} NOT IN ({in_list(NOT_PURCHASE_STATUSES)}))"
