"""Materialize the whole asset graph without the UI, on the real local Dagster instance."""

import os
from datetime import date
from pathlib import Path

import dagster as dg

from crm_pipeline.defs.resources import default_resources
from crm_pipeline.defs.run_progress import LOGGER_KEY, progress_logger
from crm_pipeline.defs.run_tags import FULL_REFRESH_TAG
from crm_pipeline.defs.sqlite_instance import sqlite_instance_kept_open
from crm_pipeline.progress import ProgressPrinter
from crm_pipeline.settings import Settings

# The job name `dg.materialize` gives its runs; the command line's runs keep it.
EPHEMERAL_JOB_NAME = "__ephemeral_asset_job__"

INSTANCE_YAML = """# The local instance: runs, event logs and schedules live under $DAGSTER_HOME (.crm/dagster via `make ui`).
telemetry:
  enabled: false

# The embedded warehouse is one DuckDB file, which admits a single writing process:
# runs (one per landed file from the sensor, plus any started by hand) queue and go one at a time.
concurrency:
  runs:
    max_concurrent_runs: 1
# The queue looks for the next run every 2 seconds (Dagster's default is 5): a burst of file runs drains sooner.
run_queue:
  dequeue_interval_seconds: 2

# Steps retry transient warehouse errors themselves (a DuckDB lock, a dropped connection) with backoff;
# a data error fails its step once and is not retried, so nothing loops. A run that failed for any other
# reason (its worker crashed or never started) is launched again by the daemon, at most twice.
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false

# A run that has not started within 3 minutes is marked failed, and so retried.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180

# The daemon evaluates freshness policies (audiences are stale 26 hours after their last refresh).
freshness:
  enabled: true
"""


def local_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance under $DAGSTER_HOME, or under the project's home folder; never a temporary one."""
    home = os.environ.get("DAGSTER_HOME") or str(settings.home_dir / "dagster")
    _write_instance_yaml(Path(home))
    os.environ["DAGSTER_HOME"] = home
    return dg.DagsterInstance.get()


def instance_at(home: Path) -> dg.DagsterInstance:
    """A real, persistent local instance in `home` (an evaluation's own folder), leaving $DAGSTER_HOME alone."""
    _write_instance_yaml(home)
    return dg.DagsterInstance.from_config(str(home))


def _write_instance_yaml(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # a quiet local instance, as the project's deploy/dagster.yaml describes
        config.write_text(INSTANCE_YAML, encoding="utf-8")


def materialize_all(settings: Settings, as_of: date, instance: dg.DagsterInstance | None = None,
                    log_level: str = "WARNING", progress: ProgressPrinter | None = None,
                    full_refresh: bool = False):
    """Run every asset for `as_of`: ingestion of every file in the landing folder, then the rest.
    With `progress`, each stage's line (and the files ingested so far) is printed as the run goes.
    `full_refresh` tags the run so that incremental stages rebuild their tables from all history."""
    return _materialize(settings, as_of, instance, log_level, selection=None, trigger="cli", progress=progress,
                        full_refresh=full_refresh)


def refresh_day(settings: Settings, as_of: date, instance: dg.DagsterInstance | None = None,
                log_level: str = "WARNING", progress: ProgressPrinter | None = None):
    """The daily refresh for one day, past or present: profiles as of that day, then its predictions and
    audiences. A backfill is this, day after day, so each day's audiences see that day's profiles."""
    from crm_pipeline.defs.schedules import daily_refresh_job

    return _materialize(settings, as_of, instance, log_level, selection=daily_refresh_job.selection,
                        trigger="backfill", progress=progress)


def _materialize(settings: Settings, as_of: date, instance: dg.DagsterInstance | None, log_level: str, *,
                 selection, trigger: str, progress: ProgressPrinter | None, full_refresh: bool = False):
    """What `dg.materialize` does (one in-process run of the ephemeral asset job, so runs look the same in
    the UI), with one more logger when progress is wanted: it sees the run's events as they happen."""
    from crm_pipeline.defs.partitions import DAILY
    from crm_pipeline.definitions import ALL_ASSETS

    if not DAILY.has_partition_key(as_of.isoformat()):  # rather than Dagster's unknown-partition traceback
        raise ValueError(f"{as_of} is outside the daily partitions, which run from {DAILY.start.date()} to "
                         f"{DAILY.get_last_partition_key()} (partition_start_date in the settings sets the first)")
    settings = settings.with_overrides(as_of=as_of)
    instance = instance or local_instance(settings)
    loggers = {"console": dg.colored_console_logger}
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if progress is not None:
        loggers[LOGGER_KEY] = progress_logger(progress, ALL_ASSETS)
        run_config["loggers"][LOGGER_KEY] = {}
    tags = {"crm/as_of": as_of.isoformat(), "crm/trigger": trigger}
    if full_refresh:
        tags[FULL_REFRESH_TAG] = "true"
    if selection is None:
        run_config["ops"] = {"ingest_files": {"config": {"paths": []}}}
    defs = dg.Definitions(jobs=[dg.define_asset_job(EPHEMERAL_JOB_NAME, selection=selection)], assets=ALL_ASSETS,
                          resources=default_resources(settings), loggers=loggers)
    try:
        with sqlite_instance_kept_open(instance):  # ~200 events, each committed without a checkpoint
            return defs.resolve_job_def(EPHEMERAL_JOB_NAME).execute_in_process(
                run_config=run_config, instance=instance,
                partition_key=as_of.isoformat(),  # the daily-partitioned stages compute for this day
                raise_on_error=False, tags=tags,
            )
    finally:
        if progress is not None:
            progress.close()


def failed_checks(result) -> list[str]:
    """`failed|warning asset: check: description` for every asset check that did not pass in a run."""
    return [f"{'warning' if e.severity == dg.AssetCheckSeverity.WARN else 'failed'} "
            f"{e.asset_key.to_user_string()}: {e.check_name}: {e.description or ''}".rstrip(": ")
            for e in result.get_asset_check_evaluations() if not e.passed]


def failed_steps(result) -> list[str]:
    return [f"{e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[0]}"
            for e in result.all_events if e.is_step_failure]
