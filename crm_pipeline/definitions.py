"""The one Definitions object: assets, checks, sensors, schedules and resources.

The audiences carry a freshness policy (stale 26 hours after their last refresh), evaluated by the daemon.
"""

from __future__ import annotations

import dagster as dg

from crm_pipeline.defs.audience_assets import materialize_audience_tables
from crm_pipeline.defs.ingest_assets import ingest_files, ingest_job
from crm_pipeline.defs.identity_assets import resolve_identity
from crm_pipeline.defs.predict_assets import predict_customers
from crm_pipeline.defs.profile_assets import build_profile_tables
from crm_pipeline.defs.quality_assets import dq_report, stage_entities
from crm_pipeline.defs.resources import default_resources
from crm_pipeline.defs.scoring_assets import score_contacts
from crm_pipeline.defs.schedules import daily_refresh_job, daily_refresh_schedule, refresh_job
from crm_pipeline.defs.sensors import landing_sensor, refresh_after_ingest_sensor

ALL_ASSETS = [ingest_files, stage_entities, dq_report, resolve_identity, build_profile_tables, predict_customers,
              score_contacts, materialize_audience_tables]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[ingest_job, daily_refresh_job, refresh_job],
    schedules=[daily_refresh_schedule],
    sensors=[landing_sensor, refresh_after_ingest_sensor],
    resources=default_resources(),
    # Every step of a run in the run's own process: the DuckDB file admits one writing process, so steps of one
    # run must not open it side by side, and a run pays for one import of the project instead of one per step.
    executor=dg.in_process_executor,
)
