"""`erase` removes a person from every table and export file, prints what it removed, and touches nobody else."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from crm_pipeline.audiences.export import export_audience
from crm_pipeline.erasure.erase import erase
from crm_pipeline.erasure.plan import ErasureRefused
from crm_pipeline.erasure.report import render_erasure

from crm_pipeline_tests.erasure.helpers import people, table_counts, text_hits

REQUESTED_AT = dt.datetime(2025, 7, 1, 9, 30, tzinfo=dt.timezone.utc)
ERASURE_TABLES = {"erasure_requests", "erasure_suppressions", "erasure_row_counts"}


def removed_by_table(frame: pd.DataFrame) -> dict[str, int]:
    return dict(zip(frame["table"], frame["rows_removed"].astype(int)))


def assert_counts_drop_by_exactly_what_was_reported(before: dict, after: dict, frame: pd.DataFrame) -> None:
    reported = removed_by_table(frame)
    dropped = {t: before[t] - after[t] for t in before if t not in ERASURE_TABLES and before[t] != after[t]}
    real_tables = {t: n for t, n in reported.items() if ":" not in t}
    assert dropped == real_tables


def assert_nothing_left(engine, person: pd.Series) -> None:
    digits = re.sub(r"\D", "", person["phone"])[-10:]
    assert text_hits(engine, text=person["email"], digits=digits) == {}
    assert text_hits(engine, text=person["contact_id"]) == {}


def test_erase_by_email_removes_the_person_everywhere_and_reports_each_table(warehouse):
    person = people(warehouse.engine).iloc[0]
    assert person["records"] > 5 and person["memberships"] > 0  # a real customer with history and audiences
    found = text_hits(warehouse.engine, text=person["email"])
    assert {"raw_customers.email", "typed_customers.email", "audience_members.email", "profile_360.email"} <= set(found)
    before = table_counts(warehouse.engine)
    with warehouse.engine.connect() as conn:
        others = pd.read_sql(sa.text("SELECT * FROM profile_360 WHERE contact_id <> :c ORDER BY contact_id"),
                             conn, params={"c": person["contact_id"]})

    frame = erase(warehouse.engine, email=f"  {person['email'].upper()} ", requested_at=REQUESTED_AT)

    after = table_counts(warehouse.engine)
    assert_counts_drop_by_exactly_what_was_reported(before, after, frame)
    removed = removed_by_table(frame)
    for table in ("raw_customers", "stg_customers", "row_outcomes", "identity_map", "contacts",
                  "identity_nodes", "golden_records", "profile_360", "timeline", "features", "predictions",
                  "audience_members", "audience_history"):
        assert removed.get(table, 0) > 0, table
    assert_nothing_left(warehouse.engine, person)
    with warehouse.engine.connect() as conn:
        still = pd.read_sql(sa.text("SELECT * FROM profile_360 ORDER BY contact_id"), conn)
    pd.testing.assert_frame_equal(still, others)  # everyone else's profile is exactly as it was

    printed = render_erasure(frame, "email")
    lines = dict(re.findall(r"^  (\S+)\s+(\d+)$", printed, flags=re.M))
    assert {t: int(n) for t, n in lines.items() if t != "total"} == removed
    assert int(lines["total"]) == sum(removed.values())


def test_erase_by_phone_in_any_spelling_finds_the_same_person(warehouse):
    candidates = people(warehouse.engine)
    person = candidates[candidates["raw_phone"].str.contains(r"[ ()-]", regex=True)
                        & candidates["phone"].str.startswith("+1")].iloc[0]
    spelled = "(" + person["phone"][2:5] + ") " + person["phone"][5:8] + "-" + person["phone"][8:]
    before = table_counts(warehouse.engine)

    frame = erase(warehouse.engine, phone=spelled, requested_at=REQUESTED_AT)

    assert removed_by_table(frame)["contacts"] == 1
    assert_counts_drop_by_exactly_what_was_reported(before, table_counts(warehouse.engine), frame)
    assert_nothing_left(warehouse.engine, person)


def test_erase_by_contact_id_removes_the_contact_and_all_its_records(warehouse):
    person = people(warehouse.engine).iloc[1]
    before = table_counts(warehouse.engine)

    frame = erase(warehouse.engine, contact_id=person["contact_id"], requested_at=REQUESTED_AT)

    removed = removed_by_table(frame)
    assert removed["identity_map"] == person["records"]
    assert removed["contacts"] == 1
    assert_counts_drop_by_exactly_what_was_reported(before, table_counts(warehouse.engine), frame)
    assert_nothing_left(warehouse.engine, person)


def test_audience_sizes_and_file_counts_stay_consistent_after_an_erasure(warehouse):
    person = people(warehouse.engine).iloc[0]
    erase(warehouse.engine, email=person["email"], requested_at=REQUESTED_AT)
    with warehouse.engine.connect() as conn:
        sizes = conn.execute(sa.text(
            "SELECT COUNT(*) FROM audience_sizes s WHERE s.size <> (SELECT COUNT(*) FROM audience_members m "
            "WHERE m.as_of = s.as_of AND m.audience = s.audience)")).scalar_one()
        unbalanced = conn.execute(sa.text(
            "SELECT COUNT(*) FROM files f WHERE f.status = 'loaded' AND f.rows_read <> f.rows_loaded + "
            "COALESCE((SELECT SUM(row_count) FROM erasure_row_counts e WHERE e.file_id = f.file_id), 0)")).scalar_one()
        erased = conn.execute(sa.text("SELECT SUM(row_count) FROM erasure_row_counts WHERE cause = 'erased'")).scalar()
    assert sizes == 0
    assert unbalanced == 0 and erased > 0


def test_the_suppression_list_and_request_hold_only_hashes(warehouse):
    person = people(warehouse.engine).iloc[0]
    frame = erase(warehouse.engine, email=person["email"].upper(), requested_at=REQUESTED_AT)
    with warehouse.engine.connect() as conn:
        suppressions = pd.read_sql(sa.text("SELECT * FROM erasure_suppressions"), conn)
        request = pd.read_sql(sa.text("SELECT * FROM erasure_requests"), conn).iloc[0]
    assert set(suppressions["kind"]) >= {"email", "phone", "customer", "order"}
    assert suppressions["value_sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert hashlib.sha256(person["email"].encode()).hexdigest() in set(suppressions["value_sha256"])
    assert hashlib.sha256(person["phone"].encode()).hexdigest() in set(suppressions["value_sha256"])
    assert request["identifier_sha256"] == hashlib.sha256(person["email"].encode()).hexdigest()
    assert request["requested_at"] == pd.Timestamp(REQUESTED_AT)
    assert json.loads(request["removed_counts"]) == removed_by_table(frame)
    stored = suppressions.astype(str).to_string() + request.astype(str).to_string()
    assert person["email"] not in stored and person["phone"] not in stored and person["contact_id"] not in stored

    again = erase(warehouse.engine, email=person["email"], requested_at=REQUESTED_AT)  # a repeated request is harmless
    assert again.empty
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM erasure_suppressions")).scalar_one() == len(suppressions)
        assert conn.execute(sa.text("SELECT COUNT(*) FROM erasure_requests")).scalar_one() == 2


def test_audience_export_files_are_rewritten_without_the_person(warehouse):
    person = people(warehouse.engine).iloc[0]
    exports = warehouse.tmp / "exports"
    (exports / "weekly").mkdir(parents=True)
    with warehouse.engine.connect() as conn:
        audience, as_of = conn.execute(sa.text(
            "SELECT audience, as_of FROM audience_members WHERE contact_id = :c ORDER BY audience LIMIT 1"),
            {"c": person["contact_id"]}).one()
        sizes = {fmt: export_audience(conn, audience, as_of, fmt=fmt, out=exports / "weekly" / f"a.{fmt}.{ext}")
                 for fmt, ext in (("csv", "csv"), ("hashed", "csv"), ("parquet", "parquet"))}

    frame = erase(warehouse.engine, email=person["email"], requested_at=REQUESTED_AT, exports_dir=exports)

    removed = removed_by_table(frame)
    csv_rows = pd.read_csv(exports / "weekly" / "a.csv.csv", dtype=str)
    hashed_rows = pd.read_csv(exports / "weekly" / "a.hashed.csv", dtype=str)
    parquet_rows = pq.read_table(exports / "weekly" / "a.parquet.parquet").to_pandas()
    assert person["contact_id"] not in set(csv_rows["contact_id"]) | set(parquet_rows["contact_id"])
    assert hashlib.sha256(person["email"].encode()).hexdigest() not in set(hashed_rows["email_sha256"])
    assert (len(csv_rows), len(hashed_rows), len(parquet_rows)) == (sizes["csv"] - 1, sizes["hashed"] - 1,
                                                                    sizes["parquet"] - 1)
    assert {removed[f"export:weekly/a.{n}"] for n in ("csv.csv", "hashed.csv", "parquet.parquet")} == {1}
    assert not list(exports.rglob(".*"))  # no staged copies left behind


def test_an_identifier_shared_by_many_people_is_refused_and_nothing_changes(warehouse):
    with warehouse.engine.connect() as conn:
        shared = conn.execute(sa.text(
            "SELECT SUBSTRING(subject, 7) FROM identity_alerts WHERE kind = 'identifier_capped' "
            "AND subject LIKE 'email:%' ORDER BY subject LIMIT 1")).scalar_one()
    before = table_counts(warehouse.engine)
    with pytest.raises(ErasureRefused, match="contacts"):
        erase(warehouse.engine, email=shared, requested_at=REQUESTED_AT)
    assert table_counts(warehouse.engine) == before


def test_pairs_and_review_decisions_naming_the_person_go_and_the_stored_model_is_cleared(warehouse):
    """Identity pairs, borderline pairs and clerical decisions name records by node id (brand, kind, source key):
    the person's go, everyone else's stay, and the stored Splink model (whose sample names nodes) is dropped."""
    from crm_pipeline.identity.review import record_decision

    person = people(warehouse.engine).iloc[0]
    with warehouse.engine.connect() as conn:
        mine = conn.execute(sa.text("SELECT node_id FROM identity_nodes WHERE contact_id = :c ORDER BY node_id"),
                            {"c": person["contact_id"]}).scalars().first()
        a, b = conn.execute(sa.text("SELECT node_id FROM identity_nodes WHERE contact_id <> :c ORDER BY node_id "
                                    "LIMIT 2"), {"c": person["contact_id"]}).scalars().all()
    when = dict(now=REQUESTED_AT, as_of=REQUESTED_AT.date())
    record_decision(warehouse.engine, mine, a, "cannot_link", **when)
    record_decision(warehouse.engine, a, b, "must_link", **when)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO identity_pairs (node_a, node_b, match_probability) "
                             "VALUES (:m, :a, 0.9), (:a, :b, 0.8)"), {"m": mine, "a": a, "b": b})
        stored = conn.execute(sa.text("SELECT COUNT(*) FROM identity_match")).scalar_one()

    removed = removed_by_table(erase(warehouse.engine, email=person["email"], requested_at=REQUESTED_AT))

    assert removed["identity_decisions"] == 1 and removed["identity_pairs"] == 1
    assert removed.get("identity_match", 0) == stored
    with warehouse.engine.connect() as conn:
        for table in ("identity_decisions", "identity_pairs", "identity_borderline"):
            left = conn.execute(sa.text(f"SELECT node_a, node_b FROM {table}")).all()
            assert all(mine not in pair for pair in left), table
        assert conn.execute(sa.text("SELECT node_a, node_b FROM identity_decisions")).all() == [tuple(sorted((a, b)))]
        assert conn.execute(sa.text("SELECT COUNT(*) FROM identity_match")).scalar_one() == 0
