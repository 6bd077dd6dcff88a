"""Ingest on PostgreSQL: unchanged files go unread, the manifest gains its mtime column on an old warehouse."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.report import (
    file_counters, first_file_id_of_run, loaded_row_totals, raw_row_counts, raw_rows_not_matching_manifest,
)
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.conftest import drop

CUSTOMERS = "customer_id,email\nC1,ann@example.com\nC2,bob@example.com\n"


def test_unchanged_files_go_unread_and_a_same_size_fix_loads_on_postgresql(postgres_server, tmp_path):
    engine = make_engine(postgres_server.create_database("incremental_ingest"))
    folder = LandingFolder(tmp_path / "landing")
    try:
        drop(folder.root, "brand_a/customers/a.csv", CUSTOMERS)
        first = ingest_folder(engine, folder, now=datetime.now(timezone.utc))
        with engine.begin() as conn:  # a warehouse built before files.mtime_ns existed
            conn.execute(sa.text("ALTER TABLE files DROP COLUMN mtime_ns"))
        assert file_counters(ingest_folder(engine, folder, now=datetime.now(timezone.utc)))["files_hashed"] == 1
        assert file_counters(ingest_folder(engine, folder, now=datetime.now(timezone.utc)))["files_hashed"] == 0
        drop(folder.root, "brand_a/customers/a.csv", CUSTOMERS.replace("bob@example.com", "bob@example.org"))
        fixed = ingest_folder(engine, folder, now=datetime.now(timezone.utc))
        assert file_counters(fixed) == {"files_seen": 1, "files_hashed": 1, "files_skipped_as_known": 0,
                                        "files_loaded": 1}
        with engine.connect() as conn:
            assert first_file_id_of_run(conn, fixed) == first[0].file_id + 1
            assert raw_rows_not_matching_manifest(conn, first[0].file_id + 1) == []
            assert loaded_row_totals(conn) == raw_row_counts(conn) and raw_row_counts(conn)["customers"] == 4
    finally:
        engine.dispose()
