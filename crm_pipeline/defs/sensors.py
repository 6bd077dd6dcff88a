"""The landing sensor: one run per new file, keyed by the file's content hash."""

import time
from datetime import datetime, timezone

import dagster as dg

from crm_pipeline.defs.ingest_assets import ingest_job
from crm_pipeline.defs.resources import CrmSettingsResource, LandingResource
from crm_pipeline.defs.schedules import refresh_job
from crm_pipeline.landing.settle import IngestActivity, refresh_due
from crm_pipeline.landing.watch import WatchState, mark_requested, plan_tick


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches the landing folder; requests an ingest run per new stable file "
                       "(run key = sha256, so the same bytes load once under any name).")
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingResource,
                   crm_settings: CrmSettingsResource) -> dg.SensorResult:
    settings = crm_settings.load()
    state = WatchState.loads(context.cursor)
    folder = landing.folder()
    page_start = state.after
    page = folder.scan(after=page_start, limit=settings.sensor_page_size)
    ready, state = plan_tick(state, page.files, page_start=page_start, next_after=page.next_after,
                             now_ns=time.time_ns(), settle_seconds=settings.settle_seconds)
    for path, reason in page.refused:
        context.log.warning(f"not reading {path}: {reason}")
    requests = []
    for landed in ready:
        sha = folder.sha256(landed.path)
        requests.append(dg.RunRequest(
            run_key=sha,
            run_config={"ops": {"ingest_files": {"config": {"paths": [landed.path]}}}},
            tags={"crm/path": landed.path, "crm/sha256": sha},
        ))
    state = mark_requested(state, ready)
    skip = None if requests else (
        f"no new stable files ({len(state.pending)} still settling, {len(page.in_progress)} in progress)"
    )
    return dg.SensorResult(run_requests=requests, cursor=state.dumps(), skip_reason=skip)


@dg.sensor(job=refresh_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="After new files loaded (and no more ingestion is queued), refreshes everything "
                       "downstream for today's partition, so drops flow through to audiences unattended.")
def refresh_after_ingest_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    done = instance.get_run_records(
        filters=dg.RunsFilter(job_name=ingest_job.name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
    pending = instance.get_runs_count(dg.RunsFilter(job_name=ingest_job.name, statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED]))
    newest = done[0] if done else None
    activity = IngestActivity(newest.dagster_run.run_id if newest else None,
                              newest.end_time or 0.0 if newest else 0.0, pending)
    refreshed_up_to = float(context.cursor or 0)
    if not refresh_due(activity, refreshed_up_to):
        return dg.SensorResult(skip_reason="no ingestion finished since the last refresh, or more is queued",
                               cursor=context.cursor)
    today = datetime.now(timezone.utc).date().isoformat()
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"refresh-after-{activity.newest_success_id}", partition_key=today,
                                    tags={"crm/trigger": "files landed"})],
        cursor=str(activity.newest_success_at),
    )
