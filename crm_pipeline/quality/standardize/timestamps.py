"""Timestamps and dates from the formats shops and ESPs export, to one UTC instant per value.

Accepted formats, tried in this order on the values still unparsed (each recognised
cheaply first, then parsed in bulk):

1. ISO 8601: `2023-01-05T10:00:00Z`, `...+01:00`, `...-0500`, fractional seconds,
   `2023-01-05 10:00[:00]`, date-only `2023-01-05`. No offset means UTC.
2. Till formats with slashes: `MM/DD/YYYY HH:MM[:SS]`, `MM/DD/YYYY h:MM[:SS] AM`,
   `MM/DD/YYYY` (`DD/MM/YYYY` ... with `dayfirst_formats=True`), taken as UTC.
3. Epoch seconds (10 digits) and epoch milliseconds (13 digits).

Speed: ISO goes through Arrow's strict ISO 8601 cast (C++, tens of ns a row), the
slash formats through Arrow's `strptime`. `pd.to_datetime(format=...)` is ten to
twenty times slower here (it turns Arrow strings into Python objects first), so it is
only the fallback for the odd ISO shapes Arrow rejects (nanosecond fractions ...).
Impossible dates (`2023-02-30`, `31/31/2023`) do not parse. A value no format accepts
is NaT with `parsed=False`; missing is NaT with `parsed=True` (nothing to flag).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _arrow

UTC_US = pa.timestamp("us", "UTC")
TIMESTAMP_DTYPE = "datetime64[us, UTC]"
DATE_DTYPE = "datetime64[us]"
EARLIEST_PLAUSIBLE = pd.Timestamp("1990-01-01", tz="UTC")

# The ISO shapes Arrow's cast reads; anything else that starts like a date goes to pandas.
_ISO_ARROW = r"\d{4}-\d\d-\d\d(?:[T ]\d\d(?::\d\d(?::\d\d(?:\.\d{1,6})?)?)?(?:Z|[+-]\d\d(?::?\d\d)?)?)?"
_SLASH_TIMES = (" %H:%M:%S", " %H:%M", " %I:%M:%S %p", " %I:%M %p", "")
# Arrow casts all-or-nothing; a piece this small that still fails goes to pandas.
_SMALLEST_PIECE = 2048


def parse_timestamps(values: pd.Series, *, dayfirst_formats: bool = False) -> tuple[pd.Series, pd.Series]:
    """Parse mixed-format timestamps to UTC; returns `(utc: datetime64[us, UTC], parsed: bool)`."""
    text = _arrow.squeeze(_arrow.to_arrow(values))
    result = pa.nulls(len(text), UTC_US)

    iso = _iso_like(text)
    if pc.any(iso).as_py():
        result = pc.replace_with_mask(result, iso, _parse_iso(pc.filter(text, iso)))

    slash = _arrow.mask(pc.match_substring(text, "/"))
    if pc.any(slash).as_py():
        parsed = _parse_slashed(pc.filter(text, slash), dayfirst_formats, with_time=True)
        result = pc.replace_with_mask(result, slash, pc.assume_timezone(parsed, "UTC"))

    decimal = pc.ascii_is_decimal(text)
    for digits, per_second in ((10, 1_000_000), (13, 1_000)):
        epoch = _arrow.mask(pc.and_(decimal, pc.equal(pc.utf8_length(text), digits)))
        if pc.any(epoch).as_py():
            micros = pc.multiply(pc.cast(pc.filter(text, epoch), pa.int64()), per_second)
            result = pc.replace_with_mask(result, epoch, pc.cast(micros, UTC_US))

    utc = pd.Series(result.to_pandas().array, index=values.index).astype(TIMESTAMP_DTYPE)
    parsed = pc.or_(pc.is_null(text), pc.is_valid(result))
    return utc, _arrow.bool_series(parsed, values.index, missing=True)


def parse_dates(values: pd.Series, *, dayfirst_formats: bool = False) -> tuple[pd.Series, pd.Series]:
    """Parse calendar dates (birth_date ...) as written, no time zone shift.

    Accepts `YYYY-MM-DD` and `MM/DD/YYYY` (`DD/MM/YYYY` with `dayfirst_formats=True`),
    also with a time part, which is ignored (a database export writes `1985-03-02 00:00:00`).
    Returns `(date: datetime64[us] at midnight, parsed: bool)`; `.dt.date` gives `date` objects.
    """
    text = _arrow.squeeze(_arrow.to_arrow(values))
    result = pa.nulls(len(text), pa.timestamp("us"))

    # `YYYY-MM-DD`, alone or followed by a time part after `T` or a space.
    iso = pc.and_(_iso_like(text), pc.is_in(pc.utf8_slice_codeunits(text, 10, 11), value_set=pa.array(["", "T", " "])))
    iso = _arrow.mask(iso)
    if pc.any(iso).as_py():
        day = pc.utf8_slice_codeunits(pc.filter(text, iso), 0, 10)
        parsed = _cast_strict(day, pa.date32(), lambda piece: _pandas(piece, "%Y-%m-%d"))
        result = pc.replace_with_mask(result, iso, pc.cast(parsed, pa.timestamp("us")))

    slash = _arrow.mask(pc.match_substring(text, "/"))
    if pc.any(slash).as_py():
        day = pc.replace_substring_regex(pc.filter(text, slash), r" .*$", "")
        result = pc.replace_with_mask(result, slash, _parse_slashed(day, dayfirst_formats, with_time=False))

    dates = pd.Series(result.to_pandas().array, index=values.index).astype(DATE_DTYPE)
    parsed = pc.or_(pc.is_null(text), pc.is_valid(result))
    return dates, _arrow.bool_series(parsed, values.index, missing=True)


def flag_out_of_range(ts: pd.Series, as_of: date | pd.Series) -> pd.Series:
    """`future_timestamp` after the end of the `as_of` day, `before_1990` before 1990; else missing.

    Both are signs of a wrong clock or a placeholder (1900-01-01, 2099-12-31). `as_of`
    is the run's date, never the wall clock, so re-runs flag the same rows; a Series
    gives each row its own day (rows of several files). Naive timestamps are taken as UTC.
    """
    instants = ts if isinstance(ts.dtype, pd.DatetimeTZDtype) else pd.to_datetime(ts).dt.tz_localize("UTC")
    if isinstance(as_of, pd.Series):
        days = pd.to_datetime(as_of.set_axis(ts.index)).dt.tz_localize(None).dt.normalize()
        end_of_day = days.dt.tz_localize("UTC") + pd.Timedelta(days=1)
    else:
        end_of_day = pd.Timestamp(as_of).normalize().tz_localize(None).tz_localize("UTC") + pd.Timedelta(days=1)
    reason = pd.Series(np.nan, index=ts.index, dtype=_arrow.TEXT)
    reason[(instants < EARLIEST_PLAUSIBLE).to_numpy(dtype=bool, na_value=False)] = "before_1990"
    reason[(instants >= end_of_day).to_numpy(dtype=bool, na_value=False)] = "future_timestamp"
    return reason


def _iso_like(text: pa.Array) -> pa.Array:
    """Rows that start like `YYYY-MM-DD` (a cheap character test, no regex)."""
    dash = pc.and_(pc.equal(pc.utf8_slice_codeunits(text, 4, 5), "-"),
                   pc.equal(pc.utf8_slice_codeunits(text, 7, 8), "-"))
    return _arrow.mask(pc.and_(dash, pc.ascii_is_decimal(pc.utf8_slice_codeunits(text, 0, 4))))


def _parse_iso(text: pa.Array) -> pa.Array:
    """ISO 8601 strings to UTC: Arrow's cast for the shapes it reads, pandas for the rest."""
    result = pa.nulls(len(text), UTC_US)
    shaped = _arrow.mask(_arrow.fullmatch(text, _ISO_ARROW))
    tail = pc.utf8_slice_codeunits(text, 10)  # after the date: the time and the zone
    zoned = pc.or_(pc.ends_with(tail, "Z"), pc.or_(pc.match_substring(tail, "+"), pc.match_substring(tail, "-")))
    for has_zone in (True, False):
        rows = _arrow.mask(pc.and_(shaped, zoned if has_zone else pc.invert(zoned)))
        if not pc.any(rows).as_py():
            continue
        target = UTC_US if has_zone else pa.timestamp("us")
        parsed = _cast_strict(pc.filter(text, rows), target, lambda piece: _pandas(piece, "ISO8601"))
        result = pc.replace_with_mask(result, rows, parsed if has_zone else pc.assume_timezone(parsed, "UTC"))
    odd = pc.invert(shaped)
    if pc.any(odd).as_py():
        result = pc.replace_with_mask(result, odd, _pandas(pc.filter(text, odd), "ISO8601"))
    return result


def _cast_strict(text: pa.Array, to_type: pa.DataType, fallback: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Arrow's cast, which fails whole on one bad value (`2023-13-45`).

    On failure the rows whose date and time fields are out of range go to `fallback`
    (it reads them as null) and the rest are cast again; should that still fail, halve
    until the bad pieces are small and fall back on those. One impossible date in
    thousands then costs one cheap field check, not a pandas parse of its neighbours.
    """
    try:
        return pc.cast(text, to_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    plausible = _iso_fields_in_range(text)
    if not pc.all(plausible).as_py():
        implausible = pc.invert(plausible)
        result = pa.nulls(len(text), to_type)
        result = pc.replace_with_mask(result, implausible, pc.cast(fallback(pc.filter(text, implausible)), to_type))
        if pc.any(plausible).as_py():
            result = pc.replace_with_mask(result, plausible, _halving(pc.filter(text, plausible), to_type, fallback))
        return result
    return _halving(text, to_type, fallback)


def _halving(text: pa.Array, to_type: pa.DataType, fallback: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Arrow's cast on halves until the pieces that still fail are small, then `fallback` on those."""
    try:
        return pc.cast(text, to_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(text) <= _SMALLEST_PIECE:
            return pc.cast(fallback(text), to_type)
        half = len(text) // 2
        return pa.concat_arrays([_halving(text.slice(0, half), to_type, fallback),
                                 _halving(text.slice(half), to_type, fallback)])


def _iso_fields_in_range(text: pa.Array) -> pa.Array:
    """Rows of `YYYY-MM-DD[(T| )HH[:MM[:SS...]]...]` text whose date exists and whose hour,
    minute and second are in range (digits assumed where `_ISO_ARROW` puts them).

    The date is checked once per distinct day (a few thousand in a million rows), the
    time fields by comparing their two-character text (`"24" > "23"`).
    """
    days = pc.dictionary_encode(pc.utf8_slice_codeunits(text, 0, 10))
    real = pa.array([_is_real_date(d) for d in days.dictionary.to_pylist()], pa.bool_())
    ok = pc.take(real, days.indices)
    for start, highest in ((11, "23"), (14, "59"), (17, "59")):
        ok = pc.and_(ok, pc.less_equal(pc.utf8_slice_codeunits(text, start, start + 2), highest))
    return _arrow.mask(ok)


_ISO_DAY = re.compile(r"\d{4}-\d\d-\d\d")


def _is_real_date(text: str) -> bool:
    """`2024-02-29` yes, `2023-02-29` and `2023-13-45` no."""
    if not _ISO_DAY.fullmatch(text):
        return False
    try:
        dt.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _pandas(text: pa.Array, fmt: str) -> pa.Array:
    """pandas' strict parser on a few rows, to UTC (`errors="coerce"`: what it cannot read is null)."""
    series = _arrow.text_series(text, pd.RangeIndex(len(text)))
    parsed = pd.to_datetime(series, format=fmt, utc=True, errors="coerce").astype(TIMESTAMP_DTYPE)
    return pa.array(parsed, type=UTC_US)


def _parse_slashed(text: pa.Array, dayfirst: bool, *, with_time: bool) -> pa.Array:
    """Naive timestamps from `MM/DD/YYYY[ time]` (or day first); the first format that fits wins.

    Arrow's strptime rolls impossible dates over (`02/30` -> `03/02`) and reads `23` as
    the year 23: both are rejected here.
    """
    day = "%d/%m/%Y" if dayfirst else "%m/%d/%Y"
    times = _SLASH_TIMES if with_time else ("",)
    parsed = pc.coalesce(*(pc.strptime(text, format=day + t, unit="us", error_is_null=True) for t in times))
    written_month = pc.list_element(pc.split_pattern(text, "/", max_splits=2), 1 if dayfirst else 0)
    written_month = pc.cast(pc.if_else(pc.is_valid(parsed), written_month, _arrow.string(None)), pa.int64())
    keep = pc.and_(pc.equal(pc.month(parsed), written_month), pc.greater_equal(pc.year(parsed), 1000))
    return pc.if_else(_arrow.mask(keep), parsed, pa.scalar(None, parsed.type))
