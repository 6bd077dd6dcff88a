"""deploy/dagster.postgres.yaml: the project's instance with runs, event logs and schedules in PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml

from crm_pipeline.settings import Settings
from crm_pipeline_tests.conftest import drop

REPO = Path(__file__).resolve().parents[2]
CUSTOMERS = ("customer_id,email,first_name,last_name,country\n"
             "C1,ann@example.com,Ann,Lee,US\nC2,bob@example.com,Bob,Ray,US\n")


def test_the_postgres_variant_is_the_projects_instance_plus_postgres_storage():
    local = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text(encoding="utf-8"))
    variant = yaml.safe_load((REPO / "deploy" / "dagster.postgres.yaml").read_text(encoding="utf-8"))
    assert {k: v for k, v in variant.items() if k != "storage"} == local, (
        "dagster.postgres.yaml must be dagster.yaml plus its `storage:` block: copy dagster.yaml's changes over")
    db = variant["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"  # the driver pyproject installs
    assert {k: v["env"] for k, v in db.items()} == {
        "hostname": "DAGSTER_PG_HOST", "port": "DAGSTER_PG_PORT", "db_name": "DAGSTER_PG_DB",
        "username": "DAGSTER_PG_USERNAME", "password": "DAGSTER_PG_PASSWORD"}  # no secret in the file


def test_an_instance_on_dagster_postgres_yaml_records_a_real_materialization(tmp_path, postgres_server, monkeypatch):
    from crm_pipeline.defs.ingest_assets import ingest_files
    from crm_pipeline.defs.resources import default_resources

    storage_db = postgres_server.create_database("dagster_instance")
    warehouse_url = postgres_server.create_database("crm_instance_warehouse")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    for name, value in {"DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": "127.0.0.1",
                        "DAGSTER_PG_PORT": str(postgres_server.port), "DAGSTER_PG_DB": "dagster_instance",
                        "DAGSTER_PG_USERNAME": "postgres", "DAGSTER_PG_PASSWORD": ""}.items():
        monkeypatch.setenv(name, value)
    landing = tmp_path / "landing"
    drop(landing, "brand_a/customers/2025-06-01.csv", CUSTOMERS)
    settings = Settings(home_dir=tmp_path / "home", warehouse_url=warehouse_url, landing_dir=landing)

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = dg.materialize([ingest_files], instance=instance, resources=default_resources(settings),
                                run_config={"ops": {"ingest_files": {"config": {"paths": []}}}})
        assert result.success
        recorded = instance.get_latest_materialization_event(dg.AssetKey("raw_customers"))
        assert recorded is not None and recorded.run_id == result.run_id
        assert recorded.asset_materialization.metadata["dagster/row_count"].value == 2

    # The run and its events are rows in PostgreSQL, not in files under DAGSTER_HOME.
    engine = sa.create_engine(storage_db.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT run_id, status FROM runs")).all()
        events = conn.execute(sa.text("SELECT COUNT(*) FROM event_logs WHERE run_id = :r"),
                              {"r": result.run_id}).scalar_one()
    engine.dispose()
    assert runs == [(result.run_id, "SUCCESS")] and events > 0
    assert not list(home.glob("**/*.db"))  # no SQLite storage was created beside it
