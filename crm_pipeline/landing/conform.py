"""Fit a file's columns to its raw table: contract columns in order, extras kept as JSON."""

from __future__ import annotations

import uuid

import duckdb
import numpy as np
import pyarrow as pa

from crm_pipeline.contract import Entity
from crm_pipeline.landing.errors import FileRejected
from crm_pipeline.warehouse.schema import EXTRA_COLUMN


def conform(table: pa.Table, entity: Entity, *, brand: str, file_id: int, label: str) -> tuple[pa.Table, list[str]]:
    """Return (the rows in raw layout, the extra column names).

    Header names are matched case- and space-insensitively; a missing required column
    rejects the whole file; a missing optional column becomes empty; extras are kept.
    """
    names = [name.strip().lower() for name in table.column_names]
    if len(set(names)) != len(names):
        raise FileRejected(label, f"columns repeat when compared case-insensitively: {table.column_names}")
    table = table.rename_columns(names)
    missing = entity.missing_header_columns(names)
    if missing:
        raise FileRejected(label, f"missing required column(s) {', '.join(missing)} for entity {entity.name}")
    extras = entity.extra_header_columns(names)
    n = table.num_rows
    arrays = {  # constants repeated in Arrow: no Python object per row
        "_file_id": pa.repeat(pa.scalar(file_id, pa.int32()), n),
        "_row_number": pa.array(np.arange(1, n + 1, dtype=np.int32)),
        "_brand": pa.repeat(pa.scalar(brand, pa.string()), n),
    }
    for column in entity.column_names:
        arrays[column] = table.column(column) if column in names else pa.nulls(n, type=pa.string())
    arrays[EXTRA_COLUMN] = _extras_as_json(table.select(extras)) if extras else pa.nulls(n, type=pa.string())
    return pa.table(arrays), extras


def _extras_as_json(extras: pa.Table) -> pa.ChunkedArray:
    """One JSON object per row holding the columns the contract does not know."""
    con = duckdb.connect()
    try:
        view = f"extras_{uuid.uuid4().hex}"
        con.register(view, extras)
        pack = ", ".join(f"{_ident(c)} := {_ident(c)}" for c in extras.column_names)
        packed = con.execute(f"SELECT to_json(struct_pack({pack}))::VARCHAR AS j FROM {view}")
        return packed.to_arrow_table().column("j")
    finally:
        con.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
