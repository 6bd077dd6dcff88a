"""Great Expectations on Spark: the quality room's suites run on a Spark DataFrame of staged rows through
GX's Spark datasource, so every metric is computed on the executors; the driver gets counts and at most five
unexpected rows per expectation (GX takes them with a `limit`), never rows in proportion to the data.

The suites are `quality.expectations.build_suite`'s, and the results its table (`RESULT_COLUMNS` in a
`ValidationRun`, built by the same `result_row`), so quarantine reporting, Data Docs and asset metadata take
either engine's. What GX's Spark engine reads differently from its pandas one is adapted in one place each:
the suite in `_for_spark`, the batch in `_prepare`, the sample values in `_sample_value`.

What stays different, by design:
- Samples: GX keeps the first five unexpected rows each engine meets. With more than five, which five (and in
  which order) follows each engine's scan order, which neither engine fixes (the pandas batch comes from DuckDB
  in no particular order either); sorting the batch on Spark to fix it would shuffle every row.
- Results per file (`run_validation_by_file`): the pandas path splits one run's results by the file of every
  unexpected row, which would bring every unexpected row to the driver; on Spark, validate each file's rows
  (`staged_rows(..., file_ids=[id])`) as a batch of its own.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

# GX before the quality room: imported here, GX finds pyspark and sets up its Spark engine; the quality room
# imports it with pyspark hidden (a fifth of GX's import, saved on DuckDB runs). In a process where the quality
# room imported it first (one that validated on pandas before), `enable_spark_engine` gives GX pyspark.
import great_expectations.expectations as gxe

from crm_pipeline.contract import get_entity
from crm_pipeline.contract.model import Entity
from crm_pipeline.quality import expectations as suites

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from crm_pipeline.warehouse.spark import SparkWarehouse

suites.enable_spark_engine()


def staged_rows(warehouse: SparkWarehouse, entity_name: str, file_ids: Iterable[int] | None = None) -> DataFrame:
    """The staged rows a suite reads, as `quality.stage.staged_rows_of_files` selects them on DuckDB: lineage,
    the contract's columns and the referential-integrity flags, computed on the executors by the stage's own SQL
    (rendered for Spark, its tables named with the warehouse's database: a session's temporary view called
    `stg_orders` is not what it reads). All files' rows, or those of `file_ids`."""
    from pyspark.sql import functions as F

    from crm_pipeline.quality.stage import staged_rows_sql
    from crm_pipeline.warehouse.dialects import qualify_tables, render

    query = staged_rows_sql(get_entity(entity_name).name)
    rows = warehouse.spark.sql(qualify_tables(render(query, "spark"), warehouse.database))
    return rows if file_ids is None else rows.where(F.col("_file_id").isin([int(i) for i in file_ids]))


def run_validation_on_spark(entity_name: str, df: DataFrame, *, as_of: dt.date, file_label: str
                            ) -> suites.ValidationRun:
    """Validate one batch of `entity_name`'s staged rows (a Spark DataFrame, e.g. `staged_rows`) against its
    suite on Spark; the same results as `quality.expectations.run_validation` gives for those rows in pandas."""
    entity = get_entity(entity_name)
    started = time.perf_counter()
    batch = _prepare(df)
    refs, index_columns = suites.sample_columns(entity, batch.columns)
    try:
        # GX persists the batch (every expectation reads it) and reports the index columns of the unexpected
        # rows itself: on Spark it takes the first five on the executors.
        gx_result, suite = suites.run_suite(entity, batch, as_of, file_label, "SUMMARY", engine="spark",
                                            adapt=_for_spark, index_columns=index_columns)
        rows = batch.count()  # read from the persisted batch: for table-level expectations, as len() on pandas
    finally:
        batch.unpersist()
    return suites.validation_run(
        entity, file_label, as_of, gx_result, suite,
        lambda result: _row(file_label, entity, result, index_columns, refs, rows), started,
    )


def _row(file_label: str, entity: Entity, result: Any, index_columns: list[str], refs: dict[str, str],
         rows: int) -> dict[str, Any]:
    """`result_row` from GX's Spark result: the unexpected rows come as dicts of the index columns and the checked
    ones; values and rows are both taken from them, so they describe the same rows."""
    found = list((result.result or {}).get("partial_unexpected_index_list") or [])[:5]
    kwargs = result.expectation_config.kwargs
    index_rows = [{c: _sample_value(r.get(c)) for c in index_columns} for r in found]
    if "column" in kwargs:
        samples = [_sample_value(r.get(kwargs["column"])) for r in found]
    else:
        samples = [{c: _sample_value(r.get(c)) for c in kwargs.get("column_list", [])} for r in found]
    return suites.result_row(file_label, entity.name, result, index_rows=index_rows, rows=rows,
                             ref_columns=refs, samples=samples if found else None)


def _sample_value(value: Any) -> Any:
    """A value as the pandas path shows it. Spark hands timestamps to Python as naive local times (pandas: UTC);
    dates as dates, where the pandas batch holds them as midnight datetimes (`quality.expectations._prepare`)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc) if value.tzinfo is None else value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return value


def _prepare(df: DataFrame) -> DataFrame:
    """The batch GX sees. Pandas counts a float NaN as missing (GX skips it like NULL); Spark takes NaN as a
    number (greater than any other), so NaN becomes NULL in floating columns. A projection on the executors."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    floats = {f.name: f.dataType for f in df.schema if isinstance(f.dataType, (DoubleType, FloatType))}
    if not floats:
        return df
    return df.select(*(F.nanvl(F.col(f"`{c}`"), F.lit(None).cast(floats[c])).alias(c) if c in floats
                       else F.col(f"`{c}`") for c in df.columns))


def _for_spark(suite: Any) -> Any:
    """The suite as GX's Spark engine must be told it, to mean what it means on pandas (the suite has no type
    expectation, whose type names would differ: booleans are checked by value; JSON is parsed by the same
    `json.loads`, in a Python UDF on the executors).

    - Regexes: pandas gives Python `re`'s answers (Arrow's RE2 only where they agree), Spark runs Java regex. Java's
      `\\d` is ASCII only and its final `$` also matches before a final \\r, \\u0085 or \\u2028; Python's `\\d` is
      any Unicode digit and its `$` the end or a final \\n (`_java_regex`).
    - Date and time bounds without a time zone (the date expectations'): pyspark turns a naive datetime into a
      Spark timestamp in the Python process's local zone; pandas compares them with midnight of the date. Made
      UTC, the session's zone, in which Spark compares a date column as midnight.
    """
    for expectation in suite.expectations:
        if isinstance(expectation, gxe.ExpectColumnValuesToMatchRegex):
            expectation.regex = _java_regex(expectation.regex)
        if isinstance(expectation, gxe.ExpectColumnValuesToBeBetween):
            expectation.min_value = _utc(expectation.min_value)
            expectation.max_value = _utc(expectation.max_value)
    return suite


def _java_regex(regex: str) -> str:
    """`regex` (Python `re`) as a Java regex matching the same strings, for what the suites' patterns use."""
    regex = _UNESCAPED_DIGIT.sub(r"\1\\p{Nd}", regex)
    return _UNESCAPED_END.sub(r"\1(?=\\n?\\z)", regex)


# `\d` and a final `$`, not escaped (an even number of backslashes before them)
_UNESCAPED_DIGIT = re.compile(r"(?<!\\)((?:\\\\)*)\\d")
_UNESCAPED_END = re.compile(r"(?<!\\)((?:\\\\)*)\$$")


def _utc(bound: Any) -> Any:
    if isinstance(bound, dt.datetime) and bound.tzinfo is None:
        return bound.replace(tzinfo=dt.timezone.utc)
    return bound
