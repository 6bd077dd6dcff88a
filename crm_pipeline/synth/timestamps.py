"""Timestamp text in the exact formats the landed files use.

Formats written (the quality stage must read all of them):
  - ISO 8601 UTC:          `2025-03-04T13:22:05Z`            (most timestamps)
  - ISO 8601 with offset:  `2025-03-04T14:22:05+01:00`       (a share of rows in some files;
                           local time of the person's country, standard time, offsets
                           -05:00, +00:00, +01:00, +10:00)
  - till export:           `03/04/2025 13:22:05`             (brand_c `orders.ordered_at`;
                           US month first, no zone, the value is UTC)
  - date:                  `1984-07-21`                      (`customers.birth_date`)
Times are int64 seconds since the Unix epoch, UTC. Text is built from per-day and
per-second-of-day lookup tables because strftime on millions of values is too slow.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.synth.columns import STR, join

DAY = 86_400
ISO = "iso"
TILL = "till"
DATE = "date"


def epoch_seconds(day: dt.date) -> int:
    """Midnight UTC at the start of `day`, in seconds since the epoch."""
    return (day - dt.date(1970, 1, 1)).days * DAY


@lru_cache(maxsize=4)
def _time_of_day(style: str) -> pa.Array:
    secs = pa.array(np.arange(DAY, dtype="int64").astype("datetime64[s]"))
    fmt = "T%H:%M:%S" if style == ISO else " %H:%M:%S"
    return pc.strftime(secs, format=fmt)


def _days(first: int, last: int, style: str) -> pa.Array:
    days = pa.array(np.arange(first, last + 1, dtype="int64").astype("datetime64[D]").astype("datetime64[s]"))
    return pc.strftime(days, format="%m/%d/%Y" if style == TILL else "%Y-%m-%d")


def format_ts(secs: np.ndarray, style: str = ISO, offset_minutes: np.ndarray | None = None,
              valid: np.ndarray | None = None) -> pa.Array:
    """Seconds -> text. `offset_minutes` (per row, NaN-free ints) writes local time + `+hh:mm`;
    rows where `offset_minutes` is the sentinel -1 (or the whole argument is None) get `Z`.
    `valid=False` rows come out null."""
    secs = np.asarray(secs, dtype=np.int64)
    n = secs.size
    if n == 0:
        return pa.array([], STR)
    use_offset = np.zeros(n, bool) if offset_minutes is None else offset_minutes != -1
    local = secs + np.where(use_offset, offset_minutes if offset_minutes is not None else 0, 0) * 60
    if valid is not None:
        local = np.where(valid, local, local[valid][0] if valid.any() else 0)
    day = local // DAY
    first, last = int(day.min()), int(day.max())
    day_text = _days(first, last, style).take(pa.array(day - first))
    tod_text = _time_of_day(ISO if style != TILL else TILL).take(pa.array(local - day * DAY))
    if style == TILL:
        out = join(day_text, tod_text)
    elif not use_offset.any():
        out = join(day_text, tod_text, "Z")
    else:
        off = np.where(use_offset, offset_minutes, 0)
        values, code = np.unique(off, return_inverse=True)
        texts = [f"{'-' if v < 0 else '+'}{abs(v) // 60:02d}:{abs(v) % 60:02d}" for v in values.tolist()]
        suffix = pa.array(texts + ["Z"], STR).take(pa.array(np.where(use_offset, code, len(texts))))
        out = join(day_text, tod_text, suffix)
    if valid is not None and not valid.all():
        out = pc.if_else(pa.array(valid), out, pa.nulls(n, STR))
    return out


def format_date(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Days since the epoch -> `YYYY-MM-DD` (null where not valid)."""
    days = np.asarray(days, dtype=np.int64)
    if days.size == 0:
        return pa.array([], STR)
    first, last = int(days.min()), int(days.max())
    out = _days(first, last, DATE).take(pa.array(days - first))
    if valid is not None and not valid.all():
        out = pc.if_else(pa.array(valid), out, pa.nulls(days.size, STR))
    return out


def offsets_for(countries: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray | None:
    """Per-row offset minutes (country standard time) for a `share` of rows, -1 elsewhere."""
    from crm_pipeline.synth.reference import UTC_OFFSETS

    if share <= 0:
        return None
    off = np.asarray(UTC_OFFSETS, dtype=np.int64)[countries]
    return np.where(rng.random(countries.size) < share, off, -1)
