"""The GX suites run on Spark `local[2]` give the pandas path's results for the same staged rows.

A small generated landing is loaded and typed on DuckDB, hand-made staged rows that break the suites are
appended to four staging tables, and the staging tables are copied to a Spark warehouse as they are: the same
rows on both sides, so a difference is GX's engines' (typing on Spark has its own parity test). Every entity is
validated by `run_validation` (pandas, the frame DuckDB's quality stage reads) and by `run_validation_on_spark`
(the Spark DataFrame of `staged_rows`). Per expectation the verdict, element, unexpected and missing counts,
percents (to 1e-9) and errors must be equal; so must the samples, as sets where an expectation has at most five
unexpected rows (with more, which five each engine keeps follows its scan order: see `spark.expectations`).
The bad rows include what each engine reads its own way (a final \r or \n, Unicode digits, a NaN, the as-of
day's birth dates), and one test validates from a process east of UTC.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.quality.expectations import build_data_docs, run_validation
from crm_pipeline.quality.stage import staged_rows_of_files
from crm_pipeline.quality.typing_run import type_new_files
from crm_pipeline.spark.expectations import run_validation_on_spark, staged_rows
from crm_pipeline.synth.generate import generate
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.quality_schema import stg_tables
from crm_pipeline.warehouse.spark import SparkWarehouse

NOW = datetime(2025, 7, 1, 6, 0, tzinfo=timezone.utc)
AS_OF = date(2025, 6, 30)
# Staged rows no typing would stage, as DuckDB expressions replacing columns of a real staged row: one file
# per entity (its `_file_id`), a row per dict.
BAD_ROWS = {
    "orders": (9001, [
        {"order_id": "'BAD1'", "status": "'lost'"},                          # not an allowed status
        {"order_id": "'BAD1'"},                                              # the key again
        {"order_id": "'BAD2'", "total": "-5.0"},                             # negative money
        {"order_id": "'BAD3'", "ordered_at": "TIMESTAMPTZ '2030-01-01 00:00:00+00'"},  # after the as-of day
        {"order_id": "'BAD4'", "email": "'Ann@Example.com'",                 # capitals; a final \r, which
         "shipping_country": "'US' || chr(13)"},                             # Java's `$` alone accepts
        {"order_id": "'BAD9'", "shipping_country": "'US' || chr(10)"},       # Python's `$` accepts a final \n
        {"order_id": "'BAD5'", "customer_id": "NULL", "email": "NULL"},     # no one to link it to
        {"order_id": "'BAD6'", "customer_id": "'nobody'"},                   # an unknown customer
        {"order_id": "NULL"},                                                # required
        {"order_id": "'BAD8'", "subtotal": "'NaN'::DOUBLE"},                 # NaN: missing on pandas
    ]),
    "customers": (9002, [
        {"customer_id": "'BADC1'", "birth_date": "DATE '2025-07-01'"},      # the day after as-of
        {"customer_id": "'BADC2'", "birth_date": "DATE '2025-06-30'"},      # the as-of day itself: fine
        {"customer_id": "'BADC3'", "birth_date": "DATE '1899-12-31'"},      # before 1900
        {"customer_id": "'BADC4'", "created_at": "TIMESTAMPTZ '1989-12-31 23:59:59+00'"},  # before 1990
        {"customer_id": "'BADC5'", "phone": "'12345'", "country": "'usa'"},  # not E.164, not alpha-2
        {"customer_id": "'BADC6'", "phone": "'+1202555' || chr(1632) || chr(1633)"},  # Unicode digits: \d on pandas
    ]),
    "subscribers": (9003, [
        {"subscriber_id": "'BADS1'", "preferences": "'{\"topics\": [shoes'"},  # not JSON
        {"subscriber_id": "'BADS2'", "status": "'gone'"},
    ]),
    "order_items": (9004, [
        {"order_id": "'NOPE'"},                                              # no such order
        {"line_number": "0", "quantity": "0"},                               # numbered from 1; no units
    ]),
}
# Expectations the bad rows make fail, on both engines.
FAILING = {
    "orders": {"expect_column_values_to_be_in_set(status)", "expect_column_values_to_be_between(total)",
               "expect_column_values_to_be_between(ordered_at)", "expect_column_values_to_match_regex(email)",
               "expect_compound_columns_to_be_unique(_brand, order_id)",
               "expect_column_values_to_not_be_null(order_id)"},
    "customers": {"expect_column_values_to_be_between(birth_date)",
                  "expect_column_values_to_be_between(created_at)"},
    "subscribers": {"expect_column_values_to_be_json_parseable(preferences)",
                    "expect_column_values_to_be_in_set(status)"},
    "order_items": {"expect_column_values_to_be_in_set(_order_known)",
                    "expect_column_values_to_be_between(line_number)",
                    "expect_column_values_to_not_be_in_set(quantity)"},
}
GX_FIGURES = ("element_count", "unexpected_count", "missing_count", "unexpected_percent", "missing_percent",
              "unexpected_percent_nonmissing", "unexpected_percent_total", "observed_value")


def add_bad_rows(conn: sa.Connection, entity: str) -> None:
    file_id, rows = BAD_ROWS[entity]
    for number, changes in enumerate(rows, start=1):
        replaced = ", ".join(f"{sql} AS {column}" for column, sql in
                             {"_file_id": str(file_id), "_row_number": str(number), **changes}.items())
        conn.execute(sa.text(f"INSERT INTO stg_{entity} SELECT * REPLACE ({replaced}) FROM stg_{entity} "
                             "WHERE _file_id < 9000 ORDER BY _file_id, _row_number LIMIT 1"))


def copy_to_spark(duck: sa.Engine, warehouse: SparkWarehouse) -> None:
    with duck.connect() as conn:
        raw = conn.connection.driver_connection
        for table in stg_tables.values():
            warehouse.create_table(table, partition_by="_file_id")
            warehouse.write(table.name, raw.execute(f"SELECT * FROM {table.name}").arrow().read_all(),
                            overwrite=True)


@pytest.fixture(scope="module")
def staged(spark, tmp_path_factory):
    """The same staged rows on both engines: ({entity: the frame DuckDB's quality stage reads}, the Spark warehouse)."""
    root = tmp_path_factory.mktemp("spark_gx")
    generate(root / "data", people=30, brands=1, days=30, seed=3, end_date=AS_OF)
    duck = make_engine(f"duckdb:///{root / 'warehouse.duckdb'}")
    ingest_folder(duck, LandingFolder(root / "data" / "landing"), now=NOW)
    type_new_files(duck, now=NOW)
    with duck.begin() as conn:
        for entity in BAD_ROWS:
            add_bad_rows(conn, entity)
    warehouse = SparkWarehouse(spark, root / "spark_warehouse", database="crm_parity_gx")
    copy_to_spark(duck, warehouse)
    frames = {}
    with duck.connect() as conn:
        for entity in ENTITIES:
            files = conn.execute(sa.text(f"SELECT DISTINCT _file_id FROM stg_{entity}")).scalars().all()
            frames[entity] = staged_rows_of_files(conn, entity, list(files))
    duck.dispose()
    return frames, warehouse


@pytest.fixture(scope="module")
def both_runs(staged):
    """Every entity's staged rows validated on pandas and on Spark: {entity: (pandas run, Spark run)}."""
    frames, warehouse = staged
    return {entity: (run_validation(entity, frames[entity], as_of=AS_OF, file_label=entity),
                     run_validation_on_spark(entity, staged_rows(warehouse, entity), as_of=AS_OF, file_label=entity))
            for entity in ENTITIES}


def gx_figures(run) -> list[tuple[str, dict]]:
    """GX's own figures per expectation, in suite order (each run's suite has its own expectation ids)."""
    order = {e.id: i for i, e in enumerate(run.suite.expectations)}
    results = sorted(run.gx_result.results, key=lambda r: order[r.expectation_config.id])
    return [(r.expectation_config.type, {k: (r.result or {}).get(k) for k in GX_FIGURES}) for r in results]


def same(left, right) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9)
    return left == right


def as_set(text: str) -> list[str]:
    return sorted(json.dumps(v, sort_keys=True) for v in json.loads(text))


def assert_same_results(pandas_run, spark_run) -> None:
    left, right = pandas_run.results, spark_run.results
    assert list(left.columns) == list(right.columns)
    assert list(left["expectation"]) == list(right["expectation"])
    for column in ("file", "suite", "success", "unexpected_count", "evaluated_rows", "exception"):
        assert list(left[column]) == list(right[column]), column
    assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
               for a, b in zip(left["unexpected_percent"], right["unexpected_percent"]))
    assert not any(left["exception"])
    for (kind, a), (kind_r, b) in zip(gx_figures(pandas_run), gx_figures(spark_run), strict=True):
        assert kind == kind_r and all(same(a[k], b[k]) for k in GX_FIGURES), (kind, a, b)
    for row_l, row_r in zip(left.itertuples(), right.itertuples()):
        if row_l.unexpected_count <= 5:  # all of them: the same rows on both engines
            assert as_set(row_l.sample_values) == as_set(row_r.sample_values), row_l.expectation
            assert as_set(row_l.sample_rows) == as_set(row_r.sample_rows), row_l.expectation
        else:
            assert len(json.loads(row_r.sample_values)) == len(json.loads(row_l.sample_values)) == 5


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_spark_gives_the_pandas_results(both_runs, entity):
    assert_same_results(*both_runs[entity])


def test_a_process_outside_utc_gets_the_same_results(staged, both_runs, monkeypatch):
    """pyspark reads a naive datetime (the date bounds) and shows a timestamp in the process's zone; the session
    computes in UTC. East of UTC, an unadapted bound moves the as-of day's birth dates out of range."""
    _, warehouse = staged
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        run = run_validation_on_spark("customers", staged_rows(warehouse, "customers"), as_of=AS_OF,
                                      file_label="customers")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert_same_results(both_runs["customers"][0], run)


@pytest.mark.parametrize("entity", list(FAILING))
def test_the_bad_rows_fail_on_both_engines(both_runs, entity):
    for run in both_runs[entity]:
        failed = set(run.results.loc[~run.results["success"], "expectation"])
        assert FAILING[entity] <= failed, FAILING[entity] - failed


def test_spark_results_show_the_bad_values_as_pandas_does(both_runs):
    _, spark_run = both_runs["orders"]
    results = spark_run.results.set_index("expectation")
    country = results.loc["expect_column_values_to_match_regex(shipping_country)"]
    assert country["unexpected_count"] == 1 and json.loads(country["sample_values"]) == ["US\r"]
    late = results.loc["expect_column_values_to_be_between(ordered_at)"]
    assert json.loads(late["sample_values"]) == ["2030-01-01T00:00:00+00:00"]
    [row] = json.loads(late["sample_rows"])
    assert {k: row[k] for k in ("_file_id", "_row_number", "order_id")} == {
        "_file_id": 9001, "_row_number": 4, "order_id": "BAD3"}
    unknown = results.loc["expect_column_values_to_be_in_set(_customer_known)"]
    assert json.loads(unknown["sample_values"]) == ["nobody"]
    born = both_runs["customers"][1].results.set_index("expectation").loc[
        "expect_column_values_to_be_between(birth_date)"]
    assert born["unexpected_count"] == 2
    assert sorted(json.loads(born["sample_values"])) == ["1899-12-31T00:00:00", "2025-07-01T00:00:00"]


def test_a_temporary_view_named_like_a_staging_table_does_not_stand_in_for_it(staged):
    frames, warehouse = staged
    views = ("stg_orders", "stg_customers")  # the rows, and the table the orders' flag reads
    for name in views:
        warehouse.spark.createDataFrame([("x",)], "_brand string").createOrReplaceTempView(name)
    try:
        rows = staged_rows(warehouse, "orders")
        assert rows.count() == len(frames["orders"])
        assert rows.where("_customer_known").count() == int(frames["orders"]["_customer_known"].sum())
    finally:
        for name in views:
            warehouse.spark.catalog.dropTempView(name)


def test_a_spark_run_goes_into_data_docs(both_runs, tmp_path):
    index = build_data_docs([both_runs["subscribers"][1]], tmp_path / "docs")
    assert "subscribers" in index.read_text()


@pytest.mark.parametrize("first", ["pyspark.sql", "crm_pipeline.quality.expectations"])
def test_gx_has_its_spark_engine_whichever_was_imported_first(first):
    """A Spark run imports pyspark first (its session), and GX finds it; a process that validated on pandas first
    has GX with pyspark hidden (the quality room's import), and `enable_spark_engine` rebinds it."""
    script = (
        f"import {first}\n"
        "import pyspark.sql.functions as F, pyspark.sql\n"
        "import crm_pipeline.spark.expectations\n"
        "from great_expectations.execution_engine import sparkdf_execution_engine as engine\n"
        "from great_expectations.datasource.fluent import spark_datasource as source\n"
        "assert engine.F is F and source.DataFrame is pyspark.sql.DataFrame, (engine.F, source.DataFrame)\n"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", script], check=True)
