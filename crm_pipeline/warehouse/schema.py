"""Table definitions the pipeline writes: the file manifest and the raw tables.

Raw tables mirror the contract with every value kept as landed text, plus lineage:
`_file_id` (the manifest row) and `_row_number` (the data row in that file, from 1).
Columns a file carries beyond the contract are kept as JSON text in `_extra`.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES

metadata = sa.MetaData()

FILE_STATUSES = ("loaded", "rejected", "duplicate")

files = sa.Table(
    "files", metadata,
    sa.Column("file_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("path", sa.String, nullable=False, comment="relative to the landing folder"),
    sa.Column("brand", sa.String),
    sa.Column("entity", sa.String),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("format", sa.String),
    sa.Column("encoding", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("rows_read", sa.Integer),
    sa.Column("rows_loaded", sa.Integer),
    sa.Column("reason", sa.String),
    sa.Column("extra_columns", sa.String, comment="JSON list of columns beyond the contract"),
    sa.Column("duplicate_of", sa.Integer, comment="file_id of the earlier file with the same bytes"),
    sa.Column("modified_at", sa.DateTime(timezone=True)),
    sa.Column("mtime_ns", sa.BigInteger,
              comment="the file's mtime in nanoseconds when it was hashed: with path and size_bytes it lets a later "
                      "run skip hashing bytes it already knows"),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
)

LINEAGE_COLUMNS = ("_file_id", "_row_number", "_brand")
EXTRA_COLUMN = "_extra"


def raw_table_name(entity: str) -> str:
    return f"raw_{entity}"


def _raw_table(entity_name: str) -> sa.Table:
    entity = ENTITIES[entity_name]
    return sa.Table(
        raw_table_name(entity_name), metadata,
        sa.Column("_file_id", sa.Integer, nullable=False),
        sa.Column("_row_number", sa.Integer, nullable=False),
        sa.Column("_brand", sa.String, nullable=False),
        *(sa.Column(name, sa.String) for name in entity.column_names),
        sa.Column(EXTRA_COLUMN, sa.String),
    )


raw_tables: dict[str, sa.Table] = {name: _raw_table(name) for name in ENTITIES}


def raw_column_order(entity_name: str) -> list[str]:
    return [c.name for c in raw_tables[entity_name].columns]


def create_ingest_tables(bind: sa.Engine | sa.Connection) -> None:
    """Create the manifest, the raw tables and the erasure tables (which loading and accounting consult)
    if they are missing; safe to call on every run."""
    from crm_pipeline.warehouse.erasure_schema import ERASURE_TABLES  # on this metadata; it imports this module

    metadata.create_all(bind, tables=[files, *raw_tables.values(), *ERASURE_TABLES])
    add_missing_columns(bind, _ADDED)


# Columns added after a warehouse may have been built: added (empty for the files it already holds) when missing.
# An empty `files.mtime_ns` only means those files are hashed once more; that run fills it in.
_ADDED = {"files": ("mtime_ns",)}


def add_missing_columns(bind: sa.Engine | sa.Connection, added: dict[str, tuple[str, ...]]) -> None:
    """Columns a later version added to tables an older warehouse already has (`added`: table -> columns, as the
    metadata defines them): added empty where missing, so an existing warehouse keeps its rows."""
    def add(conn: sa.Connection) -> None:
        for name, columns in added.items():
            table = metadata.tables[name]
            present = set(column_names(conn, name))
            for column in columns:
                if column not in present:
                    ddl = sa.schema.CreateColumn(table.c[column]).compile(dialect=conn.dialect)
                    conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {ddl}"))

    in_transaction(bind, add)


def column_names(conn: sa.Connection, table: str) -> list[str]:
    """A table's columns in order, from an empty result: the inspector's column query does not run on DuckDB
    (duckdb_engine on SQLAlchemy 2.1). `table` is the name as SQL writes it (quoted if it must be)."""
    return list(conn.execute(sa.text(f"SELECT * FROM {table} WHERE 1 = 0")).keys())


def create_server_indexes(bind: sa.Engine | sa.Connection, indexes: tuple[tuple[str, str, str], ...]) -> None:
    """`(name, table, columns)` indexes, on a database server only: DuckDB skips other days' and contacts' row
    groups by their min/max already, and an index there would slow every insert and delete. Plain DDL rather
    than sa.Index: an Index object on the shared Table would be created on DuckDB by the next create_all too."""
    if bind.dialect.name == "duckdb":
        return

    def create(conn: sa.Connection) -> None:
        for name, table, columns in indexes:
            conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"))

    in_transaction(bind, create)


def in_transaction(bind: sa.Engine | sa.Connection, work) -> None:
    """`work(conn)` in the caller's transaction, or in one of its own when handed an engine."""
    if isinstance(bind, sa.Connection):
        work(bind)
        return
    with bind.begin() as conn:
        work(conn)
