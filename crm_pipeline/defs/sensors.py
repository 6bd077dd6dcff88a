"""The landing sensor: one run per new file content, keyed by the content hash; none for a content the
warehouse already has, whoever loaded it."""

import os
import time
from datetime import datetime, timezone

import dagster as dg

from crm_pipeline.defs.ingest_assets import ingest_job
from crm_pipeline.defs.resources import CrmSettingsResource, LandingResource
from crm_pipeline.defs.schedules import refresh_job
from crm_pipeline.landing.known import WarehouseUnreadable, known_contents
from crm_pipeline.landing.scan import LandedFile, LandingFolder
from crm_pipeline.landing.settle import IngestActivity, refresh_due
from crm_pipeline.landing.watch import WatchState, mark_requested, plan_tick, resume_after

# Dagster cancels a sensor evaluation after 60 s; hashing stops well before, the rest waits for the next tick.
HASHING_BUDGET_SECONDS = 20.0
# How often the landing sensor looks (the refresh sensor looks half as often); read when the code loads,
# so a test or an impatient deployment can set CRM_SENSOR_INTERVAL_SECONDS before starting Dagster.
LANDING_INTERVAL_SECONDS = int(os.environ.get("CRM_SENSOR_INTERVAL_SECONDS", "30"))


@dg.sensor(job=ingest_job, minimum_interval_seconds=LANDING_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches the landing folder; requests an ingest run per new stable file "
                       "(run key = sha256, so the same bytes load once under any name), none for a file whose "
                       "bytes the warehouse's files manifest already holds.")
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
    hashed = _hash_within_budget(folder, ready, HASHING_BUDGET_SECONDS)
    if len(hashed) < len(ready):  # out of time: the next tick starts right after the last file hashed
        state = resume_after(state, hashed[-1][0].path if hashed else page_start)
        context.log.info(f"hashed {len(hashed)} of {len(ready)} ready files; the rest go on the next tick")
    contents = _by_content(hashed)
    known = _already_loaded(context, settings.warehouse_url, contents)
    requests = [
        dg.RunRequest(
            run_key=sha,
            run_config={"ops": {"ingest_files": {"config": {"paths": [f.path for f in same]}}}},
            tags={"crm/path": same[0].path, "crm/sha256": sha},
        )
        for sha, same in contents.items() if sha not in known
    ]
    state = mark_requested(state, [landed for landed, _ in hashed])  # known ones too: not hashed again
    in_warehouse = sum(len(contents[sha]) for sha in known)
    if in_warehouse and requests:
        context.log.info(f"{in_warehouse} ready file(s) already in the warehouse: no run for them")
    skip = None if requests else (
        f"no new stable files ({f'{in_warehouse} already in the warehouse, ' if in_warehouse else ''}"
        f"{len(state.pending)} still settling, {len(page.in_progress)} in progress)"
    )
    return dg.SensorResult(run_requests=requests, cursor=state.dumps(), skip_reason=skip)


def _hash_within_budget(folder: LandingFolder, ready: list[LandedFile],
                        budget_seconds: float) -> list[tuple[LandedFile, str]]:
    """(file, sha256) for the ready files in path order, stopping once the time budget is spent."""
    deadline = time.monotonic() + budget_seconds
    hashed = []
    for landed in ready:
        if hashed and time.monotonic() > deadline:
            break
        try:
            hashed.append((landed, folder.sha256(landed.path)))
        except FileNotFoundError:  # moved away since the scan: nothing to load
            continue
    return hashed


def _already_loaded(context: dg.SensorEvaluationContext, warehouse_url: str,
                    contents: dict[str, list[LandedFile]]) -> set[str]:
    """The contents the warehouse's manifest holds. When it cannot be read now (a run holds the DuckDB file),
    none is taken as known: the runs are requested and their ingestion skips what is loaded."""
    try:
        return known_contents(warehouse_url, contents)
    except WarehouseUnreadable as exc:
        context.log.info(f"warehouse not readable now ({exc}); requesting {len(contents)} run(s) unchecked")
        return set()


def _by_content(hashed: list[tuple[LandedFile, str]]) -> dict[str, list[LandedFile]]:
    """Files of one tick grouped by content: copies dropped together ride in the run of the first,
    which loads it once and records the others as duplicates (one run key per content)."""
    groups: dict[str, list[LandedFile]] = {}
    for landed, sha in hashed:
        groups.setdefault(sha, []).append(landed)
    return groups


@dg.sensor(job=refresh_job, minimum_interval_seconds=2 * LANDING_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING,
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
