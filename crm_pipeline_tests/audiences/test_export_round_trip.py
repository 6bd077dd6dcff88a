"""Every export format re-read equals the audience table it came from; only formula cells are escaped."""

from __future__ import annotations

import hashlib

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from crm_pipeline.audiences.export import EXPORT_COLUMNS, export_audience
from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline_tests.audiences.profiles import AS_OF, Profiles, day

FORMULA = '=HYPERLINK("http://evil.example/?x=1","click")'
PEOPLE = {  # contact -> golden record as the profile stage leaves it (E.164 phones)
    "C1": {"email": "ann@example.com", "phone": "+17862509256", "first_name": FORMULA, "last_name": "Lee"},
    "C2": {"email": "zoe@example.co.uk", "phone": "+442071838750", "first_name": "Zoë", "last_name": "O'Brien, Jr."},
    "C3": {"email": "neg@example.com", "phone": None, "first_name": "-12.5", "last_name": "@home"},
    "C4": {"email": None, "phone": "+14155550123", "first_name": "Ann\nMarie", "last_name": "-"},
    "C5": {"email": "tab@example.com", "phone": "+61 2 9374 4000", "first_name": "\tTab", "last_name": "+1e3"},
}
ESCAPED = {("C1", "first_name"), ("C3", "last_name"), ("C4", "last_name"), ("C5", "phone"), ("C5", "first_name")}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    p = Profiles(tmp_path_factory.mktemp("export"))
    for i, (cid, golden) in enumerate(PEOPLE.items()):
        p.brand(cid, "brand_a", order_count=1, last_order_date=day(i + 1))
        p.contact(cid, **golden)
    p.save()
    materialize_audiences(p.engine, as_of=AS_OF)
    yield p.engine
    p.engine.dispose()


def source_table(engine, audience: str) -> pd.DataFrame:
    """The audience's rows of the day, with their golden fields checked against profile_360."""
    with engine.connect() as conn:
        table = pd.read_sql(sa.text(
            "SELECT m.contact_id, m.email, m.phone, m.first_name, m.last_name, m.brand_scope, "
            "p.email AS p_email, p.phone AS p_phone, p.first_name AS p_first_name, p.last_name AS p_last_name "
            "FROM audience_members m JOIN profile_360 p ON p.contact_id = m.contact_id "
            "WHERE m.as_of = :d AND m.audience = :a ORDER BY m.contact_id"), conn, params={"d": AS_OF, "a": audience})
    table = table.astype(object).where(table.notna(), None)
    for c in ("email", "phone", "first_name", "last_name"):
        assert table[c].tolist() == table[f"p_{c}"].tolist(), c
    assert table["contact_id"].tolist() == sorted(PEOPLE)
    return table[EXPORT_COLUMNS]


def sha(value: str | None) -> str:
    return "" if value is None else hashlib.sha256(value.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("audience", ["customers_recent", "brand_a:customers_recent"])
def test_csv_round_trip_equals_the_table_but_for_formula_cells(warehouse, tmp_path, audience):
    table = source_table(warehouse, audience)
    target = tmp_path / "out.csv"
    with warehouse.connect() as conn:
        assert export_audience(conn, audience, AS_OF, "csv", target) == len(PEOPLE)
    got = pd.read_csv(target, dtype=str, keep_default_na=False)
    expected = table.fillna("").set_index("contact_id", drop=False)
    for cid, column in ESCAPED:
        expected.loc[cid, column] = "'" + expected.loc[cid, column]
    assert list(got.columns) == EXPORT_COLUMNS
    for column in EXPORT_COLUMNS:
        assert got[column].tolist() == expected[column].tolist(), column


def test_csv_keeps_phones_and_numbers_and_escapes_formulas(warehouse, tmp_path):
    target = tmp_path / "out.csv"
    with warehouse.connect() as conn:
        export_audience(conn, "customers_recent", AS_OF, "csv", target)
    got = pd.read_csv(target, dtype=str, keep_default_na=False).set_index("contact_id")
    assert got.loc["C1", "phone"] == "+17862509256" and got.loc["C2", "phone"] == "+442071838750"
    assert got.loc["C3", "first_name"] == "-12.5" and got.loc["C5", "last_name"] == "+1e3"
    assert got.loc["C1", "first_name"] == "'" + FORMULA
    assert got.loc["C3", "last_name"] == "'@home" and got.loc["C5", "first_name"] == "'\tTab"
    assert got.loc["C5", "phone"] == "'+61 2 9374 4000"  # not one number: a spreadsheet could read a sum


@pytest.mark.parametrize("audience", ["customers_recent", "brand_a:customers_recent"])
def test_parquet_round_trip_equals_the_table(warehouse, tmp_path, audience):
    table = source_table(warehouse, audience)
    target = tmp_path / "out.parquet"
    with warehouse.connect() as conn:
        export_audience(conn, audience, AS_OF, "parquet", target)
    got = pq.read_table(target).to_pandas()
    got = got.astype(object).where(got.notna(), None)
    assert list(got.columns) == EXPORT_COLUMNS
    for column in EXPORT_COLUMNS:
        assert got[column].tolist() == table[column].tolist(), column


def test_hashed_round_trip_equals_the_tables_hashed_identifiers(warehouse, tmp_path):
    table = source_table(warehouse, "customers_recent")
    target = tmp_path / "out.csv"
    with warehouse.connect() as conn:
        export_audience(conn, "customers_recent", AS_OF, "hashed", target)
    got = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert list(got.columns) == ["email_sha256", "phone_sha256"]
    assert got["email_sha256"].tolist() == [sha(e) for e in table["email"]]
    # phones hash in E.164: C5's spaced number standardizes to +61293744000
    phones = table["phone"].replace({"+61 2 9374 4000": "+61293744000"})
    assert got["phone_sha256"].tolist() == [sha(p) for p in phones]
