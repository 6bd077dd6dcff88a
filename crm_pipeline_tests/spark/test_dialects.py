"""Stage SQL written once runs on DuckDB, PostgreSQL and Spark SQL with the same results.

The statements are the stages' own (fragments from `profiles.sql` and `scoring.sql`, the price terciles,
the scoring stage's purchases), run on small tables whose values sit on the traps: a timestamp a
microsecond before UTC midnight, fractional seconds, a leap day, a NULL status, tied prices.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from crm_pipeline.profiles import sql as profile_sql
from crm_pipeline.profiles.sql import PRICE_TERCILE_CUTS, as_of_params
from crm_pipeline.scoring import daily as scoring_daily
from crm_pipeline.scoring.sql import utc_hour, weekday_index
from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.dialects import NotPortable, column_type, engine_name, render
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.schema import files
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401 (the session's server, if any)
from crm_pipeline_tests.postgres.test_parity import compare

UTC = timezone.utc
test_tables = sa.MetaData()
timeline = sa.Table(
    "timeline", test_tables,
    sa.Column("contact_id", sa.String), sa.Column("brand", sa.String), sa.Column("source_key", sa.String),
    sa.Column("event_type", sa.String), sa.Column("occurred_at", sa.DateTime(timezone=True)),
)
stg_orders = sa.Table(
    "stg_orders", test_tables,
    sa.Column("_brand", sa.String), sa.Column("order_id", sa.String), sa.Column("status", sa.String),
    sa.Column("channel", sa.String), sa.Column("subtotal", sa.Double), sa.Column("discount_total", sa.Double),
)
stg_products = sa.Table(
    "stg_products", test_tables,
    sa.Column("_brand", sa.String), sa.Column("sku", sa.String), sa.Column("category", sa.String),
    sa.Column("price", sa.Double),
)

MOMENTS = [datetime(2025, 6, 29, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2025, 6, 30, 0, 0, tzinfo=UTC),
           datetime(2025, 6, 30, 13, 45, 10, 500_000, tzinfo=UTC), datetime(1999, 12, 31, 22, 30, tzinfo=UTC),
           datetime(2024, 2, 29, 7, 0, 1, tzinfo=UTC), datetime(2025, 5, 31, 18, 0, tzinfo=UTC),
           datetime(1969, 12, 25, 23, 30, tzinfo=UTC)]  # before 1970: a negative epoch, still hour 23, a Thursday
DATA = {
    timeline: pa.table({
        "contact_id": ["C1", "C1", "C2", "C3", "C2", "C1", "C3"],
        "brand": ["a", "a", "a", "b", "b", "a", "b"],
        "source_key": ["O1", "O2", "O3", "O4", "E1", "E2", "E3"],
        "event_type": ["order", "order", "order", "order", "email_click", "email_open", "email_open"],
        "occurred_at": pa.array(MOMENTS, pa.timestamp("us", tz="UTC")),
    }),
    stg_orders: pa.table({
        "_brand": ["a", "a", "a", "b"], "order_id": ["O1", "O2", "O3", "O4"],
        "status": ["completed", "refunded", None, "completed"], "channel": ["web", "app", "store", "web"],
        "subtotal": [100.0, 50.0, 0.0, 79.9], "discount_total": [10.0, None, 0.0, 7.99],
    }),
    stg_products: pa.table({
        "_brand": ["a"] * 6 + ["b"] * 3, "sku": [f"S{i}" for i in range(9)],
        "category": ["Women > Shoes > Boots", "Women", " > Men", "Kids > Toys", None, "Home>Decor", "Men", "Men",
                     "Garden"],
        "price": [10.0, 20.0, 20.0, 35.5, 80.0, 99.99, 5.0, None, 7.25],
    }),
}

AS_OF = date(2025, 6, 30)
FRAGMENTS = f"""
SELECT t.contact_id, t.source_key,
       {profile_sql.utc_day('t.occurred_at')} AS day_number,
       {profile_sql.utc_day_date('t.occurred_at')} AS utc_day_date,
       {profile_sql.utc_date('t.occurred_at')} AS utc_date,
       {utc_hour('t.occurred_at')} AS hour,
       {weekday_index(profile_sql.utc_day('t.occurred_at'))} AS weekday,
       CASE WHEN {profile_sql.counts('t.occurred_at')} THEN 1 ELSE 0 END AS counts_as_of,
       CASE WHEN t.occurred_at >= :since_30d THEN 1 ELSE 0 END AS in_last_30_days,
       {profile_sql.latest_of('t.occurred_at', 'o.ordered_before')} AS latest
FROM timeline t
LEFT JOIN (SELECT contact_id, MIN(occurred_at) AS ordered_before FROM timeline
           WHERE event_type = 'order' GROUP BY contact_id) o ON o.contact_id = t.contact_id
"""
PRODUCT_TEXT = f"""
SELECT _brand, {profile_sql.top_level_category('category')} AS top_category, {profile_sql.money_text('price')} AS price,
       {profile_sql.text('CAST(price * 100 AS BIGINT)')} AS cents_text
FROM stg_products
"""
CATEGORY_LISTS = f"""
SELECT _brand, {profile_sql.string_list_agg(profile_sql.top_level_category('category'), distinct=True)} AS categories,
       COUNT(*) AS product_count
FROM stg_products GROUP BY _brand
"""
TERCILES = f"WITH {PRICE_TERCILE_CUTS} SELECT brand, low_max, mid_max FROM cuts"
BUYS = "SELECT * FROM tmp_scoring_buys"
STATEMENTS = {"fragments": FRAGMENTS, "product_text": PRODUCT_TEXT, "category_lists": CATEGORY_LISTS,
              "price_terciles": TERCILES}


def test_duckdb_and_postgresql_run_the_source_as_written():
    assert render(FRAGMENTS, "duckdb") == FRAGMENTS and render(FRAGMENTS, "postgres") == FRAGMENTS


def test_spark_gets_epoch_seconds_it_can_compute_and_keeps_the_bound_parameters():
    rendered = render(FRAGMENTS, "spark")
    assert "EPOCH" not in rendered.upper() and "UNIX_MICROS" in rendered
    assert ":as_of_end" in rendered and ":since_30d" in rendered


@pytest.mark.parametrize("statement", ["DELETE FROM scoring_daily WHERE contact_id IN (SELECT contact_id FROM t)",
                                       "UPDATE files SET mtime_ns = 1 WHERE file_id = 2"])
def test_row_edits_are_refused_for_spark_with_what_to_do_instead(statement):
    with pytest.raises(NotPortable, match="overwrite the table or partition"):
        render(statement, "spark")
    assert render(statement, "duckdb") == statement


def test_unknown_engine_is_named():
    with pytest.raises(ValueError, match="unknown engine 'trino'"):
        render("SELECT 1", "trino")


def test_table_definitions_give_each_engine_its_column_types():
    spark_types = {c.name: column_type(c.type, "spark") for c in files.columns}
    assert spark_types["file_id"] == "INT" and spark_types["size_bytes"] == "BIGINT"
    assert spark_types["path"] == "STRING" and spark_types["ingested_at"] == "TIMESTAMP"
    assert column_type(files.c.ingested_at.type, "postgres") == "TIMESTAMP WITH TIME ZONE"


def test_engine_names(spark, tmp_path):
    assert engine_name(spark) == "spark"
    assert engine_name(make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")) == "duckdb"


def _load_sa(engine: sa.Engine) -> None:
    test_tables.create_all(engine)
    with engine.begin() as conn:
        for table, data in DATA.items():
            insert_arrow(conn, table, data)


def _run_sa(engine: sa.Engine, name: str, params: dict) -> pd.DataFrame:
    kind = engine_name(engine)
    with engine.begin() as conn:
        if name == "buys":
            conn.execute(sa.text(render(scoring_daily._buys_sql(full=True), kind)))
            return pd.read_sql(sa.text(render(BUYS, kind)), conn)
        return pd.read_sql(sa.text(render(STATEMENTS[name], kind)), conn, params=params)


@pytest.fixture(scope="module")
def engines(tmp_path_factory, request):
    """The test tables on DuckDB, and on PostgreSQL when a server can be started here."""
    found = {"duckdb": make_engine(f"duckdb:///{tmp_path_factory.mktemp('dialects') / 'w.duckdb'}")}
    try:
        server = request.getfixturevalue("postgres_server")
        found["postgres"] = make_engine(server.create_database("crm_dialects"))
    except pytest.skip.Exception:
        pass
    for engine in found.values():
        _load_sa(engine)
    yield found
    for engine in found.values():
        engine.dispose()


@pytest.fixture(scope="module")
def spark_views(spark):
    for table, data in DATA.items():
        spark.createDataFrame(data).createOrReplaceTempView(table.name)
    return spark


@pytest.mark.parametrize("name", [*STATEMENTS, "buys"])
def test_a_stage_statement_gives_the_same_rows_on_every_engine(name, spark_views, engines):
    params = as_of_params(AS_OF)
    expected = _run_sa(engines["duckdb"], name, params)
    assert len(expected) > 1
    results = {kind: _run_sa(engine, name, params) for kind, engine in engines.items() if kind != "duckdb"}
    if name == "buys":
        spark_views.sql(render(scoring_daily._buys_sql(full=True), "spark"))
        results["spark"] = spark_views.sql(render(BUYS, "spark")).toPandas()
    else:
        results["spark"] = spark_views.sql(render(STATEMENTS[name], "spark"), args=params).toPandas()
    assert {kind: compare(expected, got) for kind, got in results.items()} == {kind: [] for kind in results}


def test_the_day_cut_is_utc_on_spark(spark_views):
    """Checked against Python's own calendar, not only against DuckDB."""
    got = spark_views.sql(render(FRAGMENTS, "spark"), args=as_of_params(AS_OF)).toPandas()
    by_key = got.set_index("source_key")
    for key, moment in zip(DATA[timeline]["source_key"].to_pylist(), MOMENTS):
        assert by_key.loc[key, "day_number"] == (moment.date() - date(1970, 1, 1)).days
        assert by_key.loc[key, "hour"] == moment.hour
        assert by_key.loc[key, "weekday"] == moment.weekday()
    assert by_key.loc["O1", "counts_as_of"] == 1 and by_key.loc["O2", "in_last_30_days"] == 1
    assert (MOMENTS[5] >= as_of_params(AS_OF)["since_30d"]) == bool(by_key.loc["E2", "in_last_30_days"])
    assert timedelta(0) < MOMENTS[1] - MOMENTS[0] < timedelta(milliseconds=1)
