"""Ingest cost follows what is new: unchanged files are not read again, changed bytes always are."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import dagster as dg
import sqlalchemy as sa

from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.report import (
    file_counters, first_file_id_of_run, loaded_row_totals, raw_row_counts, raw_rows_not_matching_manifest,
)
from crm_pipeline_tests.conftest import drop

CUSTOMERS = "customer_id,email\nC1,ann@example.com\nC2,bob@example.com\n"
SAME_SIZE_FIX = CUSTOMERS.replace("bob@example.com", "bob@example.org")  # new bytes, same length
ORDERS = "order_id,customer_id,ordered_at,total\nO1,C1,2025-05-01T10:00:00Z,10.50\n"


def wall_now() -> datetime:
    return datetime.now(timezone.utc)


def ingest(engine, folder, **kwargs):
    outcomes = ingest_folder(engine, folder, now=wall_now(), **kwargs)
    return outcomes, file_counters(outcomes)


def emails(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT email FROM raw_customers")).scalars())


def test_a_second_ingest_of_an_unchanged_landing_hashes_no_file(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    drop(landing_dir, "brand_a/customers/a_copy.csv", CUSTOMERS)  # a twin: recorded as a duplicate
    drop(landing_dir, "brand_a/orders/o.csv", ORDERS)
    drop(landing_dir, "brand_a/nonsense/x.csv", "a,b\n1,2\n")  # rejected
    first, counted = ingest(engine, folder)
    assert counted == {"files_seen": 4, "files_hashed": 4, "files_skipped_as_known": 0, "files_loaded": 2}
    again, counted = ingest(engine, folder)
    assert counted == {"files_seen": 4, "files_hashed": 0, "files_skipped_as_known": 4, "files_loaded": 0}
    # what an unread file reports is what hashing it would have found
    assert [(o.file_id, o.status, o.sha256, o.rows_loaded, o.already_known) for o in again] == \
        [(o.file_id, o.status, o.sha256, o.rows_loaded, True) for o in first]
    assert emails(engine) == ["ann@example.com", "bob@example.com"]


def test_a_rewrite_with_new_bytes_of_the_same_size_is_hashed_and_loaded(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    ingest(engine, folder)
    drop(landing_dir, "brand_a/customers/a.csv", SAME_SIZE_FIX)  # same name and size, a later mtime
    [outcome], counted = ingest(engine, folder)
    assert counted["files_hashed"] == 1 and (outcome.status, outcome.already_known) == ("loaded", False)
    assert emails(engine) == sorted(["ann@example.com", "bob@example.com", "ann@example.com", "bob@example.org"])
    assert ingest(engine, folder)[1]["files_hashed"] == 0  # the corrected file is vouched for in turn


def test_a_same_size_rewrite_within_the_mtime_resolution_is_not_missed(engine, folder, landing_dir):
    """A file loaded moments after it was written may be rewritten, same size, without its mtime moving
    (a coarse file system clock): its mtime vouches for nothing, so the next run reads it."""
    path = drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS, age_seconds=0)
    ingest(engine, folder)
    mtime_ns = path.stat().st_mtime_ns
    path.write_text(SAME_SIZE_FIX, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))  # the same second, the same nanosecond even
    [outcome], counted = ingest(engine, folder)
    assert counted["files_hashed"] == 1 and outcome.status == "loaded" and not outcome.already_known
    assert "bob@example.org" in emails(engine)


def test_full_refresh_rehashes_every_file_and_still_loads_nothing_twice(engine, folder, landing_dir):
    path = drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    drop(landing_dir, "brand_a/orders/o.csv", ORDERS)
    ingest(engine, folder)
    mtime_ns = path.stat().st_mtime_ns
    path.write_text(SAME_SIZE_FIX, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))  # an mtime set back by hand after a same-size rewrite
    assert ingest(engine, folder)[1]["files_hashed"] == 0  # what size and mtime cannot see ...
    outcomes, counted = ingest(engine, folder, rehash=True)  # ... a full refresh's rehash finds
    assert counted == {"files_seen": 2, "files_hashed": 2, "files_skipped_as_known": 0, "files_loaded": 1}
    assert [o.already_known for o in outcomes] == [False, True]
    assert emails(engine).count("ann@example.com") == 2 and "bob@example.org" in emails(engine)
    assert ingest(engine, folder, rehash=True)[1]["files_loaded"] == 0


def test_a_manifest_from_before_mtimes_gets_them_after_one_more_hash(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    ingest(engine, folder)
    with engine.begin() as conn:  # a warehouse built before files.mtime_ns existed
        conn.execute(sa.text("ALTER TABLE files DROP COLUMN mtime_ns"))
    [outcome], counted = ingest(engine, folder)  # the column comes back, empty: the file is read once more
    assert counted["files_hashed"] == 1 and outcome.already_known
    _, counted = ingest(engine, folder)
    assert counted["files_hashed"] == 0 and emails(engine) == ["ann@example.com", "bob@example.com"]


def test_the_manifest_check_of_a_run_covers_its_files_and_anything_after_them(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    ingest(engine, folder)
    drop(landing_dir, "brand_a/customers/b.csv", CUSTOMERS.replace("C1", "C3"))
    outcomes, _ = ingest(engine, folder)
    with engine.begin() as conn:
        since = first_file_id_of_run(conn, outcomes)
        [new] = [o for o in outcomes if not o.already_known]
        assert since == new.file_id
        assert loaded_row_totals(conn) == raw_row_counts(conn)
        conn.execute(sa.text("DELETE FROM raw_customers WHERE _file_id = :f AND _row_number = 1"), {"f": new.file_id})
        conn.execute(sa.text("INSERT INTO raw_customers (_file_id, _row_number, _brand) VALUES (99, 1, 'brand_a')"))
        assert raw_rows_not_matching_manifest(conn, since) == [
            "brand_a/customers/b.csv: manifest says 2 rows, raw_customers has 1",
            "raw_customers: 1 rows whose _file_id is not a loaded file"]
        # an earlier run's file is left to that run's check and to a full refresh's
        conn.execute(sa.text("DELETE FROM raw_customers WHERE _file_id = 1 AND _row_number = 1"))
        assert len(raw_rows_not_matching_manifest(conn, since)) == 2
        assert len(raw_rows_not_matching_manifest(conn)) == 3


def test_the_ingest_asset_reports_its_counters_and_rehashes_on_full_refresh(tmp_path, landing_dir, dagster_instance):
    from crm_pipeline.definitions import ALL_ASSETS
    from crm_pipeline.defs.resources import default_resources
    from crm_pipeline.defs.run_tags import FULL_REFRESH_TAG
    from crm_pipeline.settings import Settings

    settings = Settings(home_dir=tmp_path / "home", landing_dir=landing_dir,
                        warehouse_url=f"duckdb:///{tmp_path / 'wh.duckdb'}")
    [ingest_asset] = [a for a in ALL_ASSETS if a.op.name == "ingest_files"]

    def run(tags: dict[str, str]) -> dict:
        result = dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.assets(ingest_asset),
                                instance=dagster_instance, resources=default_resources(settings), tags=tags)
        assert result.success
        [check] = result.get_asset_check_evaluations()
        assert check.passed
        [files] = [m for m in result.asset_materializations_for_node("ingest_files") if m.asset_key.path == ["files"]]
        return {k: files.metadata[k].value for k in ("files_seen", "files_hashed", "files_skipped_as_known",
                                                     "files_loaded")}

    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    drop(landing_dir, "brand_a/orders/o.csv", ORDERS)
    assert run({}) == {"files_seen": 2, "files_hashed": 2, "files_skipped_as_known": 0, "files_loaded": 2}
    assert run({}) == {"files_seen": 2, "files_hashed": 0, "files_skipped_as_known": 2, "files_loaded": 0}
    assert run({FULL_REFRESH_TAG: "true"}) == \
        {"files_seen": 2, "files_hashed": 2, "files_skipped_as_known": 0, "files_loaded": 0}
