"""Tables of the quality stage: typed rows, staging, quarantine, dedup log, accounting, GX results.

Every loaded row is standardized once per file (the expensive part, never redone for a file
already typed) and stored once, wide: in `stg_<entity>` when it is staged, in
`unstaged_<entity>` when it is not (quarantined, held, deduplicated). Typing writes new rows
to `stg_<entity>` and publishing moves the ones it does not stage; `typed_<entity>` is the view
of both, every typed row. So staging is never a second copy of the typed rows, and downstream
stages read (and their tests write) `stg_<entity>` as a plain table. `quarantine`, `dedup_log`,
`rule_hits`, `row_outcomes` and `file_quality` are derived in SQL. Rules across rows (a key used
twice, an order line without an order, a newer file) change as files arrive, so each run
re-derives the rows of the keys the new files touch (`quality/scope.py`), and a full refresh
re-derives them all.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES, Entity
from crm_pipeline.warehouse.schema import in_transaction, metadata

_TYPES = {
    "string": sa.String, "json": sa.String, "integer": sa.BigInteger, "decimal": sa.Double,
    "boolean": sa.Boolean, "date": sa.Date, "timestamp": lambda: sa.DateTime(timezone=True),
}


def _typed_columns(entity: Entity) -> list[sa.Column]:
    columns = [sa.Column("_file_id", sa.Integer, nullable=False), sa.Column("_row_number", sa.Integer, nullable=False),
               sa.Column("_brand", sa.String, nullable=False)]
    columns += [sa.Column(c.name, _TYPES[c.type]()) for c in entity.columns]
    if entity.has_column("email"):
        columns.append(sa.Column("email_match_key", sa.String))
    columns += [sa.Column("_flags", sa.String, comment="soft issues, ';'-separated"),
                sa.Column("_row_hash", sa.BigInteger, nullable=False)]
    return columns


stg_tables = {name: sa.Table(f"stg_{name}", metadata, *_typed_columns(e)) for name, e in ENTITIES.items()}
unstaged_tables = {name: sa.Table(f"unstaged_{name}", metadata, *_typed_columns(e)) for name, e in ENTITIES.items()}

typed_files = sa.Table(
    "typed_files", metadata,
    sa.Column("file_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("rows_typed", sa.Integer, nullable=False),
    sa.Column("typed_at", sa.DateTime(timezone=True), nullable=False),
)

row_violations = sa.Table(
    "row_violations", metadata,
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("_file_id", sa.Integer, nullable=False),
    sa.Column("_row_number", sa.Integer, nullable=False),
    sa.Column("column", sa.String, nullable=False),
    sa.Column("rule", sa.String, nullable=False),
    sa.Column("raw_value", sa.String),
)

rule_hits = sa.Table(  # row_violations plus the rules across rows, for the current state of all files
    "rule_hits", metadata, *[sa.Column(c.name, c.type, nullable=c.nullable) for c in row_violations.columns],
)

row_outcomes = sa.Table(
    "row_outcomes", metadata,
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("_file_id", sa.Integer, nullable=False),
    sa.Column("_row_number", sa.Integer, nullable=False),
    sa.Column("_brand", sa.String, nullable=False),
    sa.Column("source_key", sa.String),
    sa.Column("outcome", sa.String, nullable=False, comment="staged / quarantined / deduplicated / held"),
    sa.Column("kept_file_id", sa.Integer),
    sa.Column("kept_row_number", sa.Integer),
    sa.Column("reason", sa.String),
)

quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("file_id", sa.Integer, nullable=False),
    sa.Column("file", sa.String, nullable=False),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("source_key", sa.String),
    sa.Column("column", sa.String, nullable=False),
    sa.Column("rule", sa.String, nullable=False),
    sa.Column("raw_value", sa.String),
    sa.Column("status", sa.String, nullable=False, comment="open, or resolved by a later file"),
    sa.Column("resolved_by_file_id", sa.Integer),
)

dedup_log = sa.Table(
    "dedup_log", metadata,
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("source_key", sa.String, nullable=False),
    sa.Column("file_id", sa.Integer, nullable=False),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("kept_file_id", sa.Integer, nullable=False),
    sa.Column("kept_row_number", sa.Integer, nullable=False),
    sa.Column("reason", sa.String, nullable=False, comment="identical_row / superseded"),
)

file_quality = sa.Table(
    "file_quality", metadata,
    sa.Column("file_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("file", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("staged", sa.Integer, nullable=False),
    sa.Column("quarantined", sa.Integer, nullable=False),
    sa.Column("deduplicated", sa.Integer, nullable=False),
    sa.Column("held", sa.Boolean, nullable=False),
    sa.Column("superseded", sa.Boolean, nullable=False, comment="a newer version of the same path was loaded"),
    sa.Column("top_rules", sa.String),
)

dq_results = sa.Table(
    "dq_results", metadata,
    sa.Column("file_id", sa.Integer, nullable=False),
    sa.Column("file", sa.String, nullable=False),
    sa.Column("suite", sa.String, nullable=False),
    sa.Column("expectation", sa.String, nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("unexpected_count", sa.Integer),
    sa.Column("unexpected_percent", sa.Float),
    sa.Column("sample_values", sa.String),
    sa.Column("evaluated_rows", sa.Integer),
    sa.Column("sample_rows", sa.String, comment="JSON: _file_id, _row_number and key of up to 5 failing rows"),
    sa.Column("exception", sa.String),
)

QUALITY_TABLES = [*stg_tables.values(), *unstaged_tables.values(), typed_files, row_violations, rule_hits,
                  row_outcomes, quarantine, dedup_log, file_quality, dq_results]


def typed_rows_sql(entity: str) -> str:
    """Every typed row of `entity`, staged or not (the body of the `typed_<entity>` view)."""
    return f"SELECT * FROM stg_{entity} UNION ALL SELECT * FROM unstaged_{entity}"


def create_quality_tables(bind: sa.Engine | sa.Connection) -> None:
    """The tables, and the `typed_<entity>` views; a warehouse from before the views keeps its typed rows."""
    in_transaction(bind, _create_quality_tables)


def _create_quality_tables(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=QUALITY_TABLES)
    inspector = sa.inspect(conn)
    tables, views = set(inspector.get_table_names()), set(inspector.get_view_names())
    for name in ENTITIES:
        typed = f"typed_{name}"
        if typed in tables:  # the former table of every typed row: its rows not staged are the unstaged ones
            conn.execute(sa.text(
                f"INSERT INTO unstaged_{name} SELECT t.* FROM {typed} t WHERE (t._file_id, t._row_number) "
                f"NOT IN (SELECT _file_id, _row_number FROM stg_{name})"))
            conn.execute(sa.text(f"DROP TABLE {typed}"))
        if typed not in views:
            conn.execute(sa.text(f"CREATE VIEW {typed} AS {typed_rows_sql(name)}"))
