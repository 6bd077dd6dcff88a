"""Dagster layer for profiles: golden records, the 360 profile and the timeline."""

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from crm_pipeline.defs.ingest_assets import KINDS, OWNERS
from crm_pipeline.defs.resources import CrmSettingsResource, WarehouseResource, transient_warehouse_errors_retried
from crm_pipeline.defs.run_tags import is_full_refresh
from crm_pipeline.markdown import to_markdown
from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.progress import log_part

GROUP = "identity"
DEPS = ["contacts", "identity_map", "stg_customers", "stg_subscribers", "stg_orders", "stg_order_items",
        "stg_products", "stg_email_events", "stg_web_events"]

SPECS = [
    dg.AssetSpec("golden_records", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=DEPS,
                 description="A table of each contact's best value per field, chosen by the survivorship rules "
                             "(most recent, most frequent, or source priority), with where it came from."),
    dg.AssetSpec("profile_360", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=DEPS,
                 description="One row per contact: golden fields, brands, orders, revenue, engagement, "
                             "consent; per-brand figures in profile_360_brand."),
    dg.AssetSpec("timeline", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=DEPS,
                 description="One row per interaction (order, return, subscription change, email, browse), "
                             "ordered per contact."),
]


@dg.multi_asset(specs=SPECS, name="build_profile_tables")
def build_profile_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                         crm_settings: CrmSettingsResource):
    """Bring golden records, profile_360(_brand) and the timeline to the run's day: the partition of a
    scheduled or backfilled daily refresh (so that day's audiences see that day's profiles), else today.
    Only the contacts touched since the last build or moved by the new day are recomputed, most by taking in
    their new records (`contacts_rebuilt_whole` were rebuilt from all their records); a run tagged
    crm/full_refresh=true, or an earlier day than the last build's, rebuilds every contact. Each step is logged
    as it finishes ('profiles: timeline 176.0 s'): a full build at 1M people runs for minutes."""
    settings = crm_settings.load()
    as_of = crm_settings.as_of_date(context.run.tags.get("dagster/partition"))
    with transient_warehouse_errors_retried(context):
        figures = build_profiles(warehouse.engine, as_of=as_of, full_refresh=is_full_refresh(context),
                                 survivorship_file=settings.survivorship_config or None,
                                 on_step=lambda name, seconds: log_part(context.log, "profiles", name, seconds))
    steps = dg.MetadataValue.json({k: round(v, 2) for k, v in figures.get("step_seconds", {}).items()})
    with warehouse.engine.connect() as conn:
        per_brand = pd.read_sql(sa.text("SELECT brand, COUNT(*) AS contacts, SUM(order_count) AS orders "
                                        "FROM profile_360_brand GROUP BY brand ORDER BY brand"), conn)
    yield dg.MaterializeResult(asset_key="golden_records", metadata={"dagster/row_count": figures["golden_values"]})
    yield dg.MaterializeResult(asset_key="profile_360", metadata={
        "dagster/row_count": figures["contacts_profiled"], "contact_brand_rows": figures["contact_brand_rows"],
        "per_brand": dg.MetadataValue.md(to_markdown(per_brand)),
        "as_of": str(figures["as_of"]), "seconds": steps,
        "mode": figures["mode"], "contacts_recomputed": figures["contacts_recomputed"],
        "contacts_rebuilt_whole": figures["contacts_rebuilt_whole"],
        "contacts_browse_only": figures["contacts_browse_only"],
        "contacts_windows_only": figures["contacts_windows_only"],
        "recompute_reason": figures["reason"], "contact_slices": figures["contact_slices"]})
    yield dg.MaterializeResult(asset_key="timeline", metadata={"dagster/row_count": figures["timeline_rows"]})
