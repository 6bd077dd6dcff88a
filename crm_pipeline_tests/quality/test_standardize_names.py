"""Names, address lines, cities and postal codes: one spelling each; odd content never crashes."""

import pandas as pd

from crm_pipeline.quality.standardize import (
    standardize_address_line,
    standardize_city,
    standardize_name,
    standardize_postal_code,
)


def test_names_are_trimmed_collapsed_and_title_cased():
    names = standardize_name(pd.Series(["  jane   o'neil ", "SMITH-JONES", "McDonald", "ｊｏｈｎ\u00a0ｓｍｉｔｈ", "josé\tgarcía"]))
    assert names.tolist() == ["Jane O'Neil", "Smith-Jones", "Mcdonald", "John Smith", "José García"]


def test_hostile_names_do_not_crash():
    hostile = pd.Series(["Zoë 😀", "x" * 10_000, "J\x00o\x00h\x00n\x00", "\x00", "=SUM(A1)", "Robert'); DROP TABLE--"])
    names = standardize_name(hostile)
    assert names.tolist()[0] == "Zoë 😀"
    assert len(names.iloc[1]) == 10_000
    assert names.iloc[2] == "John"  # NUL bytes (UTF-16 read as UTF-8) dropped
    assert pd.isna(names.iloc[3])  # nothing left
    assert names.iloc[4] == "=Sum(A1)"  # returned standardized; flag_suspicious_text flags it


def test_missing_names_stay_missing():
    assert standardize_name(pd.Series([None, "", "  "], dtype=object)).isna().all()


def test_city_is_title_cased():
    assert standardize_city(pd.Series(["NEW  YORK", "st. louis"])).tolist() == ["New York", "St. Louis"]


def test_address_words_are_abbreviated():
    lines = standardize_address_line(pd.Series([
        "123 main street, apartment 4b", "123 Main St., Apt. 4B", "5TH AVENUE", "10 ne 3rd road suite 200",
        "p.o. box 12", "221b Baker Street", None,
    ]))
    assert lines.tolist()[:6] == ["123 Main St, Apt 4B", "123 Main St, Apt 4B", "5th Ave", "10 NE 3rd Rd Ste 200",
                                  "PO Box 12", "221B Baker St"]
    assert pd.isna(lines.iloc[6])


def test_us_postal_codes():
    codes, valid = standardize_postal_code(pd.Series(["2134", "02134", "02134-1234", "021341234", "12345 6789", "1234567", "abc"]), "US")
    assert codes.tolist() == ["02134", "02134", "02134-1234", "02134-1234", "12345-6789", "1234567", "ABC"]
    assert valid.tolist() == [True, True, True, True, True, False, False]


def test_postal_codes_follow_their_country():
    values = pd.Series(["k1a0b1", "K1A-0B1", "sw1a1aa", "ec1a  1bb", "1067", "75001", "1234 ab", "W1A 0AX", None])
    countries = pd.Series(["CA", "CA", "GB", "GB", "DE", "FR", "NL", "CA", "GB"])
    codes, valid = standardize_postal_code(values, countries)
    assert codes.tolist()[:8] == ["K1A 0B1", "K1A 0B1", "SW1A 1AA", "EC1A 1BB", "01067", "75001", "1234 AB", "W1A 0AX"]
    assert valid.tolist() == [True, True, True, True, True, True, True, False, True]
    assert pd.isna(codes.iloc[8])
