"""Exactly-once loading: every file is loaded, rejected with a reason, or recorded as a duplicate."""

from __future__ import annotations

import codecs
import gzip
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from crm_pipeline.landing.ingest import RUN_CHECKPOINT_THRESHOLD, ingest_file, ingest_folder
from crm_pipeline_tests.conftest import NOW, drop

CUSTOMERS = (
    "customer_id,email,phone,first_name,last_name,country\n"
    "C1,ann@example.com,(415) 555-0101,Ann,Lee,US\n"
    "C2,bob@example.com,,Bob,Ray,USA\n"
)


def rows(engine, table: str, order: str = "_file_id, _row_number") -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {order}")).mappings()]


def manifest(engine) -> list[dict]:
    return rows(engine, "files", order="file_id") if sa.inspect(engine).has_table("files") else []


def only_outcome(engine, folder):
    outcomes = ingest_folder(engine, folder, now=NOW)
    assert len(outcomes) == 1
    return outcomes[0]


def test_csv_rows_land_with_lineage(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/2025-06-01.csv", CUSTOMERS)
    outcome = only_outcome(engine, folder)
    assert (outcome.status, outcome.rows_read, outcome.rows_loaded) == ("loaded", 2, 2)
    loaded = rows(engine, "raw_customers")
    assert [(r["_file_id"], r["_row_number"], r["_brand"], r["customer_id"]) for r in loaded] == [
        (outcome.file_id, 1, "brand_a", "C1"), (outcome.file_id, 2, "brand_a", "C2")]
    assert loaded[0]["phone"] == "(415) 555-0101"  # raw keeps values exactly as landed
    assert loaded[1]["phone"] is None and loaded[1]["city"] is None  # empty and absent optional columns
    [entry] = manifest(engine)
    assert entry["sha256"] == outcome.sha256 and entry["format"] == "csv" and entry["encoding"] == "utf-8"


def test_same_bytes_under_another_name_load_once(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    drop(landing_dir, "brand_a/customers/a_copy.csv", CUSTOMERS)
    outcomes = ingest_folder(engine, folder, now=NOW)
    assert [o.status for o in outcomes] == ["loaded", "duplicate"]
    assert outcomes[1].duplicate_of == outcomes[0].file_id
    assert "a.csv" in outcomes[1].reason
    assert len(rows(engine, "raw_customers")) == 2


def test_rerun_loads_nothing_twice(engine, folder, landing_dir, tmp_path):
    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    with engine.connect() as conn:  # so that this small file's WAL is past the threshold the run puts back
        conn.exec_driver_sql("SET checkpoint_threshold = '1KiB'")
    during = []
    ingest_folder(engine, folder, now=NOW, on_file=lambda *_: during.append(checkpoint_threshold(engine)))
    # DuckDB checkpoints once per run, at its end (not after every file), with its own threshold back.
    assert during == [checkpoint_threshold(engine, RUN_CHECKPOINT_THRESHOLD)]
    assert checkpoint_threshold(engine) == checkpoint_threshold(engine, "1KiB")
    wal = tmp_path / "warehouse.duckdb.wal"
    assert not wal.exists()
    again = ingest_folder(engine, folder, now=NOW)
    assert [o.already_known for o in again] == [True]
    assert len(rows(engine, "raw_customers")) == 2
    assert len(manifest(engine)) == 1
    with engine.connect() as conn:
        conn.exec_driver_sql("SET checkpoint_threshold = '16MiB'")
    drop(landing_dir, "brand_a/customers/b.csv", CUSTOMERS.replace("C1", "C3"))
    ingest_folder(engine, folder, now=NOW)
    assert wal.exists()  # a WAL below the threshold is left to DuckDB, as every commit did before


def checkpoint_threshold(engine, value: str | None = None) -> str:
    """The warehouse's setting, or (given `value`) how DuckDB shows that size once set."""
    if value is not None:
        con = duckdb.connect()
        con.execute(f"SET checkpoint_threshold = '{value}'")
        return con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT current_setting('checkpoint_threshold')").scalar_one()


def test_corrected_file_under_the_same_name_loads_again(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS)
    first = ingest_file(engine, folder, "brand_a/customers/a.csv", now=NOW)
    drop(landing_dir, "brand_a/customers/a.csv", CUSTOMERS.replace("bob@example.com", "bob@example.org"))
    second = ingest_file(engine, folder, "brand_a/customers/a.csv", now=NOW)
    assert second.status == "loaded" and second.file_id != first.file_id and second.sha256 != first.sha256
    emails = [r["email"] for r in rows(engine, "raw_customers") if r["_file_id"] == second.file_id]
    assert emails == ["ann@example.com", "bob@example.org"]


def test_extra_columns_are_kept_and_reported(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", "customer_id,Email,loyalty_tier\nC1,a@x.com,gold\n")
    outcome = only_outcome(engine, folder)
    assert outcome.status == "loaded" and outcome.extra_columns == ["loyalty_tier"]
    assert "loyalty_tier" in outcome.reason
    [row] = rows(engine, "raw_customers")
    assert row["email"] == "a@x.com"  # header names match case-insensitively
    assert json.loads(row["_extra"]) == {"loyalty_tier": "gold"}


def test_missing_required_column_rejects_the_file(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/orders/o.csv", "order_id,total\nO1,10.00\n")
    outcome = only_outcome(engine, folder)
    assert outcome.status == "rejected"
    assert "ordered_at" in outcome.reason and "customer_id|email" in outcome.reason
    assert rows(engine, "raw_orders") == []


def test_invalid_utf8_is_rejected_with_its_byte_offset(engine, folder, landing_dir):
    data = "customer_id,first_name\nC1,Zoë\n".encode("utf-8")
    bad = data.replace("ë".encode(), b"\xe9")  # latin-1 byte in a UTF-8 file
    drop(landing_dir, "brand_a/customers/latin1.csv", bad)
    outcome = only_outcome(engine, folder)
    assert outcome.status == "rejected"
    offset = bad.index(b"\xe9")
    assert f"byte offset {offset}" in outcome.reason
    assert rows(engine, "raw_customers") == []


def test_utf8_bom_and_utf16_bom_are_read(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/bom8.csv", codecs.BOM_UTF8 + "customer_id,first_name\nC1,Zoë\n".encode())
    drop(landing_dir, "brand_b/customers/bom16.csv", "customer_id,first_name\nC2,Łukasz\n".encode("utf-16"))
    outcomes = ingest_folder(engine, folder, now=NOW)
    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 1), ("loaded", 1)]
    names = {r["customer_id"]: r["first_name"] for r in rows(engine, "raw_customers")}
    assert names == {"C1": "Zoë", "C2": "Łukasz"}
    assert {r["encoding"] for r in manifest(engine)} == {"utf-8-sig", "utf-16"}


def test_truncated_csv_is_rejected_naming_the_row(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/cut.csv", "customer_id,email,first_name\nC1,a@x.com,Ann\nC2,b@x")
    outcome = only_outcome(engine, folder)
    assert outcome.status == "rejected"
    assert outcome.reason.startswith("truncated CSV: row 2 has 2 field(s), the header has 3")


def test_csv_cut_inside_a_quoted_value_is_rejected(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/cut.csv", 'customer_id,address_line1\nC1,"12 Long Road\nApt')
    outcome = only_outcome(engine, folder)
    assert outcome.status == "rejected" and "ends inside a quoted value" in outcome.reason


def test_gzip_csv_and_a_truncated_gzip(engine, folder, landing_dir):
    packed = gzip.compress(CUSTOMERS.encode())
    drop(landing_dir, "brand_a/customers/a.csv.gz", packed)
    drop(landing_dir, "brand_b/customers/b.csv.gz", packed[: len(packed) // 2])
    good, cut = ingest_folder(engine, folder, now=NOW)
    assert (good.status, good.rows_loaded) == ("loaded", 2)
    assert cut.status == "rejected" and "gzip" in cut.reason


def test_jsonl_values_arrive_as_text(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/subscribers/s.jsonl",
         '{"subscriber_id": 17, "email": "a@x.com", "preferences": {"topics": ["shoes"]}, "status": null}\n')
    outcome = only_outcome(engine, folder)
    assert outcome.status == "loaded"
    [row] = rows(engine, "raw_subscribers")
    assert row["subscriber_id"] == "17" and row["status"] is None
    assert json.loads(row["preferences"]) == {"topics": ["shoes"]}


def test_malformed_jsonl_is_rejected_naming_the_line(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/subscribers/s.jsonl",
         '{"subscriber_id": "1", "email": "a@x.com"}\n{"subscriber_id": "2", "email": }\n'
         '{"subscriber_id": "3", "email": "c@x.com"}\n')
    outcome = only_outcome(engine, folder)
    assert outcome.status == "rejected" and "line 2" in outcome.reason


def test_parquet_typed_columns_become_text(engine, folder, landing_dir, tmp_path):
    path = landing_dir / "brand_a/web_events/w.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({
        "event_id": ["E1"], "cookie_id": ["K1"], "event_type": ["page_view"],
        "occurred_at": pa.array([1_700_000_000], type=pa.timestamp("s", tz="UTC")),
    }), path)
    outcome = only_outcome(engine, folder)
    assert outcome.status == "loaded"
    [row] = rows(engine, "raw_web_events")
    assert row["occurred_at"] == "2023-11-14T22:13:20.000000Z"


def test_unreadable_parquet_is_rejected(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/web_events/w.parquet", b"PAR1 this is not parquet")
    outcome = only_outcome(engine, folder)
    assert outcome.status == "rejected" and outcome.reason.startswith("unreadable Parquet")


def test_files_that_fit_no_entity_are_rejected_not_guessed(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/coupons/c.csv", "code\nX\n")
    drop(landing_dir, "brand_a/customers/c.xlsx", b"PK\x03\x04")
    drop(landing_dir, "stray.csv", "customer_id\nC1\n")
    reasons = {o.path: (o.status, o.reason) for o in ingest_folder(engine, folder, now=NOW)}
    assert reasons["brand_a/coupons/c.csv"][0] == "rejected" and "not an entity" in reasons["brand_a/coupons/c.csv"][1]
    assert "unsupported file type" in reasons["brand_a/customers/c.xlsx"][1]
    assert "layout" in reasons["stray.csv"][1]


def test_empty_file_is_rejected_and_header_only_file_loads_nothing(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/empty.csv", b"")
    drop(landing_dir, "brand_a/customers/blank.csv", b" \r\n\t\n")
    drop(landing_dir, "brand_a/customers/header.csv", "customer_id,email\n")
    reasons = {o.path: o for o in ingest_folder(engine, folder, now=NOW)}
    for empty in ("brand_a/customers/empty.csv", "brand_a/customers/blank.csv"):
        assert reasons[empty].status == "rejected"
        assert "empty file" in reasons[empty].reason
    assert (reasons["brand_a/customers/header.csv"].status, reasons["brand_a/customers/header.csv"].rows_loaded) \
        == ("loaded", 0)


def test_symlink_out_of_the_landing_folder_is_never_read(engine, folder, landing_dir, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("customer_id,email\nX,x@secret.com\n")
    (landing_dir / "brand_a" / "customers").mkdir(parents=True)
    (landing_dir / "brand_a/customers/link.csv").symlink_to(secret)
    outcome = ingest_file(engine, folder, "brand_a/customers/link.csv", now=NOW)
    assert outcome.status == "rejected" and "outside the landing folder" in outcome.reason
    outcome = ingest_file(engine, folder, "../secret.csv", now=NOW)
    assert outcome.status == "rejected"
    assert rows(engine, "raw_customers") == []
    assert ingest_folder(engine, folder, now=NOW) == []  # the scan never offers the link


def test_nul_bytes_and_formula_cells_load_as_values(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/odd.csv",
         'customer_id,first_name,last_name\nC1,"An\x00n",=SUM(A1:A9)\nC2,😀,' + "x" * 10_000 + "\n")
    outcome = only_outcome(engine, folder)
    assert outcome.status == "loaded"
    c1, c2 = rows(engine, "raw_customers")
    assert c1["first_name"] == "An\ufffdn" and c1["last_name"] == "=SUM(A1:A9)"
    assert c2["first_name"] == "😀" and len(c2["last_name"]) == 10_000
