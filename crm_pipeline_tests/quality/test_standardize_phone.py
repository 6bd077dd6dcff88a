"""Phones: every spelling of a number becomes its one E.164 form; junk is invalid, not guessed."""

import pandas as pd
import phonenumbers

from crm_pipeline.quality.standardize import standardize_phone


def test_three_us_formats_give_one_e164():
    e164, valid = standardize_phone(pd.Series(["(415) 555-2671", "+1 415 555 2671", "4155552671"]), "US")
    assert e164.tolist() == ["+14155552671"] * 3
    assert valid.all()


def test_more_us_spellings_and_missing_region_default_to_us():
    values = pd.Series(["1-415-555-2671", "415.555.2671", "415-555-2671 ext. 12", "415/555/2671"])
    e164, valid = standardize_phone(values, pd.Series([None, "us", "CA", ""], dtype=object))
    assert e164.tolist() == ["+14155552671"] * 4
    assert valid.all()


def test_exchange_starting_with_0_or_1_is_not_a_nanp_number():
    # NXX-NXX-XXXX: the brief's `(415) 123-4567` is such a number, so all three formats are invalid together.
    e164, valid = standardize_phone(pd.Series(["(415) 123-4567", "+1 415 123 4567", "4151234567"]), "US")
    assert e164.isna().all() and not valid.any()


def test_junk_numbers_are_invalid():
    junk = ["0000000000", "1111111111", "2222222222", "555-1234", "n/a", "(015) 555-2671", "911-555-2671", "12345678901234"]
    e164, valid = standardize_phone(pd.Series(junk), "US")
    assert e164.isna().all()
    assert not valid.any()


def test_gb_and_de_numbers_read_with_their_region():
    values = pd.Series(["020 7946 0958", "+44 20 7946 0958", "0044 20 7946 0958", "030 901820", "+49 30 901820"])
    regions = pd.Series(["GB", "US", "GB", "DE", "DE"])
    e164, valid = standardize_phone(values, regions)
    assert e164.tolist() == ["+442079460958"] * 3 + ["+4930901820"] * 2
    assert valid.all()


def test_other_regions_agree_with_phonenumbers():
    samples, regions = [], []
    for region in ["FR", "IT", "ES", "NL", "AU", "JP", "BR", "MX", "IN", "PR"]:
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        samples.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL))
        regions.append(region)
    expected = [phonenumbers.format_number(phonenumbers.parse(s, r), phonenumbers.PhoneNumberFormat.E164)
                for s, r in zip(samples, regions)]
    e164, valid = standardize_phone(pd.Series(samples), pd.Series(regions))
    assert e164.tolist() == expected and valid.all()


def test_an_unknown_region_reads_like_a_missing_one():
    # An unstandardizable country (kept raw by standardize_country) says nothing about the number.
    values = pd.Series(["(415) 555-2671", "+44 20 7946 0958", "020 7946 0958"])
    e164, valid = standardize_phone(values, pd.Series(["Atlantis", "Atlantis", "Atlantis"]))
    assert e164.tolist()[:2] == ["+14155552671", "+442079460958"]
    assert valid.tolist() == [True, True, False]


def test_missing_stays_missing_and_index_is_kept():
    e164, valid = standardize_phone(pd.Series([None, "", "4155552671"], index=[9, 8, 7], dtype=object), "US")
    assert e164.index.tolist() == [9, 8, 7]
    assert e164.isna().tolist() == [True, True, False]
    assert valid.all()


def test_phonenumbers_runs_once_per_distinct_leftover_number(monkeypatch):
    # NANP and pattern-matched numbers never reach the library; a junk value repeated on a
    # million rows costs one library call, which keeps the standardizer vectorized.
    from crm_pipeline.quality.standardize import phone

    calls = []
    real = phone._parse_pair
    monkeypatch.setattr(phone, "_parse_pair", lambda pair: calls.append(pair) or real(pair))
    values = pd.Series(["(415) 555-2671", "020 7946 0958", "0 2079 46", "0 2079 46"] * 500)
    e164, valid = standardize_phone(values, pd.Series(["US", "GB", "GB", "GB"] * 500))
    assert calls == ["0 2079 46\x1fGB"]
    assert valid.tolist()[:4] == [True, True, False, False]
