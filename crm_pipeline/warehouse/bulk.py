"""Moving a whole Arrow table into a warehouse table inside the caller's transaction.

DuckDB reads Arrow in place (the fast path lives in `duckdb_insert_arrow`); other
backends get plain parameterized INSERTs in batches, which PostgreSQL's COPY can
replace later without touching callers.
"""

from __future__ import annotations

import uuid

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.warehouse.engine import is_duckdb

_BATCH_ROWS = 10_000


def insert_arrow(conn: sa.Connection, table: sa.Table, data: pa.Table) -> int:
    """Insert `data` (columns named as in `table`) and return the row count."""
    if data.num_rows == 0:
        return 0
    if is_duckdb(conn):
        return duckdb_insert_arrow(conn, table.name, data)
    for batch in data.to_batches(max_chunksize=_BATCH_ROWS):
        conn.execute(table.insert(), batch.to_pylist())
    return data.num_rows


def duckdb_insert_arrow(conn: sa.Connection, table_name: str, data: pa.Table) -> int:
    """DuckDB-only: register the Arrow table as a view and INSERT ... SELECT from it."""
    raw = conn.connection.driver_connection
    view = f"_arrow_{uuid.uuid4().hex}"
    raw.register(view, data)
    try:
        cols = ", ".join(f'"{c}"' for c in data.column_names)
        raw.execute(f'INSERT INTO "{table_name}" ({cols}) SELECT {cols} FROM "{view}"')
    finally:
        raw.unregister(view)
    return data.num_rows


def read_frame(conn: sa.Connection, query: sa.Executable) -> pd.DataFrame:
    """Run `query` and return a DataFrame; DuckDB hands its result over as Arrow, without row objects."""
    if is_duckdb(conn):
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = compiled.construct_params()
        raw = conn.connection.driver_connection
        positional = [params[name] for name in compiled.positiontup] if compiled.positiontup else list(params.values())
        return raw.execute(str(compiled), positional).arrow().read_all().to_pandas(types_mapper=_pandas_types)
    return pd.read_sql(query, conn)


def _pandas_types(arrow_type: pa.DataType):
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow", na_value=float("nan"))
    return None
