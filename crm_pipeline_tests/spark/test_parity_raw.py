"""The raw load on Spark `local[2]` gives the tables the DuckDB load gives, from the same landing folder.

Compared like the PostgreSQL parity suite compares (row counts, checksums of key columns, floats to a
tolerance): every `raw_<entity>` with its lineage (`_file_id`, `_row_number`), the `files` manifest and
the erasure row counts. Both loads get the same `now`, so even `ingested_at` must match. The Spark load
moves its rows in small flushes, so bounded flushes are part of what is compared.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from crm_pipeline.erasure.suppression import add_suppressions
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.report import (
    loaded_row_totals, manifest_counts, raw_row_counts, raw_rows_not_matching_manifest,
)
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.spark.ingest import ingest_folder_to_spark
from crm_pipeline.synth.generate import generate
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.erasure_schema import erasure_row_counts, erasure_suppressions
from crm_pipeline.warehouse.schema import create_ingest_tables, files, raw_column_order, raw_tables
from crm_pipeline.warehouse.spark import SparkConnection, SparkWarehouse
from crm_pipeline_tests.conftest import drop
from crm_pipeline_tests.spark import tables
from crm_pipeline_tests.spark.tables import mismatches

NOW = datetime(2025, 7, 1, 6, 0, tzinfo=timezone.utc)
COMPARED = [files.name, erasure_row_counts.name, *(t.name for t in raw_tables.values())]


def duckdb_tables(engine: sa.Engine) -> dict[str, pd.DataFrame]:
    return tables.duckdb_tables(engine, COMPARED)


def spark_tables(warehouse: SparkWarehouse) -> dict[str, pd.DataFrame]:
    return tables.spark_tables(warehouse, COMPARED)


def erase_first_customer(landing: Path, duck: sa.Engine, warehouse: SparkWarehouse) -> None:
    """An erasure recorded before the load, on both warehouses: its person's rows must be kept out alike.
    Spark gets the suppression rows DuckDB's erasure wrote (the erasure stage is not on Spark yet)."""
    email = pd.read_csv(landing / "brand_a/customers/customers_full.csv", dtype=str)["email"].dropna().iloc[0]
    create_ingest_tables(duck)
    with duck.begin() as conn:
        assert add_suppressions(conn, {"email": {email.strip().lower()}}, request_id=1, added_at=NOW) == 1
        rows = pd.read_sql(sa.select(erasure_suppressions), conn)
    warehouse.create_table(erasure_suppressions)
    warehouse.write(erasure_suppressions.name, pa.Table.from_pandas(rows, preserve_index=False), overwrite=False)


@pytest.fixture(scope="module")
def both_loads(spark, tmp_path_factory):
    """A generated landing (all four formats), a renamed copy, a misnamed file and an erased person,
    loaded into DuckDB and into Spark."""
    root = tmp_path_factory.mktemp("spark_parity")
    generate(root / "data", people=300, brands=2, days=120, seed=3, end_date=date(2025, 6, 30))
    landing = root / "data" / "landing"
    shutil.copy(landing / "brand_a/orders/orders_2025Q1.csv", landing / "brand_a/orders/orders_2025Q1_resent.csv")
    drop(landing, "brand_a/notes/readme.csv", "a,b\n1,2\n")  # no such entity: rejected
    duck = make_engine(f"duckdb:///{root / 'warehouse.duckdb'}")
    warehouse = SparkWarehouse(spark, root / "spark_warehouse", database="crm_parity_raw")
    erase_first_customer(landing, duck, warehouse)
    folder = LandingFolder(landing)
    duck_outcomes = ingest_folder(duck, folder, now=NOW)
    spark_outcomes = ingest_folder_to_spark(warehouse, folder, now=NOW, flush_rows=2_000)
    yield duck, warehouse, duck_outcomes, spark_outcomes
    duck.dispose()


def test_spark_raw_tables_equal_duckdb_raw_tables(both_loads):
    duck, warehouse, duck_outcomes, spark_outcomes = both_loads
    assert spark_outcomes == duck_outcomes
    statuses = [o.status for o in spark_outcomes]
    assert statuses.count("loaded") == 21 and statuses.count("duplicate") == 1 and statuses.count("rejected") == 1
    assert sum(o.rows_suppressed for o in spark_outcomes) > 0  # the erased person had rows in the drop
    left, right = duckdb_tables(duck), spark_tables(warehouse)
    assert len(right["raw_web_events"]) > 1_000 and len(right["files"]) == 23
    assert mismatches(left, right) == {}


def test_a_second_spark_load_adds_nothing(both_loads):
    duck, warehouse, _, _ = both_loads
    again = ingest_folder_to_spark(warehouse, LandingFolder(Path(warehouse.location).parent / "data" / "landing"),
                                   now=NOW)
    assert again and all(o.already_known for o in again)
    assert mismatches(duckdb_tables(duck), spark_tables(warehouse)) == {}


CUSTOMERS = "customer_id,email,first_name\n{rows}"


@pytest.mark.parametrize("writer", ["pyarrow", "spark"])
def test_copies_corrections_and_new_files_follow_the_duckdb_manifest(spark_warehouse, tmp_path, monkeypatch, writer):
    """Step by step on both engines: the same bytes under another name are a duplicate; corrected bytes
    under an old name load again under a new file id; an already loaded file is left alone. Both ways of
    writing partitions: pyarrow into a local folder, and Spark's own writer (what an object store gets)."""
    if writer == "spark":
        monkeypatch.setattr(SparkWarehouse, "is_local", property(lambda self: False))
    landing = tmp_path / "landing"
    duck = make_engine(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    folder = LandingFolder(landing)
    steps = [
        ("brand_a/customers/c1.csv", CUSTOMERS.format(rows="1,a@x.com,Ann\n2,b@x.com,Bob\n")),
        ("brand_a/customers/c1_copy.csv", CUSTOMERS.format(rows="1,a@x.com,Ann\n2,b@x.com,Bob\n")),
        ("brand_a/customers/c1.csv", CUSTOMERS.format(rows="1,a@x.com,Anne\n2,b@x.com,Bob\n3,c@x.com,Cy\n")),
    ]
    for path, content in steps:
        drop(landing, path, content)
        duck_outcomes = ingest_folder(duck, folder, now=NOW)
        assert ingest_folder_to_spark(spark_warehouse, folder, now=NOW) == duck_outcomes
    assert [o.status for o in duck_outcomes if not o.already_known] == ["loaded"]
    assert mismatches(duckdb_tables(duck), spark_tables(spark_warehouse)) == {}
    raw = spark_tables(spark_warehouse)["raw_customers"]
    assert sorted(raw["_file_id"].tolist()) == [1, 1, 3, 3, 3]  # file 2 was the copy
    duck.dispose()


def test_partitions_of_a_run_that_died_before_its_manifest_rows_are_cleared(spark_warehouse, tmp_path):
    """A flush that wrote raw partitions but died before the manifest rows leaves rows of a file id the
    manifest does not know; the next run hands that id out again, and only its own rows end up under it."""
    landing = tmp_path / "landing"
    duck = make_engine(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    folder = LandingFolder(landing)
    drop(landing, "brand_a/customers/c1.csv", CUSTOMERS.format(rows="1,a@x.com,Ann\n"))
    ingest_folder(duck, folder, now=NOW)
    ingest_folder_to_spark(spark_warehouse, folder, now=NOW)
    given = {"_file_id": pa.array([2, 2], pa.int32()), "_row_number": pa.array([1, 2], pa.int32()),
             "_brand": pa.array(["brand_a"] * 2), "customer_id": pa.array(["8", "9"]),
             "email": pa.array(["ghost@x.com"] * 2)}
    dead = pa.table({c: given.get(c, pa.nulls(2, pa.string())) for c in raw_column_order("customers")})
    spark_warehouse.write("raw_customers", dead, overwrite=True)
    drop(landing, "brand_a/orders/o1.csv", "order_id,customer_id,ordered_at,total\nA1,1,2025-06-01T10:00:00Z,9.5\n")
    ingest_folder(duck, folder, now=NOW)
    [*_, new] = ingest_folder_to_spark(spark_warehouse, folder, now=NOW)
    assert new.file_id == 2 and new.status == "loaded"
    tables = spark_tables(spark_warehouse)
    assert "ghost@x.com" not in set(tables["raw_customers"]["email"])
    assert mismatches(duckdb_tables(duck), tables) == {}
    duck.dispose()


def test_the_ingest_checks_and_figures_read_the_same_on_spark(both_loads):
    """`landing.report`'s queries, unchanged, through `SparkConnection`: the manifest check that guards
    the ingest stage finds nothing on either engine, and the figures agree."""
    duck, warehouse, _, _ = both_loads
    on_spark = SparkConnection(warehouse)
    with duck.connect() as conn:
        for figures in (raw_row_counts, loaded_row_totals, manifest_counts):
            assert figures(on_spark) == figures(conn)
        assert raw_rows_not_matching_manifest(conn) == [] == raw_rows_not_matching_manifest(on_spark)
        assert raw_rows_not_matching_manifest(on_spark, from_file_id=5) == []
    assert sum(raw_row_counts(on_spark).values()) > 5_000


def test_the_manifest_check_catches_rows_of_no_loaded_file_on_spark(spark_warehouse, tmp_path):
    landing = tmp_path / "landing"
    drop(landing, "brand_a/customers/c1.csv", CUSTOMERS.format(rows="1,a@x.com,Ann\n"))
    ingest_folder_to_spark(spark_warehouse, LandingFolder(landing), now=NOW)
    stray = pa.table({c: pa.array([7], pa.int32()) if c in ("_file_id", "_row_number") else pa.array(["x"])
                      for c in raw_column_order("customers")})
    spark_warehouse.write("raw_customers", stray, overwrite=True)
    assert raw_rows_not_matching_manifest(SparkConnection(spark_warehouse)) == [
        "raw_customers: 1 rows whose _file_id is not a loaded file"]
