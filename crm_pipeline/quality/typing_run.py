"""Standardize each newly loaded file once, into `stg_<entity>` and `row_violations`.

Typed rows are written once, to staging: publishing, next in the stage, moves the rows it does
not stage to `unstaged_<entity>` (most rows stay where they are: no second wide copy). `typed_<entity>`
is the view of both.

New files of one entity are typed together, in batches of up to `batch_rows` rows:
one read, one standardization and one transaction per batch instead of per file, so
a drop of many small files pays the fixed costs (queries, commits, per-call overhead)
once. Lineage stays per row (`_file_id`, `_row_number`) and `typed_files` per file; a
batch commits all of its files or none. Two batches are in flight at once (`overlapped`): while one is
standardized in Python, the other is read from or written to the warehouse on the other core.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.contract import get_entity
from crm_pipeline.overlapped import overlapped
from crm_pipeline.quality.rows import ROW_HASH, standardize_rows
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.engine import is_duckdb
from crm_pipeline.warehouse.quality_schema import create_quality_tables, row_violations, stg_tables, typed_files
from crm_pipeline.warehouse.schema import create_ingest_tables, files, raw_tables

# Rows typed in one go: large enough that fixed costs vanish, small enough to bound memory.
BATCH_ROWS = 500_000
# Batches typed at once: Python's standardizing of one overlaps the engine's reading and writing of the other
# (100k people: typing 11.5 -> 7.7 s on 2 cores). More would only queue for the GIL and hold more memory.
BATCHES_IN_FLIGHT = 2
# Typed rows reach the warehouse in Arrow record batches of this many rows (DuckDB's row group): inserting
# 500,000 rows handed over as one batch took half as much CPU again as the same rows in batches of this size.
ARROW_BATCH_ROWS = 122_880


@dataclass(frozen=True)
class TypedFile:
    file_id: int
    entity: str
    rows: int
    violations: int


@dataclass
class TypingTimes:
    """Wall and CPU seconds per phase of typing (for benchmarks): `read`, `standardize`, `write`, summed over
    batches (batches overlap, so the wall seconds of phases add up to more than typing took). CPU seconds are
    the typing thread's own: DuckDB's threads and the other batch's are not counted in a phase."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, phase: str, wall: float, cpu: float, rows: int = 0) -> None:
        with self.lock:
            self.wall[phase] = self.wall.get(phase, 0.0) + wall
            self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu
            self.rows += rows


class _Phase:
    def __init__(self, times: TypingTimes | None, name: str):
        self.times, self.name = times, name

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def __exit__(self, *exc):
        if self.times is not None:
            self.times.add(self.name, time.perf_counter() - self.wall, time.thread_time() - self.cpu)


def files_to_type(conn: sa.Connection) -> list[sa.Row]:
    already = sa.select(typed_files.c.file_id)
    return conn.execute(
        sa.select(files.c.file_id, files.c.entity, files.c.modified_at, files.c.ingested_at, files.c.rows_loaded)
        .where(files.c.status == "loaded", files.c.file_id.not_in(already)).order_by(files.c.file_id)
    ).all()


def written_days(pending: list[sa.Row]) -> dict[int, pd.Timestamp]:
    """Each file's day of writing (its mtime, else when it was loaded): a file cannot describe what happened
    after it was written, so each row is judged against its own file's day."""
    return {int(f.file_id): pd.Timestamp((f.modified_at or f.ingested_at).date()) for f in pending}


def batches(pending: list[sa.Row], batch_rows: int) -> Iterator[list[sa.Row]]:
    """Pending files grouped by entity, in file order, each group cut at about `batch_rows` rows."""
    by_entity: dict[str, list[sa.Row]] = {}
    for file in pending:
        by_entity.setdefault(file.entity, []).append(file)
    for group in by_entity.values():
        batch, rows = [], 0
        for file in group:
            if batch and rows + (file.rows_loaded or 0) > batch_rows:
                yield batch
                batch, rows = [], 0
            batch.append(file)
            rows += file.rows_loaded or 0
        if batch:
            yield batch


def type_new_files(
    engine: sa.Engine, *, now: datetime, batch_rows: int = BATCH_ROWS, times: TypingTimes | None = None,
    on_batch: Callable[[int, int, int], None] | None = None,
) -> list[TypedFile]:
    """Type every loaded file not typed yet; each batch of files commits with its violations in one transaction.
    `on_batch(files done, files in all, rows typed)` after each batch: progress for whoever watches."""
    create_ingest_tables(engine)
    create_quality_tables(engine)
    with engine.connect() as conn:
        pending = files_to_type(conn)
    done, rows = [], 0
    type_batch = partial(_type_batch, engine, now=now, times=times)
    for typed in overlapped(type_batch, batches(pending, batch_rows), in_flight=BATCHES_IN_FLIGHT):
        done += typed
        rows += sum(f.rows for f in typed)
        if on_batch is not None:
            on_batch(len(done), len(pending), rows)
    return done


def _type_batch(engine: sa.Engine, batch: list[sa.Row], now: datetime, times: TypingTimes | None) -> list[TypedFile]:
    name = batch[0].entity
    entity = get_entity(name)
    ids = [f.file_id for f in batch]
    with _Phase(times, "read"), engine.connect() as conn:
        raw = read_frame(conn, raw_rows_query(conn, name, ids))
    # A file cannot describe what happened after it was written: each row is judged against its own file's day.
    written = written_days(batch)
    with _Phase(times, "standardize"):
        written_on = raw["_file_id"].map(written).astype("datetime64[us]")
        typed = standardize_rows(entity, raw, written_on=written_on)
        violations = typed.violations.assign(entity=name)[[c.name for c in row_violations.columns]]
        rows = pa.Table.from_pandas(typed.rows, preserve_index=False)
        rows = pa.Table.from_batches(rows.to_batches(max_chunksize=ARROW_BATCH_ROWS), schema=rows.schema)
        found = pa.Table.from_pandas(violations, preserve_index=False)
    with _Phase(times, "write"), engine.begin() as conn:
        insert_arrow(conn, stg_tables[name], rows)
        insert_arrow(conn, row_violations, found)
        rows_per_file = typed.rows["_file_id"].value_counts()
        conn.execute(typed_files.insert(), [
            {"file_id": i, "entity": name, "rows_typed": int(rows_per_file.get(i, 0)), "typed_at": now} for i in ids
        ])
    if times is not None:
        times.add("write", 0.0, 0.0, rows=len(typed.rows))
    found_per_file = violations["_file_id"].value_counts()
    return [TypedFile(i, name, int(rows_per_file.get(i, 0)), int(found_per_file.get(i, 0))) for i in ids]


def raw_rows_query(conn: sa.Connection, entity: str, file_ids: list[int]) -> sa.Executable:
    """The raw rows of some files, in file and row order; on DuckDB with the row hash computed in SQL.

    DuckDB returns a scan in insertion order (`preserve_insertion_order`, on by default), and ingestion
    inserts each file's rows in row order, files in id order: there the ORDER BY, a sort of every raw
    column that doubled the read, is left out."""
    table = raw_tables[entity]
    columns = list(table.columns)
    hashed = duckdb_row_hash(conn, [c.name for c in columns if c.name in get_entity(entity).column_names])
    query = sa.select(*columns).where(table.c._file_id.in_(file_ids))
    if hashed is not None:
        return query.add_columns(hashed.label(ROW_HASH))
    return query.order_by(table.c._file_id, table.c._row_number)


def duckdb_row_hash(conn: sa.Connection, names: list[str]) -> sa.ColumnElement | None:
    """DuckDB-only: a 63-bit hash of a row's raw values, computed by the engine (NULL and '' differ).

    Elsewhere None: `standardize_rows` then hashes the raw values in pandas. Equal raw rows get
    equal hashes either way, which is all publishing compares.
    """
    if not is_duckdb(conn):
        return None
    args = ", ".join(f'"{n}"' for n in names)
    return sa.literal_column(f"CAST(hash({args}) >> 1 AS BIGINT)")
