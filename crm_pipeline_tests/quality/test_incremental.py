"""Incremental publishing gives the tables a full rebuild gives, and rewrites only the keys a drop touches.

On DuckDB and on PostgreSQL (a throwaway server, skipped where none can start).

The landing is a small generated one, sliced into three drops that carry the cases that make
staging depend on history: a duplicate natural key across drops, order lines arriving before
their order (so many that their file is held, then released), an order quarantined and then
corrected, and a corrected re-drop of a file under the same name.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.quality.accounting import file_balances
from crm_pipeline.quality.publish import publish
from crm_pipeline.quality.typing_run import type_new_files
from crm_pipeline.synth.generate import generate
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.conftest import NOW
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the fixture)

ENTITY_NAMES = ("customers", "orders", "order_items", "products", "subscribers", "email_events", "web_events")
COMPARED = [*(f"stg_{e}" for e in ENTITY_NAMES), *(f"unstaged_{e}" for e in ENTITY_NAMES), "quarantine", "dedup_log",
            "row_outcomes", "rule_hits", "file_quality"]
WRITTEN = dt.datetime(2025, 7, 1, tzinfo=dt.timezone.utc).timestamp()  # every drop's file time: equal in both runs
BAD_EMAIL_ID, DROPPED_ID = "99999999", "99999998"


@pytest.fixture(params=["duckdb", "postgresql"])
def make_warehouse(request, tmp_path):
    """A factory of empty warehouses on one backend (a DuckDB file, or a database on the throwaway server)."""
    engines = []

    def make(name: str) -> sa.Engine:
        if request.param == "duckdb":
            url = f"duckdb:///{tmp_path / name}.duckdb"
        else:
            url = request.getfixturevalue("postgres_server").create_database(f"q_{name}_{tmp_path.name}".lower()[:60])
        engines.append(make_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(out, people=300, brands=2, days=120, seed=5, end_date="2025-06-30")
    return out / "landing"


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def drops(source: Path) -> list[dict[str, pd.DataFrame | Path]]:
    """Three drops: relative path -> rows (a frame written as CSV) or a generated file copied whole."""
    a = source / "brand_a"
    customers, updates = _csv(a / "customers/customers_full.csv"), _csv(a / "customers/customers_updates.csv")
    orders, items = _csv(a / "orders/orders_2025Q2.csv"), _csv(a / "order_items/order_items_2025Q2.csv")
    web = _csv(a / "web_events/web_events_2025Q2.csv")
    half = len(customers) // 2
    early, late = orders.iloc[:8], orders.iloc[8:]  # lines of the first 8 orders land a drop before them
    first_orders, second_orders = late.iloc[: len(late) // 2], late.iloc[len(late) // 2:]
    fixed_order = second_orders.iloc[[0]]  # quarantined in drop 1 (negative total), corrected in drop 3
    second_orders = second_orders.iloc[1:]
    bad_order = fixed_order.assign(total="-" + fixed_order["total"].iloc[0])
    first_ids = set(orders["order_id"]) - set(second_orders["order_id"])
    changed = customers.iloc[[0]].assign(email="moved@example.com")  # same key, a newer file: it wins
    same = customers.iloc[[1]]  # the same row again: identical_row
    bad = customers.iloc[[2]].assign(customer_id=BAD_EMAIL_ID, email="nobody@@example.com")
    dropped = customers.iloc[[3]].assign(customer_id=DROPPED_ID, email="left@@example.com")  # gone when corrected
    more = pd.concat([customers.iloc[half:], changed, same, bad, dropped])
    more_fixed = pd.concat([customers.iloc[half:], changed, same, bad.assign(email="nobody@example.com")])

    whole = {str(p.relative_to(source)): p for p in source.rglob("*") if p.is_file()
             and not p.relative_to(source).parts[0] == "brand_a"}
    whole.update({f"brand_a/{e}/{p.name}": p for e in ("products", "subscribers", "email_events")
                  for p in (a / e).iterdir()})
    return [
        {**whole,
         "brand_a/customers/customers_full.csv": customers.iloc[:half],
         "brand_a/orders/orders_part1.csv": pd.concat([first_orders, bad_order]),
         "brand_a/order_items/items_part1.csv": items[items["order_id"].isin(first_ids)],
         "brand_a/web_events/web_part1.csv": web.iloc[: len(web) // 2]},
        {"brand_a/customers/customers_more.csv": more,
         "brand_a/customers/customers_updates.csv": updates,
         "brand_a/orders/orders_part2.csv": pd.concat([early, second_orders]),
         "brand_a/order_items/items_part2.csv": items[~items["order_id"].isin(first_ids)]},
        {"brand_a/customers/customers_more.csv": more_fixed,  # the corrected file, under the same name
         "brand_a/orders/orders_fix.csv": fixed_order,
         "brand_a/web_events/web_part2.csv": web.iloc[len(web) // 2:]},
    ]


def land(landing: Path, files: dict[str, pd.DataFrame | Path | str]) -> None:
    for relative, content in files.items():
        path = landing / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            path.write_bytes(content.read_bytes())
        elif isinstance(content, str):
            path.write_text(content)
        else:
            content.to_csv(path, index=False)
        os.utime(path, (WRITTEN, WRITTEN))


def load(engine: sa.Engine, landing: Path) -> None:
    ingest_folder(engine, LandingFolder(landing), now=NOW)
    type_new_files(engine, now=NOW)


def tables(engine: sa.Engine) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        frames = {t: pd.read_sql(sa.text(f"SELECT * FROM {t}"), conn) for t in COMPARED}
    return {t: f.sort_values(list(f.columns)).reset_index(drop=True) for t, f in frames.items()}


def assert_same_tables(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    for name in COMPARED:
        pd.testing.assert_frame_equal(left[name], right[name], check_exact=False, rtol=0, atol=1e-9,
                                      obj=name)


def assert_each_row_where_its_outcome_says(engine: sa.Engine) -> None:
    """Every typed row is stored once: in staging when staged, in `unstaged_<entity>` when not."""
    with engine.connect() as conn:
        for e in ENTITY_NAMES:
            misplaced = conn.execute(sa.text(f"""
                SELECT COUNT(*) FROM row_outcomes o
                LEFT JOIN stg_{e} s ON s._file_id = o._file_id AND s._row_number = o._row_number
                LEFT JOIN unstaged_{e} u ON u._file_id = o._file_id AND u._row_number = o._row_number
                WHERE o.entity = :e AND CASE WHEN o.outcome = 'staged' THEN s._file_id IS NULL OR u._file_id IS NOT NULL
                                             ELSE u._file_id IS NULL OR s._file_id IS NOT NULL END"""),
                {"e": e}).scalar_one()
            stored, typed, outcomes = conn.execute(sa.text(
                f"SELECT (SELECT COUNT(*) FROM stg_{e}) + (SELECT COUNT(*) FROM unstaged_{e}), "
                f"(SELECT COUNT(*) FROM typed_{e}), (SELECT COUNT(*) FROM row_outcomes WHERE entity = :e)"),
                {"e": e}).one()
            assert (misplaced, stored, typed) == (0, outcomes, outcomes), e


def versions(engine: sa.Engine, file: str) -> list[dict]:
    """The accounting of each version of a file, oldest first."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "SELECT held, superseded, staged, quarantined FROM file_quality WHERE file = :f ORDER BY file_id"),
            {"f": file}).mappings()]


def quality_of(engine: sa.Engine, file: str) -> dict:
    return versions(engine, file)[-1]


def test_three_incremental_drops_give_the_tables_of_one_full_rebuild(generated, tmp_path, make_warehouse):
    three = drops(generated)
    full, step = make_warehouse("full"), make_warehouse("step")
    modes = []
    for n, files in enumerate(three, start=1):
        for engine, root in ((full, tmp_path / "full"), (step, tmp_path / "step")):
            land(root, files)
            load(engine, root)
        report = publish(step, hold_share=0.05)
        modes.append(report.mode)
        assert_each_row_where_its_outcome_says(step)  # rows moved both ways: held lines released in drop 2
        with step.connect() as conn:  # the check recounting only the rewritten files sees what a full recount sees
            for entity in ENTITY_NAMES:
                assert file_balances(conn, entity, report.entities[entity].files) == file_balances(conn, entity)
        if n == 1:  # the cases the drops are built for really happen
            assert quality_of(step, "brand_a/order_items/items_part1.csv")["held"]  # its orders are late
            with step.connect() as conn:
                rules = set(conn.execute(sa.text("SELECT DISTINCT rule FROM quarantine")).scalars())
            assert {"orphan_order_item", "order_quarantined", "negative_price"} <= rules
        if n == 2:
            released = quality_of(step, "brand_a/order_items/items_part1.csv")
            assert not released["held"] and released["staged"] > 0
            assert report.entities["order_items"].keys > 0
    assert publish(full, hold_share=0.05, full_refresh=True).mode == "full"
    assert modes == ["incremental"] * 3

    incremental, rebuilt = tables(step), tables(full)
    assert_same_tables(incremental, rebuilt)
    old, new = versions(step, "brand_a/customers/customers_more.csv")
    assert old["superseded"] and not new["superseded"] and new["quarantined"] == old["quarantined"] - 2
    q = incremental["quarantine"]
    fixed = q[(q["entity"] == "customers") & q["source_key"].isin([BAD_EMAIL_ID, DROPPED_ID])]
    assert fixed["status"].tolist() == ["resolved", "resolved"]  # by the key staged, by the file replaced
    fixed_order = three[2]["brand_a/orders/orders_fix.csv"]["order_id"].iloc[0]
    assert q[q["source_key"] == fixed_order]["status"].tolist() == ["resolved"]  # the order; its lines left
    assert not q["source_key"].str.startswith(fixed_order + ":").any()
    lines = incremental["stg_order_items"]
    assert (lines["order_id"] == fixed_order).sum() > 0
    assert set(incremental["dedup_log"]["reason"]) == {"identical_row", "superseded"}
    with step.connect() as conn:
        for entity in ENTITY_NAMES:
            assert [b.problem() for b in file_balances(conn, entity) if b.problem()] == []
    # A full refresh of the incremental warehouse changes nothing either.
    publish(step, hold_share=0.05, full_refresh=True)
    assert_same_tables(tables(step), incremental)


def test_a_drop_touching_one_customer_rewrites_one_staged_row(generated, tmp_path):
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    first = drops(generated)[0]
    land(tmp_path / "landing", first)
    load(engine, tmp_path / "landing")
    publish(engine, hold_share=0.05)

    customer = first["brand_a/customers/customers_full.csv"].iloc[[5]]
    land(tmp_path / "landing", {"brand_a/customers/one_change.csv": customer.assign(last_name="Changed")})
    load(engine, tmp_path / "landing")
    report = publish(engine, hold_share=0.05)

    assert report.mode == "incremental"
    assert report.entities["customers"].keys == 1
    assert report.entities["customers"].rows == 2  # the old row and the new one, now deduplicated
    assert report.entities["customers"].staged_rows_written == 1
    assert all(report.entities[e].rows == 0 for e in ENTITY_NAMES if e != "customers")
    with engine.connect() as conn:
        staged = conn.execute(sa.text("SELECT last_name FROM stg_customers WHERE customer_id = :c"),
                              {"c": customer["customer_id"].iloc[0]}).scalars().all()
    assert staged == ["Changed"]
    engine.dispose()


def test_the_stage_asset_is_incremental_unless_the_run_asks_for_a_full_refresh(tmp_path, dagster_instance):
    import dagster as dg

    from crm_pipeline.definitions import ALL_ASSETS
    from crm_pipeline.defs.run_tags import FULL_REFRESH_TAG
    from crm_pipeline.defs.resources import default_resources
    from crm_pipeline.settings import Settings

    landing = tmp_path / "landing"
    settings = Settings(home_dir=tmp_path / "home", landing_dir=landing,
                        warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    header = "customer_id,email,first_name,last_name,country,updated_at\n"
    rows = "".join(f"C{i},p{i}@example.com,Ann,Lee,US,2025-01-01T00:00:00Z\n" for i in range(30))
    chosen = [a for a in ALL_ASSETS if a.op.name in ("ingest_files", "stage_entities")]

    def run(files: dict[str, str], tags: dict[str, str]) -> dict:
        for relative, text in files.items():
            (landing / relative).parent.mkdir(parents=True, exist_ok=True)
            (landing / relative).write_text(text)
            os.utime(landing / relative, (WRITTEN, WRITTEN))
        result = dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.assets(*chosen), instance=dagster_instance,
                                resources=default_resources(settings), tags=tags,
                                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        assert result.success
        event = dagster_instance.get_latest_materialization_event(dg.AssetKey("stg_customers"))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    first = run({"brand_a/customers/c1.csv": header + rows}, {})
    assert (first["publish_mode"], first["keys_re_resolved"], first["staged_rows_rewritten"]) == ("incremental", 30, 30)
    one = run({"brand_a/customers/c2.csv": header + "C7,new7@example.com,Ann,Lee,US,2025-02-01T00:00:00Z\n"}, {})
    assert (one["publish_mode"], one["keys_re_resolved"], one["staged_rows_rewritten"]) == ("incremental", 1, 1)
    full = run({}, {FULL_REFRESH_TAG: "true"})
    assert (full["publish_mode"], full["keys_re_resolved"], full["staged_rows_rewritten"]) == ("full", 30, 30)
    assert full["dagster/row_count"] == 30


def test_a_changed_hold_share_releases_held_files_without_a_full_refresh(tmp_path):
    from crm_pipeline_tests.quality.test_stage import HEADER, good_customers

    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    bad = "".join(f"B{i},not-an-email,,Bo,Ray,US,2025-01-01T00:00:00Z\n" for i in range(5))
    land(tmp_path / "landing", {"brand_a/customers/c.csv": HEADER + good_customers(45) + bad})
    load(engine, tmp_path / "landing")
    publish(engine, hold_share=0.05)
    assert quality_of(engine, "brand_a/customers/c.csv")["held"]  # 10% bad

    report = publish(engine, hold_share=0.2)  # no new file: the held state alone changed
    released = tables(engine)
    assert not quality_of(engine, "brand_a/customers/c.csv")["held"]
    assert report.entities["customers"].staged_rows_written == 45
    publish(engine, hold_share=0.2, full_refresh=True)
    assert_same_tables(released, tables(engine))
    engine.dispose()
