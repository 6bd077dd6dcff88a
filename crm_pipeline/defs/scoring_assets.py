"""Dagster layer for scoring: engagement, preferences, preferred channel and lifecycle, one partition per day."""

import json

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from crm_pipeline.defs.ingest_assets import KINDS, OWNERS
from crm_pipeline.defs.partitions import DAILY
from crm_pipeline.defs.resources import CrmSettingsResource, WarehouseResource, transient_warehouse_errors_retried
from crm_pipeline.defs.run_tags import is_full_refresh
from crm_pipeline.defs.stored_charts import stored_chart
from crm_pipeline.markdown import svg_image, to_markdown
from crm_pipeline.scoring import chart as lifecycle_chart
from crm_pipeline.scoring.config import load_scoring_config
from crm_pipeline.scoring.lifecycle import funnel, stage_counts
from crm_pipeline.scoring.run import run_scoring

GROUP = "scoring"
# profile_360 too: the run fills its engagement, channel and lifecycle columns for the same day.
DEPS = ["timeline", "profile_360", "stg_orders", "stg_order_items", "stg_products", "stg_web_events"]

SPECS = [
    dg.AssetSpec("engagement_scores", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=DEPS, partitions_def=DAILY,
                 description="A table of per-contact engagement scores per brand and across brands as of the day: "
                             "decayed interaction points, change against 7 and 30 days earlier, and a growth band "
                             "from the activity of two equal windows (rising / steady / falling / dormant, "
                             "unknown for a contact with nothing to score)."),
    dg.AssetSpec("contact_preferences", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=DEPS,
                 partitions_def=DAILY,
                 description="A table of what each contact likes as of the day: top categories, brands and price "
                             "bands bought and browsed with shares, purchase channel, email weekday and hour, "
                             "discount taken."),
    dg.AssetSpec("channel_preferences", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=["engagement_scores"],
                 partitions_def=DAILY,
                 description="A table of the channel each contact buys through (web, app, store, marketplace, "
                             "email), from conversions, with the counts beside the choice; unknown with the reason "
                             "when the evidence is thin, tied or absent."),
    dg.AssetSpec("lifecycle_stages", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=["engagement_scores"],
                 partitions_def=DAILY,
                 description="A table of each contact's lifecycle stage per brand on the day (prospect, first-time, "
                             "repeat, loyal, lapsing, lapsed, won back, or unknown with the reason) and since when."),
    dg.AssetSpec("lifecycle_transitions", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=["lifecycle_stages"],
                 partitions_def=DAILY,
                 description="A table of moves between lifecycle stages per day and brand (from, to, contacts)."),
]


@dg.multi_asset(specs=SPECS, name="score_contacts", partitions_def=DAILY, check_specs=[
    dg.AssetCheckSpec("timeline_covers_the_day", asset="engagement_scores",
                      description="The timeline the scores read is built as of the partition's day or later, "
                                  "so no interaction up to the day is missing."),
])
def score_contacts(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                   crm_settings: CrmSettingsResource):
    """Engagement, preferences, preferred channel and lifecycle for the partition's day, from data up to it."""
    settings = crm_settings.load()
    as_of = crm_settings.as_of_date(context.partition_key)
    config = load_scoring_config(settings.scoring_config or None)
    with transient_warehouse_errors_retried(context):
        result = run_scoring(warehouse.engine, as_of=as_of, config=config, truth_dir=settings.truth_path,
                             full_refresh=is_full_refresh(context))
    with warehouse.engine.connect() as conn:
        moves = funnel(conn, config, as_of=as_of, days=config.funnel_days, from_aggregates=True)
        stages = stage_counts(conn, as_of)
        day_rows = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t} WHERE as_of = :d"), {"d": as_of}).scalar_one()
                    for t in ("lifecycle_stages", "lifecycle_transitions")}
    chart = stored_chart(settings.home_dir / "charts" / as_of.isoformat(), "lifecycle_moves.svg",
                         f"{lifecycle_chart.VERSION}|{as_of}|{config.funnel_days}\n{moves.to_csv(index=False)}",
                         lambda: lifecycle_chart.transitions_svg(moves, as_of, config.funnel_days))
    yield dg.MaterializeResult(asset_key="engagement_scores", metadata={
        "dagster/row_count": result["engagement_rows"], "contacts_scored": result["contacts_scored"],
        "growth_bands": dg.MetadataValue.md(to_markdown(_counts(result["growth_bands"], "growth_band"))),
        "profiles_updated": result["profiles_updated"],
        "mode": result["mode"], "contacts_recomputed": result["contacts_recomputed"],
        "contacts_rederived": result["contacts_rederived"],
        "daily_rows_recomputed": result["daily_rows_recomputed"],  # a drop sums again only the days it changed
        "contacts_by_reason": dg.MetadataValue.json(result["contacts_by_reason"]),
        # the rows written by difference per table (the tables are kept as validity intervals)
        "rows_written": dg.MetadataValue.json(result["rows_written"]) if result["rows_written"] else "whole day",
        "seconds": dg.MetadataValue.json(result["step_seconds"]),
    })
    yield dg.MaterializeResult(asset_key="contact_preferences",
                               metadata={"dagster/row_count": result["contacts_with_preferences"]})
    yield dg.MaterializeResult(asset_key="channel_preferences", metadata={
        "dagster/row_count": result["channel_rows"],
        "preferred_channels": dg.MetadataValue.md(to_markdown(_counts(result["preferred_channels"], "channel"))),
        "evidence": dg.MetadataValue.json(result["channel_evidence"]),
        "channel_vs_truth": dg.MetadataValue.json(json.loads(json.dumps(result["channel_vs_truth"]))),
    })
    yield dg.MaterializeResult(asset_key="lifecycle_stages", metadata={
        "dagster/row_count": int(day_rows["lifecycle_stages"]),
        "stages_across_brands": dg.MetadataValue.md(to_markdown(stages)),
        "unknown_reasons": dg.MetadataValue.json(result["unscored_reasons"]),
    })
    yield dg.MaterializeResult(asset_key="lifecycle_transitions", metadata={
        "dagster/row_count": int(day_rows["lifecycle_transitions"]),
        "moves_today": result["transitions_today"],
        f"moves_last_{config.funnel_days}_days": dg.MetadataValue.md(to_markdown(moves)),
        "chart": dg.MetadataValue.md(svg_image(chart, "lifecycle moves")),
    })
    yield dg.AssetCheckResult(check_name="timeline_covers_the_day", asset_key="engagement_scores",
                              passed=result["note"] is None, severity=dg.AssetCheckSeverity.WARN,
                              description=result["note"], metadata={"timeline_as_of": str(result["timeline_as_of"])})


def _counts(counts: dict, name: str) -> pd.DataFrame:
    return pd.DataFrame({name: list(counts), "contacts": list(counts.values())})
