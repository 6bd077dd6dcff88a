"""UTC day numbers: the scoring stage's calendar arithmetic, portable and cheap.

Ages, recency and lifecycle thresholds are whole UTC days. Rather than converting every timestamp
to a calendar date (`AT TIME ZONE 'UTC'`, which DuckDB runs through ICU, about ten times slower than
plain arithmetic over tens of millions of rows), a timestamp becomes its UTC day number (days since
1970-01-01) from its epoch seconds; dates are rebuilt only for the rows written. Standard SQL that
DuckDB and PostgreSQL both run (EXTRACT(EPOCH ...), FLOOR, MOD, DATE + INTEGER). The day number
of a timestamp and of a date (`utc_day`, `day_number`) live in `crm_pipeline.profiles.sql`, which
predictions share.
"""

from __future__ import annotations


def day_date(expr: str) -> str:
    """A UTC day number back as a DATE."""
    return f"CAST(DATE '1970-01-01' + CAST({expr} AS INTEGER) AS DATE)"


def _non_negative_mod(expr: str, divisor: int) -> str:
    """`expr` modulo `divisor` in 0 .. divisor - 1: SQL's MOD takes the sign of `expr`, so a moment before
    1970 (a negative epoch) would give a negative hour or weekday."""
    return f"MOD(MOD({expr}, {divisor}) + {divisor}, {divisor})"


def utc_hour(expr: str) -> str:
    """The UTC hour (0-23) of a timestamp with time zone."""
    seconds_into_day = _non_negative_mod(f"CAST(FLOOR(EXTRACT(EPOCH FROM {expr})) AS BIGINT)", 86400)
    return f"CAST(FLOOR({seconds_into_day} / 3600) AS INTEGER)"


def weekday_index(day_expr: str) -> str:
    """0 = Monday ... 6 = Sunday for a UTC day number (day 0, 1970-01-01, was a Thursday)."""
    return _non_negative_mod(f"{day_expr} + 3", 7)
