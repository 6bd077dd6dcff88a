"""Incremental profile builds give the tables a full rebuild gives, and redo only the contacts a drop touches.

A small generated landing goes through the real stages (ingest, typing, publish, identity) two ways:
all at once with a full profile build, and in three drops with incremental builds, the second drop on
the same day as the first and a last build on a new day with no new file (windows move, records dated
after the earlier days come in). After every incremental build a full rebuild of a copy of the same
warehouse must give the same tables; at the end the all-at-once warehouse must too (contact ids through
a canonical key: a fresh warehouse numbers contacts in another order).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.resolve import resolve_identities
from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.quality.publish import publish
from crm_pipeline.synth.generate import generate
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.quality.test_incremental import drops, land, load
from crm_pipeline_tests.conftest import canonical_contact_ids

D1, D2, D3 = dt.date(2025, 6, 20), dt.date(2025, 6, 30), dt.date(2025, 8, 15)
# (drop index or None for a day without files, the build's as-of day)
STEPS = [(0, D1), (1, D1), (2, D2), (None, D3)]
KEYS = {"golden_records": ["contact_id", "field"], "profile_360": ["contact_id"],
        "profile_360_brand": ["contact_id", "brand"], "timeline": ["contact_id", "event_number"],
        "contact_daily": ["contact_id", "brand", "day"]}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(out, people=300, brands=2, days=120, seed=5, end_date="2025-06-30")
    return out / "landing"


def stage(engine: sa.Engine, landing: Path, as_of: dt.date, *, full_refresh: bool = False) -> None:
    load(engine, landing)
    publish(engine, hold_share=0.05, full_refresh=full_refresh)
    resolve_identities(engine, as_of=as_of, config=load_identity_config())


def tables(engine: sa.Engine) -> dict[str, pd.DataFrame]:
    """The profile tables, contact ids replaced by their smallest record key, rows in key order."""
    with engine.connect() as conn:
        canon = canonical_contact_ids(conn)
        frames = {t: pd.read_sql(sa.text(f"SELECT * FROM {t}"), conn) for t in KEYS}
    out = {}
    for name, frame in frames.items():
        frame["contact_id"] = frame["contact_id"].map(canon)
        assert frame["contact_id"].notna().all(), name  # no row of a contact identity no longer has
        out[name] = frame.sort_values(KEYS[name]).reset_index(drop=True)
    return out


def assert_same(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame], when: str) -> None:
    for name in KEYS:
        pd.testing.assert_frame_equal(left[name], right[name], check_exact=False, rtol=0, atol=1e-9,
                                      obj=f"{name} ({when})")


def full_rebuild_of_a_copy(engine: sa.Engine, path: Path, as_of: dt.date) -> dict[str, pd.DataFrame]:
    engine.dispose()  # DuckDB writes everything to the file when its last connection closes
    copy = path.with_name(path.stem + "_copy.duckdb")
    shutil.copyfile(path, copy)
    other = make_engine(f"duckdb:///{copy}")
    assert build_profiles(other, as_of=as_of, full_refresh=True)["mode"] == "full"
    rebuilt = tables(other)
    rebuilt["file_summaries"] = file_summaries(other)
    other.dispose()
    copy.unlink()
    return rebuilt


def file_summaries(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text("SELECT * FROM profile_source_files ORDER BY source, _file_id"), conn)


def relay_choices(engine: sa.Engine) -> dict[str, int]:
    """Contacts by how their golden email relates to the generator's marketplace relays (all records counted)."""
    relay = "LIKE '%.relay.marketplace.example'"
    emails = " UNION ALL ".join(
        f"SELECT m.contact_id, LOWER(TRIM(s.email)) AS email FROM stg_{entity} s JOIN identity_map m "
        f"ON m.entity = '{entity}' AND m.brand = s._brand AND m.source_key = s.{key}"
        for entity, key in (("customers", "customer_id"), ("subscribers", "subscriber_id"), ("orders", "order_id")))
    with engine.connect() as conn:
        row = conn.execute(sa.text(f"""
            WITH per AS (
                SELECT contact_id, SUM(CASE WHEN email {relay} THEN 1 ELSE 0 END) AS relays,
                       SUM(CASE WHEN email {relay} THEN 0 ELSE 1 END) AS others
                FROM ({emails}) e WHERE email <> '' GROUP BY contact_id)
            SELECT SUM(CASE WHEN g.value {relay} AND p.others > 0 THEN 1 ELSE 0 END) AS relay_over_other,
                   SUM(CASE WHEN p.relays > p.others AND p.others > 0 AND g.value NOT {relay} THEN 1 ELSE 0 END)
                       AS other_despite_more_relay_records,
                   SUM(CASE WHEN p.others = 0 AND g.value {relay} THEN 1 ELSE 0 END) AS relay_only_kept
            FROM golden_records g JOIN per p ON p.contact_id = g.contact_id WHERE g.field = 'email'""")).one()
    return {k: int(v or 0) for k, v in row._mapping.items()}


def test_three_drops_and_a_new_day_incrementally_give_the_tables_of_a_full_rebuild(generated, tmp_path):
    three = drops(generated)
    path = tmp_path / "step.duckdb"
    step = make_engine(f"duckdb:///{path}")
    figures = []
    for drop, as_of in STEPS:
        if drop is not None:
            land(tmp_path / "step", three[drop])
        stage(step, tmp_path / "step", as_of)
        figures.append(build_profiles(step, as_of=as_of))
        incremental, summaries = tables(step), file_summaries(step)
        rebuilt = full_rebuild_of_a_copy(step, path, as_of)
        assert_same(incremental, rebuilt, f"as of {as_of}, drop {drop}")
        # the per-file summaries the incremental builds kept are those a full build writes
        assert set(summaries["source"]) == {"profile_sources", "profile_line_sources"}
        pd.testing.assert_frame_equal(summaries, rebuilt["file_summaries"], obj=f"summaries as of {as_of}")

    assert [f["mode"] for f in figures] == ["full", "incremental", "incremental", "incremental"]
    profiled = [f["contacts_profiled"] for f in figures]
    assert 0 < figures[1]["contacts_recomputed"] < profiled[1]  # the same-day drop redid only its contacts
    new_day = figures[3]
    by_reason = new_day["contacts_by_reason"]
    assert by_reason["records"] == 0  # no file: nothing touched, only the day moved
    # the days after D2 hold no record: only opens and clicks leaving a window make contacts due
    assert (by_reason["new_day"], by_reason["catalogue"]) == (0, 0)
    assert 0 < by_reason["windows"] == new_day["contacts_recomputed"] < profiled[3]
    assert (incremental["profile_360"]["as_of"] == D3).all() and (incremental["timeline"]["as_of"] == D3).all()

    # The same landing all at once, staged and profiled with full refreshes, as of the last day.
    full = make_engine(f"duckdb:///{tmp_path / 'full.duckdb'}")
    for files in three:
        land(tmp_path / "full", files)
    stage(full, tmp_path / "full", D3, full_refresh=True)
    assert build_profiles(full, as_of=D3, full_refresh=True)["mode"] == "full"
    assert_same(incremental, tables(full), "all at once")
    # the golden email is a marketplace relay only for contacts without another address, even where the relay
    # records outnumber the others (the generator's marketplace orders carry one)
    relays = relay_choices(full)
    assert relays["relay_over_other"] == 0
    assert relays["other_despite_more_relay_records"] > 0 and relays["relay_only_kept"] > 0
    full.dispose()
    step.dispose()


def test_a_drop_touching_one_contact_recomputes_one_contact(generated, tmp_path):
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    first = drops(generated)[0]
    land(tmp_path / "landing", first)
    stage(engine, tmp_path / "landing", D2)
    build_profiles(engine, as_of=D2)

    customer = first["brand_a/customers/customers_full.csv"].iloc[[5]]
    land(tmp_path / "landing", {"brand_a/customers/one_change.csv": customer.assign(address_line2="Apt 9")})
    stage(engine, tmp_path / "landing", D2)
    figures = build_profiles(engine, as_of=D2)

    assert (figures["mode"], figures["contacts_recomputed"]) == ("incremental", 1)
    with engine.connect() as conn:
        golden = conn.execute(sa.text(
            "SELECT g.value FROM golden_records g JOIN identity_map m ON m.contact_id = g.contact_id "
            "WHERE m.entity = 'customers' AND m.source_key = :c AND g.field = 'address_line2'"),
            {"c": customer["customer_id"].iloc[0]}).scalars().all()
    assert golden == ["Apt 9"]
    engine.dispose()


def test_the_profile_asset_is_incremental_unless_the_run_asks_for_a_full_refresh(tmp_path, dagster_instance):
    import dagster as dg

    from crm_pipeline.definitions import ALL_ASSETS
    from crm_pipeline.defs.resources import default_resources
    from crm_pipeline.defs.run_tags import FULL_REFRESH_TAG
    from crm_pipeline.settings import Settings
    from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    wh = Warehouse(make_engine(url))
    for n in range(3):
        wh.customer(f"K{n}", f"C{n}", first_name="Ann", updated_at=days_before(10))
    wh.engine.dispose()
    settings = Settings(home_dir=tmp_path / "home", landing_dir=tmp_path / "landing", warehouse_url=url,
                        as_of=AS_OF)
    chosen = [a for a in ALL_ASSETS if a.op.name == "build_profile_tables"]

    def run(tags: dict[str, str]) -> dict:
        result = dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.assets(*chosen), instance=dagster_instance,
                                resources=default_resources(settings), tags=tags,
                                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        assert result.success
        event = dagster_instance.get_latest_materialization_event(dg.AssetKey("profile_360"))
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        return {k: meta[k] for k in ("mode", "contacts_recomputed", "dagster/row_count")}

    assert run({}) == {"mode": "full", "contacts_recomputed": 3, "dagster/row_count": 3}
    wh.email_event("K1", "open", days_before(1))
    wh.engine.dispose()
    assert run({}) == {"mode": "incremental", "contacts_recomputed": 1, "dagster/row_count": 3}
    assert run({FULL_REFRESH_TAG: "true"}) == {"mode": "full", "contacts_recomputed": 3, "dagster/row_count": 3}


def test_a_full_build_in_contact_slices_gives_the_tables_of_one_pass(generated, tmp_path, monkeypatch):
    from crm_pipeline.profiles import slices

    path = tmp_path / "w.duckdb"
    engine = make_engine(f"duckdb:///{path}")
    land(tmp_path / "landing", drops(generated)[0])
    stage(engine, tmp_path / "landing", D2)
    assert build_profiles(engine, as_of=D2)["contact_slices"] == 1
    whole = tables(engine)
    monkeypatch.setattr(slices, "ROWS_PER_SLICE", 500)  # several ranges even for a few hundred people
    steps = []
    figures = build_profiles(engine, as_of=D2, full_refresh=True, on_step=lambda name, s: steps.append(name))
    assert figures["contact_slices"] >= 3
    assert_same(tables(engine), whole, "in slices")
    # each step is told as it finishes, in order
    assert steps == list(figures["step_seconds"]) and steps[:2] == ["scratch", "contact_daily"]
    engine.dispose()


def test_a_warehouse_profiled_by_an_older_release_keeps_building_incrementally(engine, tmp_path):
    """An older release kept each record's entity, brand and key in `profile_sources`, each required: the upgrade
    drops them and the next build stays incremental, with the tables of a full rebuild."""
    from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before

    w = Warehouse(engine)
    w.customer("K1", "C1", first_name="Jane", updated_at=days_before(30))
    w.web_event("K1", "page_view", days_before(3), url="https://shop.example/")
    build_profiles(engine, as_of=AS_OF)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE profile_sources"))
        conn.execute(sa.text("CREATE TABLE profile_sources (entity VARCHAR NOT NULL, brand VARCHAR NOT NULL, "
                             "source_key VARCHAR NOT NULL, contact_id VARCHAR NOT NULL, _file_id INTEGER NOT NULL, "
                             "_row_number INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO profile_sources SELECT entity, brand, source_key, contact_id, _file_id, "
                             "_row_number FROM identity_map"))
    w.web_event("K1", "product_view", days_before(0), url="https://shop.example/p/1")
    w.customer("K2", "C2", first_name="Bo", updated_at=days_before(1))
    figures = build_profiles(engine, as_of=AS_OF)
    assert (figures["mode"], figures["contacts_recomputed"]) == ("incremental", 2)
    assert_same(tables(engine), full_rebuild_of_a_copy(engine, tmp_path / "warehouse.duckdb", AS_OF), "upgraded")
