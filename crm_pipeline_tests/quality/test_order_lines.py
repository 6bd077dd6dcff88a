"""Order lines follow their order: held while it is quarantined, released when a corrected order lands."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.quality.accounting import file_balances
from crm_pipeline.quality.stage import run_quality_stage
from crm_pipeline.synth.generate import generate
from crm_pipeline_tests.conftest import drop
from crm_pipeline_tests.quality.test_stage import query, stage

ORDERS = "order_id,customer_id,ordered_at,total\n"
ITEMS = "order_id,line_number,sku,quantity,unit_price\n"


def test_lines_of_a_quarantined_order_are_held_and_released_by_the_corrected_order(engine, folder, landing_dir):
    good = "".join(f"O{i},C1,2025-03-01T10:00:00Z,5.00\n" for i in range(40))
    drop(landing_dir, "brand_a/orders/o1.csv", ORDERS + good + "O99,C1,2025-03-02T10:00:00Z,-5.00\n")
    # 3 of 23 lines wait for O99: past the 5% hold share, yet the fault is the order's, not this file's
    lines = "".join(f"O{i},1,S1,1,5.00\n" for i in range(20)) + "O99,1,S1,1,2.00\nO99,2,S2,1,2.00\nO99,3,S3,1,1.00\n"
    drop(landing_dir, "brand_a/order_items/i1.csv", ITEMS + lines)
    stage(engine, folder)

    held = query(engine, "SELECT source_key, \"column\", rule, raw_value, status FROM quarantine "
                         "WHERE entity = 'order_items' ORDER BY source_key")
    assert held.to_dict("records") == [
        {"source_key": f"O99:{n}", "column": "order_id", "rule": "order_quarantined", "raw_value": "O99",
         "status": "open"} for n in (1, 2, 3)]
    assert query(engine, "SELECT COUNT(*) AS n FROM stg_order_items WHERE order_id = 'O99'")["n"][0] == 0
    with engine.connect() as conn:
        [lines_file] = file_balances(conn, "order_items")
    assert not lines_file.held and lines_file.staged == 20 and lines_file.quarantined == 3
    assert lines_file.problem() is None

    drop(landing_dir, "brand_a/orders/o2_fix.csv", ORDERS + "O99,C1,2025-03-02T10:00:00Z,5.00\n")
    stage(engine, folder)

    assert query(engine, "SELECT COUNT(*) AS n FROM quarantine WHERE entity = 'order_items'")["n"][0] == 0
    staged = query(engine, "SELECT line_number FROM stg_order_items WHERE order_id = 'O99' ORDER BY line_number")
    assert staged["line_number"].tolist() == [1, 2, 3]
    order = query(engine, "SELECT rule, status FROM quarantine WHERE entity = 'orders'")
    assert order.to_dict("records") == [{"rule": "negative_price", "status": "resolved"}]
    with engine.connect() as conn:
        [lines_file] = file_balances(conn, "order_items")
    assert lines_file.staged == 23 and lines_file.quarantined == 0 and lines_file.problem() is None


def test_lines_of_an_order_in_a_held_file_wait_for_the_fixed_file(engine, folder, landing_dir):
    orders = "".join(f"O{i},C1,2025-03-01T10:00:00Z,5.00\n" for i in range(18)) + "O18,C1,someday,5\nO19,C1,never,5\n"
    drop(landing_dir, "brand_a/orders/o.csv", ORDERS + orders)  # 10% bad: the whole file is held
    drop(landing_dir, "brand_a/order_items/i.csv", ITEMS + "".join(f"O{i},1,S1,1,5.00\n" for i in range(20)))
    stage(engine, folder)
    rules = query(engine, "SELECT rule, COUNT(*) AS n FROM quarantine WHERE entity = 'order_items' GROUP BY rule")
    assert rules.to_dict("records") == [{"rule": "order_quarantined", "n": 20}]

    fixed = "".join(f"O{i},C1,2025-03-01T10:00:00Z,5.00\n" for i in range(20))
    drop(landing_dir, "brand_a/orders/o.csv", ORDERS + fixed)
    stage(engine, folder)
    assert query(engine, "SELECT COUNT(*) AS n FROM stg_order_items")["n"][0] == 20
    assert query(engine, "SELECT COUNT(*) AS n FROM quarantine WHERE entity = 'order_items'")["n"][0] == 0


def test_a_generated_landing_stages_only_lines_whose_order_is_staged(tmp_path):
    generate(tmp_path / "data", people=400, brands=3, days=365, seed=7, end_date="2025-06-30")
    from crm_pipeline.warehouse.engine import make_engine  # noqa: PLC0415
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    now = dt.datetime(2025, 7, 1, tzinfo=dt.timezone.utc)
    ingest_folder(engine, LandingFolder(tmp_path / "data" / "landing"), now=now)
    report = run_quality_stage(engine, hold_share=0.05, docs_dir=None, now=now)

    items = report.results[report.results["suite"].str.contains("order_items")]
    assert len(items) and items["success"].all(), items[~items["success"]][["file", "expectation"]]
    with engine.connect() as conn:
        held = pd.read_sql(sa.text(
            "SELECT q.brand, q.raw_value AS order_id, "
            "EXISTS (SELECT 1 FROM quarantine o WHERE o.entity = 'orders' AND o.brand = q.brand "
            "        AND o.source_key = q.raw_value AND o.status = 'open') AS order_in_quarantine "
            "FROM quarantine q WHERE q.entity = 'order_items' AND q.rule = 'order_quarantined'"), conn)
        balances = [b for name in ENTITIES for b in file_balances(conn, name)]
    assert len(held) > 0 and held["order_in_quarantine"].all()
    assert [b.problem() for b in balances if b.problem()] == []
    engine.dispose()
