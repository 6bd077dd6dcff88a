"""The daily refresh: audiences move with the calendar even when no file lands."""

import dagster as dg

from crm_pipeline.defs.audience_assets import materialize_audience_tables
from crm_pipeline.defs.ingest_assets import ingest_files
from crm_pipeline.defs.predict_assets import predict_customers
from crm_pipeline.defs.scoring_assets import score_contacts

# Profiles are rebuilt as of the run's day by the same job (they are not partitioned: one current snapshot).
daily_refresh_job = dg.define_asset_job(
    "daily_refresh",
    selection=dg.AssetSelection.assets(predict_customers, score_contacts, materialize_audience_tables)
    | dg.AssetSelection.assets("golden_records", "profile_360", "timeline"),
    description="Rebuild profiles, predictions and audiences for today's partition.",
)

daily_refresh_schedule = dg.build_schedule_from_partitioned_job(
    daily_refresh_job, hour_of_day=5, minute_of_hour=0, default_status=dg.DefaultScheduleStatus.RUNNING,
)


# Everything after ingestion, for the refresh once new files have loaded.
refresh_job = dg.define_asset_job(
    "refresh_after_ingest",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(ingest_files),
    description="Staging, identity, profiles, predictions and audiences for today, after new files loaded.",
)
