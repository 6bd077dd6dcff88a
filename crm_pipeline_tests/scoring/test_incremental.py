"""Incremental scoring runs give the tables a full recomputation gives, and redo only the contacts a drop touches.

The landing of the profiles' incremental test goes through the real stages two ways: all at once with full
refreshes, and in three drops (the second on the same day as the first, then a new day with no new file),
each followed by an incremental profile build and scoring run. After every step a full scoring run on a copy
of the warehouse must give the same day's tables and aggregates; at the end the all-at-once warehouse must
too (contact ids through their smallest record key: a fresh warehouse numbers contacts in another order).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.scoring.config import build_config, default_raw
from crm_pipeline.scoring.run import run_scoring
from crm_pipeline.settings import merge_override
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.profiles.test_incremental import D1, D2, D3, STEPS, generated, stage  # noqa: F401 (fixture)
from crm_pipeline_tests.quality.test_incremental import drops, land
from crm_pipeline_tests.conftest import canonical_contact_ids

# Tables of one day (compared as of that day), then the aggregates (compared whole); each with its key.
DAY_KEYS = {"engagement_scores": ["contact_id", "brand"], "contact_preferences": ["contact_id"],
            "channel_preferences": ["contact_id", "brand"], "lifecycle_stages": ["contact_id", "brand"],
            "lifecycle_transitions": ["brand", "from_stage", "to_stage"]}
# Lookbacks short enough that days leave them between the steps (the defaults' two years never do here).
SHORT = build_config(merge_override(default_raw(), {"preferences": {"lookback_days": 20},
                                                    "channel": {"lookback_days": 15, "min_evidence": 1}}, "scoring"))
STATE_KEYS = {"scoring_daily": ["contact_id", "brand", "day"],
              "scoring_daily_values": ["contact_id", "day", "dimension", "value"]}


def tables(engine: sa.Engine, as_of: dt.date) -> dict[str, pd.DataFrame]:
    """The scoring tables of `as_of` and the aggregates, contact ids as their smallest record key, in key order."""
    with engine.connect() as conn:
        canon = canonical_contact_ids(conn)
        frames = {t: pd.read_sql(sa.text(f"SELECT * FROM {t} WHERE as_of = :d"), conn, params={"d": as_of})
                  for t in DAY_KEYS}
        frames.update({t: pd.read_sql(sa.text(f"SELECT * FROM {t}"), conn) for t in STATE_KEYS})
    out = {}
    for name, frame in frames.items():
        if "contact_id" in frame:
            frame["contact_id"] = frame["contact_id"].map(canon)
            assert frame["contact_id"].notna().all(), name  # no row of a contact identity no longer has
        out[name] = frame.sort_values((DAY_KEYS | STATE_KEYS)[name]).reset_index(drop=True)
    return out


def assert_same(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame], when: str) -> None:
    for name in (*DAY_KEYS, *STATE_KEYS):
        assert len(left[name]) > 0 or name == "lifecycle_transitions", name  # a day may have no move
        pd.testing.assert_frame_equal(left[name], right[name], check_exact=False, rtol=0, atol=1e-9,
                                      check_dtype=False, obj=f"{name} ({when})")


def full_run_on_a_copy(engine: sa.Engine, path: Path, as_of: dt.date, config=None) -> dict[str, pd.DataFrame]:
    engine.dispose()  # DuckDB writes everything to the file when its last connection closes
    copy = path.with_name(path.stem + "_copy.duckdb")
    shutil.copyfile(path, copy)
    other = make_engine(f"duckdb:///{copy}")
    assert run_scoring(other, as_of=as_of, config=config, full_refresh=True)["mode"] == "full"
    rebuilt = tables(other, as_of)
    other.dispose()
    copy.unlink()
    return rebuilt


def test_three_drops_and_a_new_day_incrementally_give_the_scores_of_a_full_run(generated, tmp_path):  # noqa: F811
    three = drops(generated)
    path = tmp_path / "step.duckdb"
    step = make_engine(f"duckdb:///{path}")
    figures = []
    for drop, as_of in STEPS:
        if drop is not None:
            land(tmp_path / "step", three[drop])
        stage(step, tmp_path / "step", as_of)
        build_profiles(step, as_of=as_of)
        figures.append(run_scoring(step, as_of=as_of, config=SHORT))
        incremental = tables(step, as_of)
        assert_same(incremental, full_run_on_a_copy(step, path, as_of, SHORT), f"as of {as_of}, drop {drop}")

    assert [f["mode"] for f in figures] == ["full", "incremental", "incremental", "incremental"]
    scored = [f["contacts_scored"] for f in figures]
    assert 0 < figures[1]["contacts_recomputed"] < scored[1]  # the same-day drop redid only its contacts
    new_day = figures[3]
    assert new_day["contacts_by_reason"]["records"] == 0  # no file: nothing touched, only the day moved
    assert new_day["contacts_recomputed"] == new_day["contacts_by_reason"]["new_day"] < scored[3]
    assert figures[1]["contacts_rederived"] < scored[1]  # preferences, channel, lifecycle: only the due contacts
    # a new day with no file writes the rows of the contacts whose values moved, not a copy of everyone's
    written = new_day["rows_written"]
    assert 0 < sum(written.values()) and written["engagement_scores"] < new_day["engagement_rows"]

    # The same landing all at once, staged, profiled and scored with full refreshes, as of the last day.
    full = make_engine(f"duckdb:///{tmp_path / 'full.duckdb'}")
    for files in three:
        land(tmp_path / "full", files)
    stage(full, tmp_path / "full", D3, full_refresh=True)
    build_profiles(full, as_of=D3, full_refresh=True)
    assert run_scoring(full, as_of=D3, config=SHORT, full_refresh=True)["mode"] == "full"
    assert_same(incremental, tables(full, D3), "all at once")
    full.dispose()
    step.dispose()


def test_a_drop_touching_one_contact_recomputes_one_contact(generated, tmp_path):  # noqa: F811
    path = tmp_path / "w.duckdb"
    engine = make_engine(f"duckdb:///{path}")
    first = drops(generated)[0]
    land(tmp_path / "landing", first)
    stage(engine, tmp_path / "landing", D2)
    build_profiles(engine, as_of=D2)
    run_scoring(engine, as_of=D2)
    again = run_scoring(engine, as_of=D2)     # the same day with nothing new: no row written
    assert again["contacts_recomputed"] == 0 and again["rows_written"], again["rows_written"]
    assert not any(again["rows_written"].values()), again["rows_written"]

    # one web event of one visitor, again under a new id: one more product view for that contact, on the latest
    # day of the views up to D2 (the contact's earlier days stay as they are)
    web = next(k for k in first if k.startswith("brand_a/web_events/"))
    events = first[web] if isinstance(first[web], pd.DataFrame) else pd.read_csv(first[web], dtype=str)
    at = pd.to_datetime(events["occurred_at"], utc=True, format="ISO8601", errors="coerce")  # some are invalid
    views = events[(events["event_type"] == "product_view") & (at < pd.Timestamp(D2 + dt.timedelta(days=1), tz="UTC"))]
    one = views.loc[[at[views.index].idxmax()]].assign(event_id="one-more-view")
    day = (at[one.index[0]].date() - dt.date(1970, 1, 1)).days
    land(tmp_path / "landing", {"brand_a/web_events/one_more.csv": one})
    stage(engine, tmp_path / "landing", D2)
    build_profiles(engine, as_of=D2)
    figures = run_scoring(engine, as_of=D2)

    assert (figures["mode"], figures["contacts_recomputed"]) == ("incremental", 1)
    # only that contact's days from the view's on are summed again, not its whole history
    with engine.connect() as conn:
        contact = conn.execute(sa.text("SELECT contact_id FROM identity_map WHERE entity = 'web_events' "
                                       "AND source_key = 'one-more-view'")).scalar_one()
        since, every = conn.execute(sa.text("SELECT SUM(CASE WHEN day >= :day THEN 1 ELSE 0 END), COUNT(*) "
                                            "FROM scoring_daily WHERE contact_id = :c"), {"day": day, "c": contact}).one()
    assert 0 < figures["daily_rows_recomputed"] == since < every
    # a re-run of the day writes by difference: at most that contact's rows (one across brands, one per brand)
    written = figures["rows_written"]
    assert written["contact_preferences"] <= 1
    assert written["channel_preferences"] <= 4 and written["lifecycle_stages"] <= 4
    assert written["engagement_scores"] <= 4  # the ranks of everyone else move in the view, not in the table
    assert_same(tables(engine, D2), full_run_on_a_copy(engine, path, D2), "one more view")
    engine.dispose()


def test_scores_run_before_the_timeline_moved_catch_up_when_it_does(generated, tmp_path):  # noqa: F811
    """A run for a new day ahead of the profile build still reads the old timeline; the next run, after the build,
    redoes the contacts whose timeline the build extended (the timeline's day, not the run's, decides)."""
    path = tmp_path / "w.duckdb"
    engine = make_engine(f"duckdb:///{path}")
    land(tmp_path / "landing", drops(generated)[0])
    stage(engine, tmp_path / "landing", D1)
    build_profiles(engine, as_of=D1)
    run_scoring(engine, as_of=D1)
    ahead = run_scoring(engine, as_of=D2)  # the timeline is still as of D1
    assert ahead["contacts_recomputed"] == 0
    build_profiles(engine, as_of=D2)
    caught_up = run_scoring(engine, as_of=D2)

    assert caught_up["contacts_by_reason"]["new_day"] > 0
    assert_same(tables(engine, D2), full_run_on_a_copy(engine, path, D2), "timeline moved after the run")
    engine.dispose()


def test_the_scoring_asset_is_incremental_unless_the_run_asks_for_a_full_refresh(tmp_path, dagster_instance):
    import dagster as dg

    from crm_pipeline.defs.profile_assets import build_profile_tables
    from crm_pipeline.defs.resources import default_resources
    from crm_pipeline.defs.run_tags import FULL_REFRESH_TAG
    from crm_pipeline.defs.scoring_assets import score_contacts
    from crm_pipeline.settings import Settings
    from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    wh = Warehouse(make_engine(url))
    for n in range(3):
        wh.customer(f"K{n}", f"C{n}", first_name="Ann", updated_at=days_before(10))
        wh.email_event(f"K{n}", "open", days_before(5))
    wh.engine.dispose()
    settings = Settings(home_dir=tmp_path / "home", landing_dir=tmp_path / "landing", warehouse_url=url,
                        as_of=AS_OF)

    def run(tags: dict[str, str]) -> dict:
        result = dg.materialize([build_profile_tables, score_contacts], instance=dagster_instance,
                                resources=default_resources(settings), tags=tags, partition_key=AS_OF.isoformat())
        assert result.success
        event = dagster_instance.get_latest_materialization_event(dg.AssetKey("engagement_scores"))
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        return {k: meta[k] for k in ("mode", "contacts_recomputed", "contacts_scored")}

    assert run({}) == {"mode": "full", "contacts_recomputed": 3, "contacts_scored": 3}
    wh.email_event("K1", "click", days_before(1))
    wh.engine.dispose()
    assert run({}) == {"mode": "incremental", "contacts_recomputed": 1, "contacts_scored": 3}
    assert run({FULL_REFRESH_TAG: "true"}) == {"mode": "full", "contacts_recomputed": 3, "contacts_scored": 3}
