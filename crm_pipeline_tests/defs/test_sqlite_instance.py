"""A run whose events are written with the instance's SQLite files kept open is the same run for the UI."""

import sqlite3
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from crm_pipeline.defs.headless import instance_at
from crm_pipeline.defs.sqlite_instance import sqlite_instance_kept_open


def _tiny_job_assets(seen: dict, run_db_dir: Path):
    @dg.asset(check_specs=[dg.AssetCheckSpec("non_negative", asset="tiny")])
    def tiny(context: dg.AssetExecutionContext):
        # Mid-run: the events so far sit in the run's write-ahead log, not yet checkpointed into its file.
        seen["wal_mid_run"] = (run_db_dir / f"{context.run_id}.db-wal").is_file()
        yield dg.MaterializeResult(metadata={"dagster/row_count": 3})
        yield dg.AssetCheckResult(check_name="non_negative", passed=True)

    return [tiny]


def test_the_run_its_events_and_materializations_reach_another_instance_and_the_log_is_checkpointed(tmp_path):
    home = tmp_path / "dagster"
    instance = instance_at(home)
    run_db_dir = Path(instance.root_directory) / "history" / "runs"
    seen: dict = {}
    with sqlite_instance_kept_open(instance):
        result = dg.materialize(_tiny_job_assets(seen, run_db_dir), instance=instance)
    assert result.success
    assert seen["wal_mid_run"]  # the events' connections closed without a checkpoint each
    assert not (run_db_dir / f"{result.run_id}.db-wal").exists()  # checkpointed once at the end: the file is whole

    ui = dg.DagsterInstance.from_config(str(home))  # what `dagster dev` opens: another instance on the same folder
    run = ui.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    kinds = {e.dagster_event.event_type for e in ui.all_logs(result.run_id) if e.dagster_event}
    assert {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.ASSET_MATERIALIZATION,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.RUN_SUCCESS} <= kinds
    latest = ui.get_latest_materialization_event(dg.AssetKey("tiny"))
    assert latest.run_id == result.run_id
    assert latest.asset_materialization.metadata["dagster/row_count"].value == 3


def test_sqlite_files_outside_the_instance_are_left_alone(tmp_path):
    instance = instance_at(tmp_path / "dagster")
    other = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{other}", poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("PRAGMA journal_mode=WAL"))
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    with sqlite_instance_kept_open(instance):
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            synchronous = conn.execute(sa.text("PRAGMA synchronous")).scalar_one()
        wal_after_close = (tmp_path / "other.db-wal").exists()
    assert synchronous == 2  # FULL, SQLite's default: only the instance's files commit with NORMAL
    assert not wal_after_close  # nothing held it open: its last connection checkpointed it as usual
    assert sqlite3.connect(other).execute("SELECT x FROM t").fetchall() == [(1,)]
