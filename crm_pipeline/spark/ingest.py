"""Landed files into `raw_<entity>` on Spark, with the manifest semantics of `landing.ingest`, not a copy of them.

`landing.ingest` decides everything about a file (vouched by path, size and mtime or hashed; already known;
a duplicate of loaded bytes; rejected by name, encoding or shape; conformed to the contract, erased people
kept out) inside a SQLAlchemy transaction. Here it runs unchanged against a *control* warehouse: a
scratch DuckDB file holding Spark's manifest (`files`) and the erasure suppression list, copied in once
per run (one row per file, one per erased identifier: bounded by neither rows nor people). Its raw rows
and new manifest rows are moved to Spark in flushes of at most `flush_rows` rows, so the driver holds one
flush, never the drop.

A flush writes in this order: the raw partitions (one per file id: an overwrite of exactly those
partitions), the erasure row counts, then the manifest rows. The manifest row is the commit: a run that
dies before it leaves partitions above the manifest's last file id, which the next run empties before
it hands out file ids again from that same last id (`clear_orphans`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.landing.ingest import FileOutcome, ingest_paths
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.warehouse.bulk import duckdb_insert_arrow
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.erasure_schema import erasure_row_counts, erasure_suppressions
from crm_pipeline.warehouse.schema import create_ingest_tables, files, raw_tables
from crm_pipeline.warehouse.spark import SparkWarehouse

FLUSH_ROWS = 500_000
# Tables keyed by the file a row came from, partitioned by its id on Spark (table -> partition column).
FILE_PARTITIONED = {**{t.name: "_file_id" for t in raw_tables.values()}, erasure_row_counts.name: "file_id"}


def create_ingest_tables_on_spark(warehouse: SparkWarehouse) -> None:
    """The manifest, the raw tables and the erasure tables ingestion writes or reads (registered if present)."""
    for table in (files, erasure_suppressions, erasure_row_counts, *raw_tables.values()):
        warehouse.create_table(table, partition_by=FILE_PARTITIONED.get(table.name))


def last_file_id(warehouse: SparkWarehouse) -> int:
    return int(warehouse.spark.sql(f"SELECT COALESCE(MAX(file_id), 0) FROM {warehouse.qualified(files.name)}")
               .collect()[0][0])


def clear_orphans(warehouse: SparkWarehouse) -> list[tuple[str, int]]:
    """Empty the partitions of file ids the manifest has not committed (a run that died mid-flush);
    returns them as (table, file id)."""
    committed = last_file_id(warehouse)
    cleared = []
    for name, column in FILE_PARTITIONED.items():
        for file_id in warehouse.partitions(name):
            if file_id > committed:
                warehouse.clear_partition(name, column, file_id)
                cleared.append((name, file_id))
    return cleared


def ingest_folder_to_spark(warehouse: SparkWarehouse, folder: LandingFolder, *, now: datetime,
                           on_file: Callable[[int, int, FileOutcome], None] | None = None, rehash: bool = False,
                           flush_rows: int = FLUSH_ROWS) -> list[FileOutcome]:
    """Ingest every settled file of the landing folder into Spark's raw tables, exactly once by content hash
    (the outcomes are `landing.ingest`'s, file by file)."""
    create_ingest_tables_on_spark(warehouse)
    clear_orphans(warehouse)
    paths = [f.path for f in folder.scan().files]
    with tempfile.TemporaryDirectory(prefix="crm_spark_control_") as scratch:
        control = make_engine(f"duckdb:///{Path(scratch) / 'control.duckdb'}", temp_directory=Path(scratch) / "tmp")
        try:
            mover = _Mover(warehouse, control, flush_rows)

            def after_file(done: int, total: int, outcome: FileOutcome) -> None:
                mover.file_done(outcome)
                if on_file is not None:
                    on_file(done, total, outcome)

            outcomes = ingest_paths(control, folder, paths, now=now, on_file=after_file, rehash=rehash)
            mover.flush()
        finally:
            control.dispose()
    return outcomes


class _Mover:
    """Copies Spark's manifest and suppression list into the control warehouse, then moves what ingestion
    adds there to Spark, a flush at a time."""

    def __init__(self, warehouse: SparkWarehouse, control: sa.Engine, flush_rows: int) -> None:
        self.warehouse, self.control, self.flush_rows = warehouse, control, flush_rows
        create_ingest_tables(control)
        with control.begin() as conn:
            for table in (files, erasure_suppressions):
                data = warehouse.read_arrow(table.name)
                if data.num_rows:
                    duckdb_insert_arrow(conn, table.name, data.select([c.name for c in table.columns]))
        self.committed = last_file_id(warehouse)
        self.pending_rows = 0

    def file_done(self, outcome: FileOutcome) -> None:
        if outcome.already_known:
            return
        self.pending_rows += outcome.rows_loaded or 0
        if self.pending_rows >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        with self.control.begin() as conn:
            new_files = _arrow(conn, sa.select(files).where(files.c.file_id > self.committed))
            if new_files.num_rows == 0:
                return
            for entity, table in raw_tables.items():
                self.warehouse.write(table.name, _arrow(conn, sa.select(table)), overwrite=True)
                conn.execute(table.delete())
            counts = sa.select(erasure_row_counts).where(erasure_row_counts.c.file_id > self.committed)
            self.warehouse.write(erasure_row_counts.name, _arrow(conn, counts), overwrite=True)
            self.warehouse.write(files.name, new_files, overwrite=False)  # the commit
        self.committed = max(new_files.column("file_id").to_pylist())
        self.pending_rows = 0


def _arrow(conn: sa.Connection, query: sa.Select) -> pa.Table:
    """A query's rows as Arrow, straight from DuckDB (a flush: bounded by `flush_rows`)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return conn.connection.driver_connection.execute(str(compiled)).to_arrow_table()
