"""The landing sensor on a real (temporary) Dagster instance: run keys, cursor, waiting files, and the
warehouse's manifest deciding what is already loaded."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timezone

import dagster as dg
import pytest

from crm_pipeline.defs.resources import CrmSettingsResource, LandingResource
from crm_pipeline.defs.sensors import landing_sensor
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.synth import generate
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.conftest import drop

CSV = "customer_id,email\nC1,a@x.com\n"


@pytest.fixture
def instance(dagster_instance):
    return dagster_instance


def evaluate(instance, landing_dir, cursor=None, settle=2.0):
    """One tick; the warehouse is the settings' default, <home>/warehouse.duckdb beside the landing folder."""
    resources = {
        "landing": LandingResource(root=str(landing_dir)),
        "crm_settings": CrmSettingsResource(landing_dir=str(landing_dir), home_dir=str(landing_dir.parent)),
    }
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = landing_sensor(context)
    return result, result.cursor


def test_one_run_per_new_file_keyed_by_content_hash(instance, landing_dir, folder):
    drop(landing_dir, "brand_a/customers/a.csv", CSV)
    drop(landing_dir, "brand_b/customers/b.csv", CSV.replace("C1", "C2"))
    result, cursor = evaluate(instance, landing_dir)
    keys = {r.tags["crm/path"]: r.run_key for r in result.run_requests}
    assert keys == {"brand_a/customers/a.csv": folder.sha256("brand_a/customers/a.csv"),
                    "brand_b/customers/b.csv": folder.sha256("brand_b/customers/b.csv")}
    request = result.run_requests[0]
    assert request.run_config["ops"]["ingest_files"]["config"]["paths"] == [request.tags["crm/path"]]
    again, _ = evaluate(instance, landing_dir, cursor)
    assert again.run_requests == []


def test_same_bytes_under_a_new_name_reuse_the_run_key(instance, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", CSV)
    first, cursor = evaluate(instance, landing_dir)
    drop(landing_dir, "brand_a/customers/copy.csv", CSV)
    second, _ = evaluate(instance, landing_dir, cursor)
    assert [r.run_key for r in second.run_requests] == [first.run_requests[0].run_key]
    # Dagster skips a run key a sensor already used, so the copy never loads a second time.


def test_half_written_and_temp_files_wait(instance, landing_dir):
    drop(landing_dir, "brand_a/customers/big.csv", CSV, age_seconds=0)  # modified just now
    drop(landing_dir, "brand_a/customers/next.csv.part", CSV)
    drop(landing_dir, "brand_a/customers/.hidden.csv", CSV)
    result, cursor = evaluate(instance, landing_dir)
    assert result.run_requests == [] and "1 still settling, 2 in progress" in result.skip_reason.skip_message
    result, cursor = evaluate(instance, landing_dir, cursor)  # unchanged since the last tick: now stable
    assert [r.tags["crm/path"] for r in result.run_requests] == ["brand_a/customers/big.csv"]


def test_a_large_folder_is_paged_across_ticks(instance, landing_dir, monkeypatch):
    monkeypatch.setenv("CRM_SENSOR_PAGE_SIZE", "3")
    for i in range(7):
        drop(landing_dir, f"brand_a/customers/{i:02d}.csv", CSV.replace("C1", f"C{i}"))
    seen, cursor = [], None
    for _ in range(3):
        result, cursor = evaluate(instance, landing_dir, cursor)
        seen.append(len(result.run_requests))
    assert seen == [3, 3, 1]
    result, cursor = evaluate(instance, landing_dir, cursor)
    assert result.run_requests == []


@pytest.fixture
def loaded_by_the_cli(landing_dir):
    """A small generated landing loaded as `crm-pipeline run` loads it (the ingest path, no Dagster run):
    the warehouse's manifest knows every file, Dagster's run keys know none."""
    generated = landing_dir.parent / "generated"
    generate(generated, people=40, brands=2, days=30, seed=3, end_date="2026-06-30")
    shutil.copytree(generated / "landing", landing_dir, dirs_exist_ok=True)
    engine = make_engine(f"duckdb:///{landing_dir.parent / 'warehouse.duckdb'}")
    try:
        outcomes = ingest_folder(engine, folder_of(landing_dir), now=datetime.now(timezone.utc))
    finally:
        engine.dispose()  # the sensor opens the file read-only, as from another process
    assert {o.status for o in outcomes} == {"loaded"}
    return sorted(o.path for o in outcomes)


def folder_of(landing_dir):
    return LandingResource(root=str(landing_dir)).folder()


def test_files_the_warehouse_already_loaded_request_no_run(instance, landing_dir, loaded_by_the_cli):
    result, cursor = evaluate(instance, landing_dir)
    assert result.run_requests == []
    assert f"{len(loaded_by_the_cli)} already in the warehouse" in result.skip_reason.skip_message
    # A new file, a corrected file under a loaded name, and a copy of loaded bytes under a new name.
    first, second = loaded_by_the_cli[:2]
    drop(landing_dir, "brand_z/customers/late.csv", CSV)
    drop(landing_dir, first, (landing_dir / first).read_bytes() + b"\n")
    drop(landing_dir, "brand_z/customers/copy_of_loaded.csv", (landing_dir / second).read_bytes())
    result, _ = evaluate(instance, landing_dir, cursor)
    assert sorted(r.tags["crm/path"] for r in result.run_requests) == sorted(
        ["brand_z/customers/late.csv", first])
    assert all(r.run_key == folder_of(landing_dir).sha256(r.tags["crm/path"]) for r in result.run_requests)


def test_a_warehouse_locked_by_a_writing_run_does_not_stop_the_sensor(instance, landing_dir, loaded_by_the_cli):
    """Another process holds the DuckDB file (a run writing): the tick cannot ask the manifest, so it requests
    the runs as it would without it (their ingestion skips what is loaded) rather than failing or waiting."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " time.sleep(60)", str(landing_dir.parent / "warehouse.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result, _ = evaluate(instance, landing_dir)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(r.tags["crm/path"] for r in result.run_requests) == loaded_by_the_cli
