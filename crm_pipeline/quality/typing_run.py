"""Standardize each newly loaded file once, into `typed_<entity>` and `row_violations`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.contract import get_entity
from crm_pipeline.quality.rows import standardize_rows
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.quality_schema import create_quality_tables, row_violations, typed_files, typed_tables
from crm_pipeline.warehouse.schema import create_ingest_tables, files, raw_tables


@dataclass(frozen=True)
class TypedFile:
    file_id: int
    entity: str
    rows: int
    violations: int


def files_to_type(conn: sa.Connection) -> list[sa.Row]:
    already = sa.select(typed_files.c.file_id)
    return conn.execute(
        sa.select(files.c.file_id, files.c.entity, files.c.modified_at, files.c.ingested_at)
        .where(files.c.status == "loaded", files.c.file_id.not_in(already)).order_by(files.c.file_id)
    ).all()


def type_new_files(engine: sa.Engine, *, now: datetime) -> list[TypedFile]:
    """Type every loaded file not typed yet; each file commits with its violations in one transaction."""
    create_ingest_tables(engine)
    create_quality_tables(engine)
    with engine.connect() as conn:
        pending = files_to_type(conn)
    done = []
    for file in pending:
        entity = get_entity(file.entity)
        raw_table = raw_tables[file.entity]
        with engine.connect() as conn:
            raw = read_frame(conn, sa.select(raw_table).where(raw_table.c._file_id == file.file_id)
                             .order_by(raw_table.c._row_number))
        written = file.modified_at or file.ingested_at
        typed = standardize_rows(entity, raw, written_on=written.date())
        violations = typed.violations.assign(entity=file.entity)[[c.name for c in row_violations.columns]]
        with engine.begin() as conn:
            insert_arrow(conn, typed_tables[file.entity], pa.Table.from_pandas(typed.rows, preserve_index=False))
            insert_arrow(conn, row_violations, pa.Table.from_pandas(violations, preserve_index=False))
            conn.execute(typed_files.insert().values(file_id=file.file_id, entity=file.entity,
                                                     rows_typed=len(typed.rows), typed_at=now))
        done.append(TypedFile(file.file_id, file.entity, len(typed.rows), len(violations)))
    return done
