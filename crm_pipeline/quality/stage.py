"""The quality stage end to end: type new files, publish staging, validate with Great Expectations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.quality import expectations
from crm_pipeline.quality.publish import publish
from crm_pipeline.quality.typing_run import TypedFile, type_new_files
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.quality_schema import dq_results
from crm_pipeline.warehouse.schema import files

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


def run_quality_stage(engine: sa.Engine, *, hold_share: float, docs_dir: Path | None, now: datetime) -> StageReport:
    typed = type_new_files(engine, now=now)
    publish(engine, hold_share=hold_share)
    runs, frames = [], []
    for file in typed:
        run = validate_file(engine, file.file_id, file.entity)
        runs.append(run)
        frames.append(run.results)
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[c.name for c in dq_results.columns])
    if frames:
        with engine.begin() as conn:
            ids = [f.file_id for f in typed]
            conn.execute(dq_results.delete().where(dq_results.c.file_id.in_(ids)))
            keep = results[[c.name for c in dq_results.columns]]
            insert_arrow(conn, dq_results, pa.Table.from_pandas(keep, preserve_index=False))
    docs_index = expectations.build_data_docs(runs, docs_dir) if (docs_dir and runs) else None
    return StageReport(typed, results, docs_index, runs)


def staged_rows_of_file(conn: sa.Connection, entity: str, file_id: int) -> pd.DataFrame:
    """One file's staged rows plus the referential-integrity columns its suite checks."""
    extra = "".join(f", ({sql}) AS {name}" for name, sql in _REFERENCES.get(entity, {}).items())
    return read_frame(conn, sa.text(f"SELECT t.*{extra} FROM stg_{entity} t WHERE t._file_id = :f")
                      .bindparams(f=file_id))


def validate_file(engine: sa.Engine, file_id: int, entity: str):
    with engine.connect() as conn:
        frame = staged_rows_of_file(conn, entity, file_id)
        path, modified = conn.execute(sa.select(files.c.path, files.c.modified_at)
                                      .where(files.c.file_id == file_id)).one()
    run = expectations.run_validation(entity, frame, as_of=modified.date(), file_label=path)
    run.results.insert(0, "file_id", file_id)
    return run
