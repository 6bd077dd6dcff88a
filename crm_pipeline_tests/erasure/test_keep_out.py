"""An erased person stays out when old files come back, and every file still adds up."""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
import shutil

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES
from crm_pipeline.erasure.erase import erase
from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.resolve import resolve_identities
from crm_pipeline.identity.stable_ids import id_number
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.report import raw_rows_not_matching_manifest
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.quality.accounting import file_balances
from crm_pipeline.quality.stage import run_quality_stage
from crm_pipeline_tests.erasure.helpers import people, text_hits

REQUESTED_AT = dt.datetime(2025, 7, 1, 9, 30, tzinfo=dt.timezone.utc)
NOW = dt.datetime(2025, 7, 2, 8, 0, tzinfo=dt.timezone.utc)


def load_and_stage(warehouse) -> list:
    outcomes = ingest_folder(warehouse.engine, LandingFolder(warehouse.landing), now=NOW)
    run_quality_stage(warehouse.engine, hold_share=0.05, docs_dir=None, now=NOW)
    return outcomes


def redrop_with_bom(landing, relative: str) -> str:
    """The same rows re-exported (with a UTF-8 BOM, so new bytes) under a new name, as a finished drop."""
    source = landing / relative
    target = source.with_name(source.stem + "_resent" + source.suffix)
    target.write_bytes(codecs.BOM_UTF8 + source.read_bytes())
    past = NOW.timestamp() - 3600
    os.utime(target, (past, past))
    return target.relative_to(landing).as_posix()


def test_a_redropped_old_file_does_not_bring_the_erased_person_back(warehouse):
    candidates = people(warehouse.engine)
    person = candidates[candidates["path"].str.startswith("brand_a/") & candidates["path"].str.endswith(".csv")].iloc[0]
    with warehouse.engine.connect() as conn:
        records = pd.read_sql(sa.text("SELECT brand, entity, source_key FROM identity_map WHERE contact_id = :c"),
                              conn, params={"c": person["contact_id"]})
        # The person's files of brand_a (order lines reach them through their orders).
        old_files = pd.read_sql(sa.text("""
            SELECT DISTINCT f.path FROM files f WHERE f.brand = 'brand_a' AND f.path LIKE '%.csv' AND (
              f.file_id IN (SELECT _file_id FROM identity_map WHERE contact_id = :c)
              OR f.file_id IN (SELECT i._file_id FROM raw_order_items i JOIN identity_map m ON m.entity = 'orders'
                               AND m.brand = i._brand AND m.source_key = i.order_id WHERE m.contact_id = :c))
        """), conn, params={"c": person["contact_id"]})["path"]
    assert len(old_files) >= 3
    erase(warehouse.engine, email=person["email"], requested_at=REQUESTED_AT)

    resent = [redrop_with_bom(warehouse.landing, p) for p in old_files]
    outcomes = {o.path: o for o in load_and_stage(warehouse)}

    assert {outcomes[p].status for p in resent} == {"loaded"}
    assert sum(outcomes[p].rows_suppressed for p in resent) >= len(records[records["brand"] == "brand_a"])
    assert outcomes[person["path"].replace(".csv", "_resent.csv")].rows_suppressed >= 1
    digits = re.sub(r"\D", "", person["phone"])[-10:]
    assert text_hits(warehouse.engine, text=person["email"], digits=digits) == {}
    with warehouse.engine.connect() as conn:
        for entity, keys in records.groupby("entity"):
            key = ENTITIES[entity].key[0]
            back = conn.execute(sa.text(f"SELECT COUNT(*) FROM typed_{entity} WHERE _brand || '|' || {key} IN :k")
                                .bindparams(sa.bindparam("k", expanding=True)),
                                {"k": list(keys["brand"] + "|" + keys["source_key"])}).scalar_one()
            assert back == 0, entity
        orders = records[records["entity"] == "orders"]
        order_lines = conn.execute(sa.text("SELECT COUNT(*) FROM raw_order_items WHERE _brand || '|' || order_id IN :k")
                                   .bindparams(sa.bindparam("k", expanding=True)),
                                   {"k": list(orders["brand"] + "|" + orders["source_key"])}
                                   ).scalar_one()
        assert order_lines == 0

        # The accounting still balances: per file raw = staged + quarantined + deduplicated, and
        # rows in the file = rows in raw + rows kept out by erasure.
        problems = [b.problem() for e in ENTITIES for b in file_balances(conn, e) if not b.balanced]
        assert problems == []
        assert raw_rows_not_matching_manifest(conn) == []
        suppressed = conn.execute(sa.text(
            "SELECT SUM(row_count) FROM erasure_row_counts WHERE cause = 'suppressed_on_load'")).scalar_one()
    assert suppressed == sum(outcomes[p].rows_suppressed for p in resent)


def test_the_same_bytes_dropped_again_are_a_duplicate_and_load_nothing(warehouse):
    person = people(warehouse.engine).iloc[0]
    erase(warehouse.engine, email=person["email"], requested_at=REQUESTED_AT)
    copy = warehouse.landing / person["path"]
    shutil.copy(copy, copy.with_name("copy_" + copy.name))

    outcomes = {o.path: o for o in load_and_stage(warehouse)}

    again = outcomes[(copy.with_name("copy_" + copy.name)).relative_to(warehouse.landing).as_posix()]
    assert again.status == "duplicate" and again.rows_loaded is None
    assert text_hits(warehouse.engine, text=person["email"]) == {}


def test_a_person_only_in_quarantine_is_found_by_the_identifier_itself(warehouse):
    ghost = warehouse.landing / "brand_a" / "customers" / "ghost.csv"
    ghost.write_text("customer_id,email,phone,first_name,last_name,created_at\n"
                     "GHOST-1,ghost.person@example.com,(617) 555-0199,Gus,Ghost,not a date\n", encoding="utf-8")
    os.utime(ghost, (NOW.timestamp() - 3600,) * 2)
    load_and_stage(warehouse)
    with warehouse.engine.connect() as conn:
        quarantined = conn.execute(sa.text(
            "SELECT COUNT(*) FROM quarantine WHERE source_key = 'GHOST-1'")).scalar_one()
        resolved = conn.execute(sa.text("SELECT COUNT(*) FROM identity_map WHERE source_key = 'GHOST-1'")).scalar_one()
    assert quarantined == 1 and resolved == 0  # never a contact

    frame = erase(warehouse.engine, email="Ghost.Person@Example.com", requested_at=REQUESTED_AT)

    removed = dict(zip(frame["table"], frame["rows_removed"]))
    assert {t: removed.get(t) for t in ("raw_customers", "unstaged_customers", "quarantine", "row_outcomes",
                                        "row_violations", "rule_hits")} == {
        "raw_customers": 1, "unstaged_customers": 1, "quarantine": 1, "row_outcomes": 1, "row_violations": 1,
        "rule_hits": 1}
    assert "stg_customers" not in removed  # a quarantined row was never staged
    assert "contacts" not in removed
    assert text_hits(warehouse.engine, text="ghost.person@example.com", digits="6175550199") == {}


def test_an_erased_contact_id_is_never_given_to_someone_new(warehouse):
    with warehouse.engine.connect() as conn:
        newest = conn.execute(sa.text("SELECT contact_id FROM contacts ORDER BY contact_id DESC LIMIT 1")).scalar_one()
    erase(warehouse.engine, contact_id=newest, requested_at=REQUESTED_AT)
    newcomer = warehouse.landing / "brand_a" / "customers" / "newcomer.csv"
    newcomer.write_text("customer_id,email,first_name,last_name,created_at\n"
                        "NEW-1,new.person@example.com,Nora,Newcomer,2025-06-30T10:00:00Z\n", encoding="utf-8")
    os.utime(newcomer, (NOW.timestamp() - 3600,) * 2)
    load_and_stage(warehouse)

    resolve_identities(warehouse.engine, as_of=NOW.date(), config=load_identity_config())

    with warehouse.engine.connect() as conn:
        given = conn.execute(sa.text("SELECT contact_id FROM identity_map WHERE source_key = 'NEW-1'")).scalar_one()
    assert given != newest
    assert int(id_number(pd.Series([given])).iloc[0]) > int(id_number(pd.Series([newest])).iloc[0])
