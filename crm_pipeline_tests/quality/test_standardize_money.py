"""Money: amounts in their common spellings become numbers; currencies become ISO 4217 codes."""

import math

import pandas as pd

from crm_pipeline.quality.standardize import flag_negative, parse_decimal, standardize_currency


def test_amount_spellings_parse():
    amount, parsed = parse_decimal(pd.Series(["1234.50", "1,234.50", "$12.00", "12.00 USD", "-3.5", "-$3.50", "(3.50)", "€9.99", ".5"]))
    assert amount.tolist() == [1234.5, 1234.5, 12.0, 12.0, -3.5, -3.5, -3.5, 9.99, 0.5]
    assert parsed.all() and amount.dtype == "float64"


def test_unparseable_and_ambiguous_amounts_are_flagged_not_guessed():
    amount, parsed = parse_decimal(pd.Series(["abc", "1.234,50", "1,23.4", "12-3", "nan"]))
    assert amount.isna().all()
    assert not parsed.any()


def test_missing_amount_stays_missing():
    amount, parsed = parse_decimal(pd.Series([None, ""], dtype=object))
    assert all(math.isnan(a) for a in amount) and parsed.all()


def test_currency_codes_symbols_and_names():
    code, known = standardize_currency(pd.Series(["usd", "US$", "$", "€", "£", " eur ", "Euro", "jpy"]))
    assert code.tolist() == ["USD", "USD", "USD", "EUR", "GBP", "EUR", "EUR", "JPY"]
    assert known.all()


def test_unknown_currency_is_kept_raw_and_flagged_and_missing_is_not():
    code, known = standardize_currency(pd.Series(["doubloons", None], dtype=object))
    assert code.iloc[0] == "doubloons" and pd.isna(code.iloc[1])
    assert known.tolist() == [False, True]


def test_negative_prices_are_flagged():
    amount, _ = parse_decimal(pd.Series(["12.00", "-3.50", None, "0"], dtype=object))
    assert flag_negative(amount).tolist() == [False, True, False, False]
