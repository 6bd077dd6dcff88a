"""Dagster layer for audiences: daily membership snapshots and entered/exited history."""

from datetime import timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from crm_pipeline.audiences import chart as sizes_chart
from crm_pipeline.audiences.export import list_audiences
from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline.defs.ingest_assets import KINDS, OWNERS
from crm_pipeline.defs.partitions import DAILY
from crm_pipeline.defs.resources import CrmSettingsResource, WarehouseResource, transient_warehouse_errors_retried
from crm_pipeline.defs.run_tags import is_full_refresh
from crm_pipeline.defs.stored_charts import stored_chart
from crm_pipeline.markdown import svg_image, to_markdown

GROUP = "audiences"
DEPS = ["profile_360", "timeline", "predictions", "engagement_scores", "channel_preferences", "lifecycle_stages"]

# The daily refresh runs at 05:00 UTC; 26 hours leaves two hours' grace before audiences count as stale.
# The daemon evaluates it and the UI shows it on the asset (fresh / stale, when last refreshed).
AUDIENCES_FRESH_WITHIN = timedelta(hours=26)
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=AUDIENCES_FRESH_WITHIN)

SPECS = [
    dg.AssetSpec("audience_members", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=DEPS, partitions_def=DAILY,
                 freshness_policy=FRESHNESS,
                 description="A table of who is in each audience on the day (all brands and per brand), with the "
                             "fields an export needs; consent and suppression applied."),
    dg.AssetSpec("audience_history", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=DEPS, partitions_def=DAILY,
                 freshness_policy=FRESHNESS,
                 description="A table of entered / exited events per contact and audience, against the previous day."),
]


@dg.multi_asset(specs=SPECS, name="materialize_audience_tables", partitions_def=DAILY)
def materialize_audience_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                                crm_settings: CrmSettingsResource):
    """Every audience for the partition's day: whole on a new day, a re-run (a drop) only for the contacts whose
    inputs moved; the same rows either way."""
    settings = crm_settings.load()
    as_of = crm_settings.as_of_date(context.partition_key)
    with transient_warehouse_errors_retried(context):
        sizes = materialize_audiences(warehouse.engine, as_of=as_of, audiences_file=settings.audiences_config or None,
                                      full_refresh=is_full_refresh(context))
    with warehouse.engine.connect() as conn:
        listing = list_audiences(conn, as_of)
        sizes_by_day = sizes_chart.sizes_over_time(conn, as_of)
        history = pd.read_sql(sa.text(
            "SELECT event, COUNT(*) AS contacts FROM audience_history WHERE as_of = :d GROUP BY event ORDER BY event"),
            conn, params={"d": as_of})
    chart = stored_chart(settings.home_dir / "charts" / as_of.isoformat(), "audience_sizes.svg",
                         f"{sizes_chart.VERSION}|{as_of}\n{sizes_by_day.to_csv(index=False)}",
                         lambda: sizes_chart.sizes_over_time_svg(sizes_by_day, as_of))
    across = listing[listing["brand_scope"] == ""]
    yield dg.MaterializeResult(asset_key="audience_members", metadata={
        "dagster/row_count": int(sizes["size"].sum()), "audiences": len(sizes),
        # a re-run of the day (a drop) writes only the rows that changed; a new day is written whole
        "rows_written": "whole day" if sizes.attrs["members_written"] is None else sizes.attrs["members_written"],
        # a drop recomputes only the contacts whose rule outcomes, consent, details or predictions moved
        "mode": sizes.attrs["mode"], "reason": sizes.attrs["reason"],
        "contacts_recomputed": int(sizes.attrs["contacts_recomputed"]),
        "sizes": dg.MetadataValue.md(to_markdown(across[["audience", "size", "change", "entered", "exited", "note"]])),
        "sizes_per_brand": dg.MetadataValue.md(to_markdown(
            listing[listing["brand_scope"] != ""][["audience", "size", "change"]])),
        "sizes_last_90_days": dg.MetadataValue.md(svg_image(chart, "audience sizes")),
    })
    yield dg.MaterializeResult(asset_key="audience_history", metadata={
        # the partition's rows: counting the whole table would grow with every day kept
        "dagster/row_count": int(history["contacts"].sum()),
        "entered": int(sizes["entered"].sum()), "exited": int(sizes["exited"].sum()),
        "rows_written": sizes.attrs["history_written"],
        "events_this_day": dg.MetadataValue.md(to_markdown(history)),
    })
