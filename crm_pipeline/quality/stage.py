"""The quality stage end to end: type new files, publish staging, validate with Great Expectations."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.contract import get_entity
from crm_pipeline.overlapped import overlapped
from crm_pipeline.quality.publish import PublishReport, publish, withdraw_unpublished
from crm_pipeline.quality.typing_run import TypedFile, type_new_files
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.quality_schema import dq_results
from crm_pipeline.warehouse.schema import files

if TYPE_CHECKING:
    from crm_pipeline.quality import expectations

# A part's progress: (files done, files in all, rows so far).
Progress = Callable[[int, int, int], None]

# Referential integrity as columns the suites can check: a reference that is empty counts as known.
_REFERENCES = {
    "orders": {"_customer_known": "t.customer_id IS NULL OR EXISTS (SELECT 1 FROM stg_customers c "
                                  "WHERE c._brand = t._brand AND c.customer_id = t.customer_id)"},
    "order_items": {
        "_order_known": "EXISTS (SELECT 1 FROM stg_orders o WHERE o._brand = t._brand AND o.order_id = t.order_id)",
        "_product_known": "t.sku IS NULL OR EXISTS (SELECT 1 FROM stg_products p "
                          "WHERE p._brand = t._brand AND p.sku = t.sku)",
    },
}


@dataclass
class StageReport:
    typed: list[TypedFile]
    results: pd.DataFrame  # dq_results rows written by this run
    docs_index: Path | None = None
    runs: list = field(default_factory=list)
    published: PublishReport | None = None


def run_quality_stage(engine: sa.Engine, *, hold_share: float, docs_dir: Path | None, now: datetime,
                      full_refresh: bool = False, on_typed: Progress | None = None,
                      on_published: Progress | None = None, on_validated: Progress | None = None) -> StageReport:
    """Type new files, publish what they change (every key with `full_refresh`), validate the new files.
    `on_typed`, `on_published`, `on_validated` (files done, files in all, rows): each part's progress."""
    try:
        typed = type_new_files(engine, now=now, on_batch=on_typed)
        published = publish(engine, hold_share=hold_share, full_refresh=full_refresh, on_entity=on_published)
    except BaseException:
        with suppress(Exception):  # the warehouse may be what failed; the stage's own error is the one to see
            withdraw_unpublished(engine)
        raise
    runs = validate_files(engine, typed, on_batch=on_validated)
    results = store_results(engine, typed, runs)
    docs_index = None
    if docs_dir and runs:
        from crm_pipeline.quality import expectations

        docs_index = expectations.build_data_docs(runs, docs_dir)
    return StageReport(typed, results, docs_index, runs, published)


# Staged rows validated in one GX run at most (memory: GX copies the batch per expectation).
VALIDATION_BATCH_ROWS = 1_000_000


def validate_files(engine: sa.Engine, typed: list[TypedFile], on_batch: Progress | None = None
                   ) -> list[expectations.ValidationRun]:
    """The newly typed files' staged rows through their entity's suite: one GX run per entity and
    day the files were written (the suite's as-of), up to `VALIDATION_BATCH_ROWS` rows; results per file. The
    next group's rows are read while one is validated.
    `on_batch(files done, files in all, staged rows validated)` after each GX run."""
    if not typed:
        return []
    from crm_pipeline.quality import expectations  # Great Expectations takes seconds to import: only to validate

    with engine.connect() as conn:
        info = {r.file_id: r for r in conn.execute(
            sa.select(files.c.file_id, files.c.path, files.c.modified_at, files.c.ingested_at)
            .where(files.c.file_id.in_([t.file_id for t in typed]))).all()}
    groups: dict[tuple[str, date], list[list[TypedFile]]] = {}
    for file in typed:
        written = info[file.file_id].modified_at or info[file.file_id].ingested_at
        chunks = groups.setdefault((file.entity, written.date()), [[]])
        if chunks[-1] and sum(f.rows for f in chunks[-1]) + file.rows > VALIDATION_BATCH_ROWS:
            chunks.append([])
        chunks[-1].append(file)
    work = [(entity, as_of, chunk) for (entity, as_of), chunks in groups.items() for chunk in chunks]

    def read(item: tuple[str, date, list[TypedFile]]) -> pd.DataFrame:
        with engine.connect() as conn:
            return staged_rows_of_files(conn, item[0], [f.file_id for f in item[2]])

    # The next chunk's rows are read while GX validates this one's (GX runs on this thread only: its context
    # is not thread-safe).
    runs, files_done, rows_done = [], 0, 0
    for (entity, as_of, chunk), frame in zip(work, overlapped(read, work, in_flight=2)):
        paths = {f.file_id: info[f.file_id].path for f in chunk}
        label = paths[chunk[0].file_id] + (f" (+{len(chunk) - 1} files)" if len(chunk) > 1 else "")
        runs += expectations.run_validation_by_file(entity, frame, as_of=as_of, files=paths, label=label)
        files_done, rows_done = files_done + len(chunk), rows_done + len(frame)
        del frame   # before the next chunk is read: two chunks' rows at most
        if on_batch is not None:
            on_batch(files_done, len(typed), rows_done)
    return runs


def store_results(engine: sa.Engine, typed: list[TypedFile], runs: list) -> pd.DataFrame:
    """Replace the `dq_results` rows of the validated files; returns the rows written."""
    frames = [run.results for run in runs]
    if not frames:
        return pd.DataFrame(columns=[c.name for c in dq_results.columns])
    results = pd.concat(frames, ignore_index=True)
    with engine.begin() as conn:
        conn.execute(dq_results.delete().where(dq_results.c.file_id.in_([f.file_id for f in typed])))
        keep = results[[c.name for c in dq_results.columns]]
        insert_arrow(conn, dq_results, pa.Table.from_pandas(keep, preserve_index=False))
    return results


def staged_rows_of_files(conn: sa.Connection, entity: str, file_ids: list[int]) -> pd.DataFrame:
    """Some files' staged rows, in no particular order, plus the referential-integrity columns their suite checks.

    Not sorted: an ORDER BY sorted every column of every row (two thirds of the read on DuckDB), and a scan
    does not keep file and row order (rows a publish moves come last, and DuckDB may interleave a batch's
    rows); validation picks each file's sample rows by row number instead (`run_validation_by_file`).

    Only the columns a suite reads (lineage and the contract's): the derived ones (`_flags`, `_row_hash`,
    `email_match_key`) are sorted, converted and copied by every expectation's filter for nothing."""
    query = sa.text(f"{staged_rows_sql(entity)} WHERE t._file_id IN :ids")
    return read_frame(conn, query.bindparams(sa.bindparam("ids", file_ids, expanding=True)))


def staged_rows_sql(entity: str) -> str:
    """SELECT every staged row of `entity` as its suite reads it (alias `t`): lineage, the contract's columns and the
    referential-integrity flags. Stage SQL, written once for every engine (`warehouse.dialects`)."""
    from crm_pipeline.quality.expectations import LINEAGE_COLUMNS

    columns = ", ".join(f't."{c}"' for c in (*LINEAGE_COLUMNS, *get_entity(entity).column_names))
    extra = "".join(f", ({sql}) AS {name}" for name, sql in _REFERENCES.get(entity, {}).items())
    return f"SELECT {columns}{extra} FROM stg_{entity} t"
