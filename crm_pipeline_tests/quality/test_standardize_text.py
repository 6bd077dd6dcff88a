"""Free-text hygiene: a raw value that looks wrong says why, so a reviewer can act on it."""

import pandas as pd

from crm_pipeline.quality.standardize import clean_text, flag_suspicious_text


def test_suspicious_values_are_flagged_with_a_reason():
    raw = pd.Series(["=SUM(A1)", "@cmd", "J\x00o\x00h\x00n", "x" * 10_000, "😀", "123"])
    assert flag_suspicious_text(raw).tolist() == [
        "formula_like", "formula_like", "control_characters", "too_long", "no_letters", "no_letters",
    ]


def test_ordinary_and_missing_values_are_not_flagged():
    raw = pd.Series(["Jane", "Zoë O'Neil", "Anne-Marie", "123 Main St", None, ""], dtype=object)
    assert flag_suspicious_text(raw).isna().all()


def test_clean_text_collapses_whitespace_and_drops_invisible_characters():
    cleaned = clean_text(pd.Series([" a \t b\n", "x\u200by", "ﬁne", "\x00", None], dtype=object))
    assert cleaned.tolist()[:3] == ["a b", "xy", "fine"]
    assert cleaned.iloc[3:].isna().all()
