"""Transient warehouse errors are retried with backoff; data errors fail at once; a rerun gives the same tables."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as sa

from crm_pipeline.defs.headless import INSTANCE_YAML
from crm_pipeline.defs.ingest_assets import ingest_files
from crm_pipeline.defs.resources import default_resources, is_transient_warehouse_error
from crm_pipeline.settings import load_settings
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.conftest import drop

HOLD_LOCK = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture
def warehouse(tmp_path):
    return tmp_path / "warehouse.duckdb"


def hold_lock(path, seconds: float) -> subprocess.Popen:
    """Another process (a second `crm-pipeline run`, a notebook) holding the DuckDB file."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def ingest(instance, tmp_path, landing_dir, warehouse):
    settings = load_settings(env={}, home_dir=tmp_path / "home", landing_dir=landing_dir,
                             warehouse_url=f"duckdb:///{warehouse}")
    return dg.materialize([ingest_files], instance=instance, resources=default_resources(settings),
                          run_config={"ops": {"ingest_files": {"config": {"paths": []}}}}, raise_on_error=False)


def retries(result) -> int:
    return sum(1 for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY)


def table_rows(warehouse, table: str) -> list[tuple]:
    engine = make_engine(f"duckdb:///{warehouse}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY ALL"))]
    finally:
        engine.dispose()


def test_a_warehouse_locked_by_another_process_is_retried_and_the_run_succeeds(instance, tmp_path, landing_dir,
                                                                              warehouse):
    drop(landing_dir, "brand_a/customers/customers.csv", "customer_id,email\nC1,a@x.com\nC2,b@x.com\n")
    holder = hold_lock(warehouse, seconds=3)
    try:
        result = ingest(instance, tmp_path, landing_dir, warehouse)
    finally:
        holder.wait(timeout=30)
    assert result.success
    assert 1 <= retries(result) <= 3  # first wait 2 s, then 4 s: the lock is gone by the second or third try
    assert len(table_rows(warehouse, "raw_customers")) == 2


def test_a_rerun_gives_the_same_tables(instance, tmp_path, landing_dir, warehouse):
    drop(landing_dir, "brand_a/customers/customers.csv", "customer_id,email\nC1,a@x.com\nC2,b@x.com\n")
    assert ingest(instance, tmp_path, landing_dir, warehouse).success
    raw, manifest = table_rows(warehouse, "raw_customers"), table_rows(warehouse, "files")
    assert ingest(instance, tmp_path, landing_dir, warehouse).success
    assert table_rows(warehouse, "raw_customers") == raw and table_rows(warehouse, "files") == manifest


def test_a_schema_error_fails_the_step_once_without_retrying(instance, tmp_path, landing_dir, warehouse):
    drop(landing_dir, "brand_a/customers/customers.csv", "customer_id,email\nC1,a@x.com\n")
    engine = make_engine(f"duckdb:///{warehouse}")
    with engine.begin() as conn:  # a `files` table someone else made, not the manifest: no retry can fix it
        conn.execute(sa.text("CREATE TABLE files (path VARCHAR)"))
    engine.dispose()
    result = ingest(instance, tmp_path, landing_dir, warehouse)
    assert not result.success
    assert retries(result) == 0


def test_only_lock_and_connection_errors_count_as_transient(warehouse):
    engine = make_engine(f"duckdb:///{warehouse}")
    holder = hold_lock(warehouse, seconds=60)
    try:
        with pytest.raises(sa.exc.OperationalError) as locked:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
    finally:
        holder.kill()
        holder.wait()
    assert is_transient_warehouse_error(locked.value)
    with pytest.raises(sa.exc.DBAPIError) as bad_value, engine.connect() as conn:
        conn.execute(sa.text("SELECT CAST('x' AS INTEGER)"))
    assert not is_transient_warehouse_error(bad_value.value)
    with pytest.raises(sa.exc.DBAPIError) as missing, engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table"))
    assert not is_transient_warehouse_error(missing.value)
    engine.dispose()
