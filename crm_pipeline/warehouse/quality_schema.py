"""Tables of the quality stage: typed rows, staging, quarantine, dedup log, accounting, GX results.

`typed_<entity>` holds every loaded row standardized once per file (the expensive
part, never redone for a file already typed); `stg_<entity>`, `quarantine`,
`dedup_log`, `rule_hits`, `row_outcomes` and `file_quality` are derived from it in SQL.
Rules across rows (a key used twice, an order line without an order, a newer file)
change as files arrive, so each run re-derives the rows of the keys the new files
touch (`quality/scope.py`), and a full refresh re-derives them all.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES, Entity
from crm_pipeline.warehouse.schema import metadata

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


typed_tables = {name: sa.Table(f"typed_{name}", metadata, *_typed_columns(e)) for name, e in ENTITIES.items()}
stg_tables = {name: sa.Table(f"stg_{name}", metadata, *_typed_columns(e)) for name, e in ENTITIES.items()}

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

QUALITY_TABLES = [*typed_tables.values(), *stg_tables.values(), typed_files, row_violations, rule_hits,
                  row_outcomes, quarantine, dedup_log, file_quality, dq_results]


def create_quality_tables(bind: sa.Engine | sa.Connection) -> None:
    metadata.create_all(bind, tables=QUALITY_TABLES)
