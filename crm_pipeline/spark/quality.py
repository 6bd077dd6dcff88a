"""Typing on Spark: each new raw file's rows standardized on the executors by the quality room's own
`standardize_rows`, into `stg_<entity>` and `row_violations` as the DuckDB path writes them, then `typed_files`.

Nothing of the standardizers is copied: `mapInArrow` hands each executor's raw rows, a batch at a time, to
`standardize_rows`, in the pandas dtypes the DuckDB path reads them in (`bulk.read_frame`'s). The row hash
is DuckDB's `hash()` (`typing_run.duckdb_row_hash`), computed by an in-memory DuckDB inside the executor over
the same raw text, so `_row_hash` is equal on both engines, and so is every decision made from it downstream.

One pass yields both outputs: typed rows, and violations in three extra columns on rows of their own; the
pass is persisted and written twice. Typed tables and `row_violations` are partitioned by `_file_id`: a write
overwrites exactly the partitions of the files it types (dynamic partition overwrite), after emptying any a
run that died before its commit left there, so a retried run is harmless. The `typed_files` rows, appended
last per pass, are the commit: a file is typed once (`typing_run.files_to_type`, unchanged, decides which).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES, get_entity
from crm_pipeline.quality.rows import ROW_HASH, standardize_rows, typed_column_names
from crm_pipeline.quality.typing_run import TypedFile, batches, duckdb_row_hash, files_to_type, written_days
from crm_pipeline.spark.ingest import create_ingest_tables_on_spark
from crm_pipeline.warehouse.bulk import _pandas_types  # the dtypes DuckDB's typing reads raw text in
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.quality_schema import (
    row_violations, stg_tables, typed_files, typed_rows_sql, unstaged_tables,
)
from crm_pipeline.warehouse.schema import raw_tables
from crm_pipeline.warehouse.spark import SparkConnection, SparkWarehouse

# Raw rows standardized in one call on an executor: the per-call costs vanish, an executor's memory stays bounded.
BATCH_ROWS = 50_000
# Raw rows typed in one pass and commit: the persisted pass stays a few GB of the executors' memory and disks,
# and a run that dies loses one pass's work at most.
JOB_ROWS = 20_000_000
# Tables typing writes by file (partition column). unstaged_<entity> is publish's, but holds typed rows too:
# a stale partition there would show in typed_<entity>.
TYPED_PARTITIONED = {**{t.name: "_file_id" for t in (*stg_tables.values(), *unstaged_tables.values())},
                     row_violations.name: "_file_id"}
# A violation travels in the typed rows' pass as a row of its own with these columns set (the rule never NULL).
VIOLATION_COLUMNS = {"_violation_column": "column", "_violation_rule": "rule", "_violation_raw_value": "raw_value"}


def create_typing_tables_on_spark(warehouse: SparkWarehouse) -> None:
    """The tables typing reads and writes, and the `typed_<entity>` views (staged and unstaged rows), from the
    view body the DuckDB warehouse uses, rendered for Spark."""
    create_ingest_tables_on_spark(warehouse)
    for table in (typed_files, row_violations, *stg_tables.values(), *unstaged_tables.values()):
        warehouse.create_table(table, partition_by=TYPED_PARTITIONED.get(table.name))
    for name in ENTITIES:
        warehouse.create_view(f"typed_{name}", typed_rows_sql(name))


def type_new_files_on_spark(warehouse: SparkWarehouse, *, now: datetime, job_rows: int = JOB_ROWS) -> list[TypedFile]:
    """Type every loaded file not typed yet: the same files, rows and violations as `typing_run.type_new_files`,
    in one pass on the executors per entity's files of up to `job_rows` rows (`typing_run.batches`), each
    committed on its own."""
    create_typing_tables_on_spark(warehouse)
    pending = files_to_type(SparkConnection(warehouse))  # one row per file: bounded by files, not rows
    done: list[TypedFile] = []
    for batch in batches(pending, job_rows):
        done += _type_batch(warehouse, batch[0].entity, batch, now)
    return done


def _type_batch(warehouse: SparkWarehouse, name: str, batch: list, now: datetime) -> list[TypedFile]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    ids = [int(f.file_id) for f in batch]
    written = written_days(batch)
    stg = stg_tables[name].name
    typed_schema = _typed_schema(warehouse, name)
    raw = warehouse.spark.table(warehouse.qualified(raw_tables[name].name)).where(F.col("_file_id").isin(ids))
    passed = raw.mapInArrow(_standardizer(name, written, typed_schema), typed_schema)
    passed = passed.persist(StorageLevel.MEMORY_AND_DISK)  # standardized once, written twice
    try:
        rows = passed.where(F.col("_violation_rule").isNull()).select(*typed_column_names(get_entity(name)))
        found = passed.where(F.col("_violation_rule").isNotNull()).select(
            F.lit(name).alias("entity"), "_file_id", "_row_number",
            *(F.col(c).alias(target) for c, target in VIOLATION_COLUMNS.items()))
        for table in (stg, unstaged_tables[name].name, row_violations.name):
            _clear_uncommitted(warehouse, table, ids)
        warehouse.write_frame(stg, rows, overwrite=True)
        warehouse.write_frame(row_violations.name, found, overwrite=True)
        counts = {int(r._file_id): (int(r.typed), int(r.found)) for r in passed.groupBy("_file_id").agg(
            F.count_if(F.col("_violation_rule").isNull()).alias("typed"),
            F.count_if(F.col("_violation_rule").isNotNull()).alias("found")).collect()}
    finally:
        passed.unpersist()
    commit = pa.table({
        "file_id": pa.array(ids, pa.int32()), "entity": pa.array([name] * len(ids)),
        "rows_typed": pa.array([counts.get(i, (0, 0))[0] for i in ids], pa.int32()),
        "typed_at": pa.array([now] * len(ids), pa.timestamp("us", tz="UTC")),
    })
    warehouse.write(typed_files.name, commit, overwrite=False)  # the commit
    return [TypedFile(i, name, *counts.get(i, (0, 0))) for i in ids]


def _clear_uncommitted(warehouse: SparkWarehouse, table: str, file_ids: list[int]) -> None:
    """Empty the partitions of files about to be typed that a run dying before its commit left behind: a retry
    with another version of the standardizers could leave a stale partition its own output does not overwrite."""
    pending = set(file_ids)
    for file_id in warehouse.partitions(table):
        if file_id in pending:
            warehouse.clear_partition(table, "_file_id", file_id)


def _typed_schema(warehouse: SparkWarehouse, name: str):
    """The pass's Spark schema: the staging table's columns in `typed_column_names` order, then the violation's."""
    from pyspark.sql.types import StringType, StructField, StructType

    fields = {f.name: f for f in warehouse.spark.table(warehouse.qualified(stg_tables[name].name)).schema}
    return StructType([fields[c] for c in typed_column_names(get_entity(name))]
                      + [StructField(c, StringType()) for c in VIOLATION_COLUMNS])


def _standardizer(name: str, written: dict[int, pd.Timestamp], schema):
    """The function each executor runs over its raw record batches (small closures: one entry per file)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_schema = to_arrow_schema(schema, timezone="UTC")

    def standardize(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for raw in _regrouped(batches, BATCH_ROWS):
            yield from _standardize_batch(name, raw, written, arrow_schema)

    return standardize


def _regrouped(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Spark's Arrow batches (10,000 rows by default) gathered into tables of about `rows` rows."""
    held, count = [], 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(held)
            held, count = [], 0
    if count:
        yield pa.Table.from_batches(held)


def _standardize_batch(name: str, raw: pa.Table, written: dict[int, pd.Timestamp],
                       schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    entity = get_entity(name)
    frame = raw.to_pandas(types_mapper=_pandas_types)
    frame[ROW_HASH] = _duckdb_row_hashes(raw, [c.name for c in raw_tables[name].columns
                                               if c.name in entity.column_names])
    written_on = frame["_file_id"].map(written).astype("datetime64[us]")
    typed = standardize_rows(entity, frame, written_on=written_on)
    yield _record_batch(typed.rows, schema)
    if len(typed.violations):
        yield _record_batch(typed.violations.rename(columns={v: k for k, v in VIOLATION_COLUMNS.items()}), schema)


def _record_batch(frame: pd.DataFrame, schema: pa.Schema) -> pa.RecordBatch:
    """`frame`'s columns cast to the pass's Arrow types; columns it lacks are NULL."""
    arrays = [_array(frame[f.name], f.type) if f.name in frame.columns else pa.nulls(len(frame), f.type)
              for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _array(values: pd.Series, arrow_type: pa.DataType) -> pa.Array:
    array = pa.array(values, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):  # Arrow-backed text
        array = array.combine_chunks()
    return array.cast(arrow_type)


@lru_cache(maxsize=1)
def _row_hasher() -> sa.Engine:
    """One in-memory DuckDB per executor process, one thread (the executor's cores are Spark's to share)."""
    return make_engine("duckdb:///:memory:", threads=1)


def _duckdb_row_hashes(raw: pa.Table, names: list[str]) -> pd.Series:
    """`typing_run.duckdb_row_hash` over the raw text, as the DuckDB warehouse computes it (row order kept:
    a projection of one registered Arrow table)."""
    with _row_hasher().connect() as conn:
        expression = duckdb_row_hash(conn, names).compile(dialect=conn.dialect)
        duck = conn.connection.driver_connection
        duck.register("raw_batch", raw.select(names))
        try:
            hashes = duck.execute(f"SELECT {expression} AS h FROM raw_batch").fetchnumpy()["h"]
        finally:
            duck.unregister("raw_batch")
    return pd.Series(hashes, dtype="int64")
