"""The scoring assets on a small generated warehouse: materialized on a real Dagster instance, then audiences."""

from __future__ import annotations

import base64
import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline.defs.audience_assets import materialize_audience_tables
from crm_pipeline.defs.profile_assets import build_profile_tables
from crm_pipeline.defs.resources import CrmSettingsResource, WarehouseResource
from crm_pipeline.defs.scoring_assets import score_contacts
from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.resolve import resolve_identities
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.quality.publish import publish
from crm_pipeline.quality.typing_run import type_new_files
from crm_pipeline.synth.generate import generate
from crm_pipeline.warehouse.engine import make_engine

END = dt.date(2025, 6, 30)
NOW = dt.datetime(2025, 7, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def warehouse_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    generate(root / "gen", people=300, brands=2, days=400, end_date=END)
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    engine = make_engine(url)
    ingest_folder(engine, LandingFolder(root / "gen" / "landing"), now=NOW)
    type_new_files(engine, now=NOW)
    publish(engine, hold_share=0.05)
    resolve_identities(engine, as_of=END, config=load_identity_config(), find_pairs=None)
    engine.dispose()
    return url, root


def test_scoring_assets_materialize_for_a_day(warehouse_url, dagster_instance):
    url, root = warehouse_url
    resources = {"warehouse": WarehouseResource(url=url),
                 "crm_settings": CrmSettingsResource(warehouse_url=url, home_dir=str(root / "home"),
                                                     landing_dir=str(root / "gen" / "landing"),
                                                     as_of=END.isoformat())}
    result = dg.materialize([build_profile_tables, score_contacts], instance=dagster_instance, resources=resources,
                            partition_key=END.isoformat())
    assert result.success
    metadata = {m.asset_key.to_user_string(): m.step_materialization_data.materialization.metadata
                for m in result.get_asset_materialization_events()}
    assert metadata["engagement_scores"]["dagster/row_count"].value > 300
    assert "| growth_band | contacts |" in metadata["engagement_scores"]["growth_bands"].value
    assert "| channel | contacts |" in metadata["channel_preferences"]["preferred_channels"].value
    assert "| from_stage | to_stage | contacts |" in metadata["lifecycle_transitions"]["moves_last_90_days"].value
    chart = metadata["lifecycle_transitions"]["chart"].value
    assert chart.startswith("![lifecycle moves](data:image/svg+xml;base64,") and chart.endswith(")")
    svg = base64.b64decode(chart.removeprefix("![lifecycle moves](data:image/svg+xml;base64,")[:-1]).decode()
    moves = [line.strip("| ").split(" | ")
             for line in metadata["lifecycle_transitions"]["moves_last_90_days"].value.splitlines()[2:]]
    assert moves and all(f">{a} -&gt; {b}</text>" in svg and f">{int(n):,}</text>" in svg for a, b, n in moves)
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("timeline_covers_the_day", True)]

    # The day again with nothing new: no row written, and the same chart, read back rather than drawn again.
    stored = root / "home" / "charts" / END.isoformat() / "lifecycle_moves.svg"
    drawn_at = stored.stat().st_mtime_ns
    again = dg.materialize([score_contacts], instance=dagster_instance, resources=resources,
                           partition_key=END.isoformat())
    rerun = {m.asset_key.to_user_string(): m.step_materialization_data.materialization.metadata
             for m in again.get_asset_materialization_events()}
    assert not any(rerun["engagement_scores"]["rows_written"].value.values())
    assert rerun["lifecycle_transitions"]["chart"] == metadata["lifecycle_transitions"]["chart"]
    assert stored.stat().st_mtime_ns == drawn_at

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            def one(sql):
                return conn.execute(sa.text(sql), {"d": END}).scalar_one()
            contacts = one("SELECT COUNT(*) FROM profile_360")
            scored = one("SELECT COUNT(*) FROM profile_360 WHERE engagement_score IS NOT NULL")
            staged = one("SELECT COUNT(*) FROM lifecycle_stages WHERE as_of = :d AND brand = ''")
            buyers = one("SELECT COUNT(*) FROM profile_360 WHERE order_count > 0")
            never = one("SELECT COUNT(*) FROM lifecycle_stages WHERE as_of = :d AND brand = '' "
                        "AND stage NOT IN ('prospect', 'unknown') AND purchase_count = 0")
            unexplained = one("SELECT COUNT(*) FROM lifecycle_stages WHERE as_of = :d AND brand = '' "
                              "AND stage = 'unknown' AND reason IS NULL")
        assert scored == contacts and staged == contacts  # every contact: a stage, or unknown with a reason
        assert never == 0 and buyers > 0 and unexplained == 0  # only prospects have no purchase
        sizes = materialize_audiences(engine, as_of=END).set_index("audience")
    finally:
        engine.dispose()
    channel_sizes = sizes.loc[["preferred_channel_email", "preferred_channel_web", "preferred_channel_store"]]
    assert (channel_sizes["kind"] == "predictive").all() and channel_sizes["size"].sum() > 0
    assert metadata["channel_preferences"]["channel_vs_truth"].value["status"] == "ok"   # truth/ beside landing
    assert 0 < sizes.loc["engaged_top_5pct", "size"] <= 0.06 * scored
    per_brand = [name for name in sizes.index if name.endswith(":engagement_rising")]
    assert len(per_brand) == 2 and (sizes.loc[per_brand, "kind"] == "engagement").all()  # one per brand


def test_an_audience_rerun_with_nothing_new_writes_no_row_and_shows_the_stored_chart(warehouse_url,
                                                                                       dagster_instance):
    url, root = warehouse_url
    resources = {"warehouse": WarehouseResource(url=url),
                 "crm_settings": CrmSettingsResource(warehouse_url=url, home_dir=str(root / "home"),
                                                     landing_dir=str(root / "gen" / "landing"),
                                                     as_of=END.isoformat())}
    stored = root / "home" / "charts" / END.isoformat() / "audience_sizes.svg"
    shown, drawn_at = [], []
    for _ in range(2):
        result = dg.materialize([build_profile_tables, score_contacts, materialize_audience_tables],
                                instance=dagster_instance, resources=resources, partition_key=END.isoformat())
        assert result.success
        metadata = {m.asset_key.to_user_string(): m.step_materialization_data.materialization.metadata
                    for m in result.get_asset_materialization_events()}
        shown.append(metadata["audience_members"]["sizes_last_90_days"].value)
        drawn_at.append(stored.stat().st_mtime_ns)
    prefix = "![audience sizes](data:image/svg+xml;base64,"
    assert shown[0].startswith(prefix) and shown[0].endswith(")") and shown[1] == shown[0]
    svg = base64.b64decode(shown[0].removeprefix(prefix)[:-1]).decode()
    assert svg == stored.read_text() and f"Audience sizes, last 90 days to {END}</text>" in svg
    sizes = [line.strip("| ").split(" | ")[:2]
             for line in metadata["audience_members"]["sizes"].value.splitlines()[2:]]
    name, size = max(sizes, key=lambda row: int(row[1]))
    assert f">{name} ({int(size):,})</text>" in svg                    # the largest audience, with its size
    assert drawn_at[1] == drawn_at[0]                                 # read back, not drawn again
    assert metadata["audience_members"]["rows_written"].value == 0    # the day stands: nothing rewritten
    assert metadata["audience_history"]["rows_written"].value == 0
    assert metadata["audience_members"]["mode"].value == "incremental"   # the same day again: no contact moved
    assert metadata["audience_members"]["contacts_recomputed"].value == 0
