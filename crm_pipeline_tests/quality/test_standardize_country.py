"""Country spellings become one ISO code; what is not a country is kept and flagged, never guessed."""

import pandas as pd

from crm_pipeline.quality.standardize import standardize_country


def test_us_spellings_become_us():
    iso2, known = standardize_country(pd.Series(["US", "USA", "United States", "United States of America", "u.s."]))
    assert iso2.tolist() == ["US"] * 5
    assert known.all()


def test_uk_spellings_become_gb():
    iso2, _ = standardize_country(pd.Series(["UK", "Great Britain", " u.k. ", "England", "GBR", "United Kingdom"]))
    assert iso2.tolist() == ["GB"] * 6


def test_case_whitespace_accents_and_native_names():
    iso2, known = standardize_country(pd.Series(["  germany ", "DEUTSCHLAND", "Holland", "Россия", "cote d'ivoire", "fra"]))
    assert iso2.tolist() == ["DE", "DE", "NL", "RU", "CI", "FR"]
    assert known.all()


def test_unknown_value_is_kept_raw_and_flagged():
    iso2, known = standardize_country(pd.Series(["US", " Atlantis "]))
    assert iso2.tolist() == ["US", " Atlantis "]
    assert known.tolist() == [True, False]


def test_missing_blank_and_placeholders_stay_missing_and_unflagged():
    iso2, known = standardize_country(pd.Series(["DE", None, float("nan"), "", "   ", "N/A", "unknown"], dtype=object))
    assert iso2.iloc[0] == "DE"
    assert iso2.iloc[1:].isna().all()
    assert known.all()


def test_aligned_to_input_index():
    values = pd.Series(["usa", "Atlantis"], index=[40, 7])
    iso2, known = standardize_country(values)
    assert iso2.index.tolist() == [40, 7] and known.index.tolist() == [40, 7]
    assert iso2[40] == "US" and not known[7]
