"""Moving a whole Arrow table into a warehouse table inside the caller's transaction, and reading one back.

Each backend gets its fastest bulk path behind one call: DuckDB reads Arrow in place
(`duckdb_insert_arrow`), PostgreSQL streams the table as CSV through COPY
(`postgresql_copy_arrow`, 10-20x faster than batched INSERTs: see bench/postgres_bulk.py);
any other backend gets parameterized INSERTs in batches.
"""

from __future__ import annotations

import io
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from crm_pipeline.warehouse.engine import is_duckdb, is_postgresql

_BATCH_ROWS = 10_000


def insert_arrow(conn: sa.Connection, table: sa.Table, data: pa.Table) -> int:
    """Insert `data` (columns named as in `table`) and return the row count."""
    if data.num_rows == 0:
        return 0
    if is_duckdb(conn):
        return duckdb_insert_arrow(conn, table.name, data)
    if is_postgresql(conn) and conn.dialect.driver == "psycopg2":
        return postgresql_copy_arrow(conn, table, data)
    return executemany_insert_arrow(conn, table, data)


def executemany_insert_arrow(conn: sa.Connection, table: sa.Table, data: pa.Table) -> int:
    """Any backend: parameterized INSERTs, `_BATCH_ROWS` rows at a time."""
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


def postgresql_copy_arrow(conn: sa.Connection, table: sa.Table, data: pa.Table) -> int:
    """PostgreSQL-only (psycopg2): COPY the table in as CSV, on the caller's connection and transaction.

    Arrow's CSV writer quotes every string and leaves NULL unquoted and empty, which is how COPY's
    CSV format tells an empty string ("") from NULL. Whole-number floats headed for an integer
    column (pandas turns an integer column with gaps into floats) are cast back first, because
    COPY does not round "3.0" into an integer as an INSERT's assignment cast does.
    """
    data = _integers_for_integer_columns(table, data)
    buffer = io.BytesIO()
    # Batch by batch, skipping empty ones: pyarrow 26's write_csv of a table with a zero-row chunk
    # (what pd.concat with an empty frame leaves) writes NUL bytes that COPY rejects.
    with pa_csv.CSVWriter(buffer, data.schema, write_options=pa_csv.WriteOptions(include_header=False)) as writer:
        for batch in data.to_batches(max_chunksize=_BATCH_ROWS):
            if batch.num_rows:
                writer.write_batch(batch)
    buffer.seek(0)
    preparer = conn.dialect.identifier_preparer
    cols = ", ".join(preparer.quote(c) for c in data.column_names)
    target = preparer.format_table(table)
    if not conn.in_transaction():  # so that the caller's commit (or rollback) covers the COPY
        conn.begin()
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {target} ({cols}) FROM STDIN WITH (FORMAT csv)", buffer)
    return data.num_rows


def _integers_for_integer_columns(table: sa.Table, data: pa.Table) -> pa.Table:
    for i, name in enumerate(data.column_names):
        column = table.c.get(name)
        if column is None or not pa.types.is_floating(data.schema.field(i).type):
            continue
        if isinstance(column.type, sa.Integer):
            data = data.set_column(i, name, pc.cast(data.column(i), pa.int64()))  # safe: raises on a fraction
    return data


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
