"""Timestamps: every accepted format and offset lands on the right UTC instant; nonsense is flagged."""

from datetime import date

import pandas as pd
import pytest

from crm_pipeline.quality.standardize import flag_out_of_range, parse_dates, parse_timestamps

TEN_UTC = pd.Timestamp("2023-01-05 10:00:00", tz="UTC")


@pytest.mark.parametrize("raw", [
    "2023-01-05T10:00:00Z",
    "2023-01-05T11:00:00+01:00",
    "2023-01-05T05:00:00-05:00",
    "2023-01-05T11:00:00+0100",
    "2023-01-05T10:00:00",
    "2023-01-05 10:00:00",
    "2023-01-05 10:00",
    " 2023-01-05T10:00Z ",
    "01/05/2023 10:00:00",
    "1/5/2023 10:00",
    "01/05/2023 10:00 AM",
    "1672912800",
    "1672912800000",
])
def test_each_accepted_format_gives_the_utc_instant(raw):
    utc, parsed = parse_timestamps(pd.Series([raw]))
    assert utc.iloc[0] == TEN_UTC
    assert parsed.iloc[0]


def test_dates_without_time_are_midnight_utc_and_fractions_are_kept():
    utc, parsed = parse_timestamps(pd.Series(["2023-01-05", "01/05/2023", "2023-01-05T10:00:00.25Z", "01/05/2023 3:45 PM"]))
    assert utc.tolist() == [pd.Timestamp("2023-01-05", tz="UTC")] * 2 + [
        TEN_UTC + pd.Timedelta(milliseconds=250), pd.Timestamp("2023-01-05 15:45", tz="UTC")]
    assert parsed.all()


def test_output_dtype_is_utc_and_index_is_kept():
    utc, parsed = parse_timestamps(pd.Series(["2023-01-05"], index=[42]))
    assert str(utc.dtype) == "datetime64[us, UTC]" and parsed.dtype == bool
    assert utc.index.tolist() == [42]


def test_dayfirst_formats():
    utc, parsed = parse_timestamps(pd.Series(["05/01/2023 10:00", "31/12/2023"]), dayfirst_formats=True)
    assert utc.tolist() == [TEN_UTC, pd.Timestamp("2023-12-31", tz="UTC")]
    assert parsed.all()


def test_unparseable_values_are_nat_and_flagged():
    raw = pd.Series(["31/31/2023", "not a date", "not/a/date", "02/30/2023", "2023-02-30", "2023-13-01", "1/5/23",
                     "05.01.2023", "2023-01-05T10:00:00+01:00 junk"])
    utc, parsed = parse_timestamps(raw)
    assert utc.isna().all()
    assert not parsed.any()


def test_missing_is_nat_but_not_flagged():
    utc, parsed = parse_timestamps(pd.Series([None, "", "  "], dtype=object))
    assert utc.isna().all()
    assert parsed.all()


def test_out_of_range_flags_are_relative_to_as_of():
    utc, _ = parse_timestamps(pd.Series([
        "2024-06-30T23:59:59Z", "2024-07-01T00:00:00Z", "2024-06-30T23:30:00-05:00", "1989-12-31T23:59:59Z",
        "1990-01-01T00:00:00Z", None,
    ], dtype=object))
    flags = flag_out_of_range(utc, date(2024, 6, 30))
    assert flags[[1, 2]].tolist() == ["future_timestamp", "future_timestamp"]
    assert flags[3] == "before_1990"
    assert flags[[0, 4, 5]].isna().all()  # the last second of as_of, 1990 itself, and missing


def test_parse_dates_keeps_the_calendar_date():
    dates, parsed = parse_dates(pd.Series(["1985-03-02", "03/02/1985", "1985-03-02 00:00:00", "1985-02-30", "x", None]))
    assert dates.iloc[:3].tolist() == [pd.Timestamp("1985-03-02")] * 3
    assert dates.iloc[3:].isna().all()
    assert parsed.tolist() == [True, True, True, False, False, True]
    assert dates.dt.date.iloc[0] == date(1985, 3, 2)


def test_a_few_impossible_dates_among_many_leave_their_neighbours_parsed():
    """Arrow's cast fails whole on one bad value; the bad rows alone must end up unparsed."""
    good = pd.Series(pd.date_range("2023-01-01", periods=6000, freq="37min", tz="UTC"))
    text = good.dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype(object)
    bad = {17: "2023-02-29T10:00:00Z", 2500: "2023-13-45T25:61:00Z", 4100: "2023-01-05T24:00:00Z"}
    for at, value in bad.items():
        text[at] = value
    text[5000] = "2023-01-05 10"  # an ISO shape only pandas reads, in a piece Arrow rejects
    utc, parsed = parse_timestamps(text)
    assert sorted(parsed.index[~parsed]) == sorted(bad)
    expected = good.where(~good.index.isin(list(bad)))
    expected[5000] = TEN_UTC
    pd.testing.assert_series_equal(utc, expected.astype(utc.dtype), check_names=False)


def test_each_row_can_be_judged_against_its_own_day():
    instants = pd.Series(pd.to_datetime(["2025-01-20T12:00:00Z", "2025-01-20T12:00:00Z"], utc=True))
    written = pd.Series(pd.to_datetime(["2025-01-10", "2025-02-01"]))
    assert flag_out_of_range(instants, written).tolist()[0] == "future_timestamp"
    assert pd.isna(flag_out_of_range(instants, written).iloc[1])
