"""The quality stage on hand-built files: rules, holds, dedup, accounting, fix and re-drop."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.quality.accounting import file_balances
from crm_pipeline.quality.publish import publish
from crm_pipeline.quality.typing_run import type_new_files
from crm_pipeline_tests.conftest import NOW, drop

HEADER = "customer_id,email,phone,first_name,last_name,country,updated_at\n"


def good_customers(n: int, start: int = 0) -> str:
    return "".join(f"C{i},p{i}@example.com,(415) 234-{i:04d},Ann,Lee,US,2025-01-01T00:00:00Z\n"
                   for i in range(start, start + n))


def stage(engine, folder, hold_share=0.05):
    ingest_folder(engine, folder, now=NOW)
    type_new_files(engine, now=NOW)
    publish(engine, hold_share=hold_share)


def query(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(sql), conn, params=params)


def test_bad_rows_are_quarantined_with_their_rule_and_good_rows_staged(engine, folder, landing_dir):
    body = good_customers(40) + "C90,bad@@example.com,,Bo,Ray,US,2025-01-01T00:00:00Z\n"
    drop(landing_dir, "brand_a/customers/c.csv", HEADER + body)
    stage(engine, folder)
    q = query(engine, "SELECT row_number, source_key, \"column\", rule, raw_value, status FROM quarantine")
    assert q.to_dict("records") == [{"row_number": 41, "source_key": "C90", "column": "email",
                                     "rule": "malformed_email", "raw_value": "bad@@example.com", "status": "open"}]
    assert query(engine, "SELECT COUNT(*) AS n FROM stg_customers")["n"][0] == 40


def test_identical_rows_and_newer_files_are_deduplicated_with_a_pointer(engine, folder, landing_dir):
    row = "C1,ann@example.com,,Ann,Lee,US,2025-01-01T00:00:00Z\n"
    drop(landing_dir, "brand_a/customers/1.csv", HEADER + row + row + good_customers(40, 10))
    drop(landing_dir, "brand_a/customers/2.csv",
         HEADER + "C1,ann@new.example.com,,Ann,Lee,US,2025-02-01T00:00:00Z\n" + good_customers(40, 100))
    stage(engine, folder)
    log = query(engine, "SELECT file_id, row_number, kept_file_id, kept_row_number, reason FROM dedup_log "
                        "WHERE source_key = 'C1' ORDER BY file_id, row_number")
    assert log.to_dict("records") == [
        {"file_id": 1, "row_number": 1, "kept_file_id": 2, "kept_row_number": 1, "reason": "superseded"},
        {"file_id": 1, "row_number": 2, "kept_file_id": 2, "kept_row_number": 1, "reason": "superseded"},
    ]
    staged = query(engine, "SELECT email FROM stg_customers WHERE customer_id = 'C1'")
    assert staged["email"].tolist() == ["ann@new.example.com"]


def test_a_newer_updated_at_wins_over_a_newer_file(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/1.csv", HEADER + "C1,late@example.com,,A,L,US,2025-03-01T00:00:00Z\n")
    drop(landing_dir, "brand_a/customers/2.csv", HEADER + "C1,early@example.com,,A,L,US,2025-01-01T00:00:00Z\n")
    stage(engine, folder, hold_share=1.0)
    assert query(engine, "SELECT email FROM stg_customers")["email"].tolist() == ["late@example.com"]


def test_the_same_key_twice_in_one_file_with_different_content_is_a_conflict(engine, folder, landing_dir):
    orders = "order_id,customer_id,ordered_at,total\n" + "".join(
        f"O{i},C1,2025-03-01T10:00:00Z,10.00\n" for i in range(40)) + "O3,C2,2025-03-09T10:00:00Z,99.00\n"
    drop(landing_dir, "brand_a/orders/o.csv", orders)
    stage(engine, folder)
    q = query(engine, "SELECT row_number, rule FROM quarantine")
    assert q.to_dict("records") == [{"row_number": 41, "rule": "duplicated_order_id"}]
    assert query(engine, "SELECT total FROM stg_orders WHERE order_id = 'O3'")["total"].tolist() == [10.0]


def test_a_key_repeated_identically_is_deduplicated_and_a_different_third_copy_quarantined(engine, folder, landing_dir):
    orders = "order_id,customer_id,ordered_at,total\n" + "".join(
        f"O{i},C1,2025-03-01T10:00:00Z,10.00\n" for i in range(40))
    orders += "O3,C1,2025-03-01T10:00:00Z,10.00\n" + "O3,C2,2025-03-09T10:00:00Z,99.00\n"  # rows 41 and 42
    drop(landing_dir, "brand_a/orders/o.csv", orders)
    stage(engine, folder)
    q = query(engine, "SELECT row_number, rule FROM quarantine")
    assert q.to_dict("records") == [{"row_number": 42, "rule": "duplicated_order_id"}]
    log = query(engine, "SELECT row_number, kept_row_number, reason FROM dedup_log WHERE source_key = 'O3'")
    assert log.to_dict("records") == [{"row_number": 4, "kept_row_number": 41, "reason": "identical_row"}]
    assert query(engine, "SELECT total FROM stg_orders WHERE order_id = 'O3'")["total"].tolist() == [10.0]


def test_order_lines_wait_for_their_order_and_link_up_when_it_lands(engine, folder, landing_dir):
    items = "order_id,line_number,sku,quantity,unit_price\n" + "".join(f"O{i},1,S1,1,5.00\n" for i in range(20))
    drop(landing_dir, "brand_a/order_items/i.csv", items)
    stage(engine, folder, hold_share=1.0)
    assert set(query(engine, "SELECT DISTINCT rule FROM quarantine WHERE status = 'open'")["rule"]) == \
        {"orphan_order_item"}
    orders = "order_id,customer_id,ordered_at,total\n" + "".join(f"O{i},C1,2025-03-01T10:00:00Z,5\n" for i in range(20))
    drop(landing_dir, "brand_a/orders/o.csv", orders)
    stage(engine, folder, hold_share=1.0)
    assert query(engine, "SELECT COUNT(*) AS n FROM quarantine")["n"][0] == 0
    assert query(engine, "SELECT COUNT(*) AS n FROM stg_order_items")["n"][0] == 20


def test_a_file_with_too_many_bad_rows_is_held_and_released_when_fixed(engine, folder, landing_dir):
    bad = "".join(f"B{i},not-an-email,,Bo,Ray,US,2025-01-01T00:00:00Z\n" for i in range(5))
    drop(landing_dir, "brand_a/customers/c.csv", HEADER + good_customers(45) + bad)  # 10% bad
    stage(engine, folder)
    with engine.connect() as conn:
        [balance] = file_balances(conn, "customers")
    assert balance.held and balance.staged == 0 and balance.quarantined == 5
    assert "held whole, 5 of 50 rows quarantined" in balance.problem()
    assert "malformed_email (5)" in balance.problem()

    fixed = "".join(f"B{i},b{i}@example.com,,Bo,Ray,US,2025-01-01T00:00:00Z\n" for i in range(5))
    drop(landing_dir, "brand_a/customers/c.csv", HEADER + good_customers(45) + fixed)
    stage(engine, folder)
    with engine.connect() as conn:
        old, new = file_balances(conn, "customers")
    assert old.superseded and old.problem() is None
    assert not new.held and new.staged == 50 and new.problem() is None
    statuses = query(engine, "SELECT status, resolved_by_file_id FROM quarantine")
    assert statuses.to_dict("records") == [{"status": "resolved", "resolved_by_file_id": new.file_id}] * 5


def test_accounting_balances_on_every_file(engine, folder, landing_dir):
    row = "C1,ann@example.com,,Ann,Lee,US,2025-01-01T00:00:00Z\n"
    drop(landing_dir, "brand_a/customers/1.csv", HEADER + row + row + good_customers(60, 10)
         + "C99,x@@y,,A,B,US,2025-01-01T00:00:00Z\n")
    drop(landing_dir, "brand_b/customers/2.csv", HEADER + good_customers(30))
    stage(engine, folder)
    with engine.connect() as conn:
        balances = file_balances(conn, "customers")
    assert [(b.rows_read, b.staged, b.quarantined, b.deduplicated) for b in balances] == [(63, 61, 1, 1), (30, 30, 0, 0)]
    assert all(b.problem() is None for b in balances)


def test_rerunning_the_stage_gives_identical_tables(engine, folder, landing_dir):
    row = "C1,ann@example.com,,Ann,Lee,US,2025-01-01T00:00:00Z\n"
    drop(landing_dir, "brand_a/customers/1.csv", HEADER + row + row + good_customers(40, 10) + "C9,x@@y,,A,B,US,\n")
    stage(engine, folder)
    tables = ["stg_customers", "quarantine", "dedup_log", "file_quality", "row_outcomes"]
    before = {t: query(engine, f"SELECT * FROM {t}").sort_values(list(query(engine, f"SELECT * FROM {t}").columns[:3]))
              .reset_index(drop=True) for t in tables}
    publish(engine, hold_share=0.05)
    for t in tables:
        after = query(engine, f"SELECT * FROM {t}")
        after = after.sort_values(list(after.columns[:3])).reset_index(drop=True)
        pd.testing.assert_frame_equal(before[t], after)


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\")", "😀🛍️", "x" * 10_000, "An\x00n"])
def test_odd_cells_are_staged_or_quarantined_never_a_crash(engine, folder, landing_dir, value):
    quoted = '"' + value.replace('"', '""') + '"'
    drop(landing_dir, "brand_a/customers/c.csv",
         HEADER + good_customers(30) + f"C99,odd@example.com,,{quoted},Lee,US,2025-01-01T00:00:00Z\n")
    stage(engine, folder)
    with engine.connect() as conn:
        [balance] = file_balances(conn, "customers")
    assert balance.rows_read == 31 and balance.staged + balance.quarantined == 31
    flags = query(engine, "SELECT _flags FROM stg_customers WHERE customer_id = 'C99'")["_flags"].tolist()
    assert flags and "first_name_suspicious" in flags[0]


def test_future_timestamps_are_judged_against_the_day_the_file_was_written(engine, folder, landing_dir):
    orders = "order_id,customer_id,ordered_at,total\n" + "".join(
        f"O{i},C1,2025-03-01T10:00:00Z,1\n" for i in range(40)) + "O99,C1,2099-01-01T00:00:00Z,1\n"
    drop(landing_dir, "brand_a/orders/o.csv", orders)
    stage(engine, folder)
    assert query(engine, "SELECT rule, raw_value FROM quarantine").to_dict("records") == [
        {"rule": "future_timestamp", "raw_value": "2099-01-01T00:00:00Z"}]


def test_a_warehouse_with_a_typed_table_keeps_its_rows_when_typed_becomes_a_view(engine, folder, landing_dir):
    """Before the view, `typed_<entity>` was a table of every typed row and staging a copy of some: the next
    stage keeps the rows it did not stage (here a quarantined one), as the not-staged rows of the view."""
    drop(landing_dir, "brand_a/customers/c.csv", HEADER + good_customers(40) + "C90,x@@y,,A,B,US,\n")
    stage(engine, folder)
    with engine.begin() as conn:  # the former layout: a table of every typed row, no unstaged_ rows
        conn.execute(sa.text("CREATE TABLE typed_old AS SELECT * FROM typed_customers"))
        conn.execute(sa.text("DROP VIEW typed_customers"))
        conn.execute(sa.text("ALTER TABLE typed_old RENAME TO typed_customers"))
        conn.execute(sa.text("DELETE FROM unstaged_customers"))
    stage(engine, folder)
    assert set(sa.inspect(engine).get_view_names()) >= {"typed_customers"}
    assert query(engine, "SELECT customer_id FROM unstaged_customers")["customer_id"].tolist() == ["C90"]
    assert query(engine, "SELECT COUNT(*) AS n FROM typed_customers")["n"][0] == 41
    assert query(engine, "SELECT COUNT(*) AS n FROM stg_customers")["n"][0] == 40


def test_a_stage_that_fails_before_publishing_leaves_no_unresolved_rows_in_staging(engine, folder, landing_dir,
                                                                                   monkeypatch):
    from crm_pipeline.quality import stage as quality_stage

    row = "C1,ann@example.com,,Ann,Lee,US,2025-01-01T00:00:00Z\n"
    drop(landing_dir, "brand_a/customers/c.csv",
         HEADER + row + row + good_customers(40, 10) + "C90,bad@@example.com,,Bo,Ray,US,2025-01-01T00:00:00Z\n")
    ingest_folder(engine, folder, now=NOW)

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(quality_stage, "publish", full_disk)
    with pytest.raises(OSError):
        quality_stage.run_quality_stage(engine, hold_share=0.05, docs_dir=None, now=NOW)
    # typed, but nothing a later stage reads: the duplicate and the bad row never reach staging
    assert query(engine, "SELECT COUNT(*) AS n FROM stg_customers")["n"][0] == 0
    assert query(engine, "SELECT COUNT(*) AS n FROM typed_customers")["n"][0] == 43

    monkeypatch.undo()
    quality_stage.run_quality_stage(engine, hold_share=0.05, docs_dir=None, now=NOW)
    assert query(engine, "SELECT COUNT(*) AS n FROM stg_customers")["n"][0] == 41
    assert query(engine, "SELECT source_key FROM quarantine")["source_key"].tolist() == ["C90"]
    assert query(engine, "SELECT source_key FROM dedup_log")["source_key"].tolist() == ["C1"]
    assert query(engine, "SELECT COUNT(*) AS n FROM unstaged_customers")["n"][0] == 2


def test_publishing_and_validation_report_their_progress_as_typing_does(engine, folder, landing_dir):
    """At 1M people publishing and validation each ran minutes without a line: both now report files done."""
    from crm_pipeline.quality.stage import run_quality_stage

    order_header = "order_id,customer_id,email,ordered_at,status,currency,total,updated_at\n"
    for n, rows in enumerate((3, 5)):
        drop(landing_dir, f"brand_a/customers/c{n}.csv", HEADER + good_customers(rows, start=100 * n))
    drop(landing_dir, "brand_a/orders/o.csv", order_header + "O1,C0,,2025-01-02T00:00:00Z,placed,USD,9.5,"
                                                             "2025-01-02T00:00:00Z\n")
    ingest_folder(engine, folder, now=NOW)
    seen: dict[str, list[tuple[int, int, int]]] = {"published": [], "validated": []}

    run_quality_stage(engine, hold_share=0.05, docs_dir=None, now=NOW,
                      on_published=lambda *a: seen["published"].append(a),
                      on_validated=lambda *a: seen["validated"].append(a))

    # One report per entity published, counting the files of the entities done so far (customers come first).
    assert seen["published"][0] == (2, 3, 8)
    assert seen["published"][-1] == (3, 3, 9) and len(seen["published"]) == 7
    # One report per GX run: the two customers files together, then the orders file.
    assert seen["validated"] == [(2, 3, 8), (3, 3, 9)]
