"""Emails: one spelling per address, a syntax check, and a match key that links one inbox's aliases."""

import pandas as pd

from crm_pipeline.quality.standardize import standardize_email


def test_case_and_whitespace_variants_give_one_email_and_one_key():
    email, valid, key = standardize_email(pd.Series([" Jane.Doe@Example.COM ", "jane.doe@example.com", "JANE.DOE@EXAMPLE.COM\t"]))
    assert email.tolist() == ["jane.doe@example.com"] * 3
    assert valid.all()
    assert key.tolist() == ["jane.doe@example.com"] * 3


def test_full_width_characters_are_normalized():
    email, valid, _ = standardize_email(pd.Series(["ｊａｎｅ@example.com"]))
    assert email.tolist() == ["jane@example.com"] and valid.all()


def test_gmail_dots_and_plus_tags_share_a_match_key():
    email, valid, key = standardize_email(
        pd.Series(["jane.doe+shop@gmail.com", "JaneDoe@gmail.com", "j.a.n.e.d.o.e@googlemail.com", "jane.doe@gmail.com"])
    )
    assert valid.all()
    assert key.nunique() == 1 and key.iloc[0] == "janedoe@gmail.com"
    assert email.iloc[0] == "jane.doe+shop@gmail.com"  # the address itself is kept as typed, only normalized


def test_dots_matter_outside_gmail_but_plus_tags_do_not():
    _, _, key = standardize_email(pd.Series(["jane.doe+news@example.com", "janedoe@example.com"]))
    assert key.tolist() == ["jane.doe@example.com", "janedoe@example.com"]


def test_malformed_emails_are_invalid_and_get_no_key():
    bad = ["jane.doe@@example.com", "jane.doe.example.com", "jane..doe@example.com", "jane@example", "jane@example.c",
           ".jane@example.com", "jane doe@example.com", "jane@-example.com"]
    email, valid, key = standardize_email(pd.Series(bad))
    assert not valid.any()
    assert key.isna().all()
    assert email.notna().all()  # kept for review, lowercased


def test_international_addresses_are_valid():
    email, valid, _ = standardize_email(pd.Series(["Élodie@Müller.de"]))
    assert email.tolist() == ["élodie@müller.de"] and valid.all()


def test_missing_stays_missing():
    email, valid, key = standardize_email(pd.Series([None, "", "  "], dtype=object))
    assert email.isna().all() and key.isna().all()
    assert valid.all()
