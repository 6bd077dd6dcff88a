"""Tables of erasure (GDPR / CCPA): the requests, the suppression list that keeps people out, per-file counts.

Nothing here holds a clear identifier: only SHA-256 hex digests of normalized values
(see `crm_pipeline/erasure/identifiers.py`) and counts.

- `erasure_requests`: one row per `crm-pipeline erase`, with the hash of the identifier it
  was asked for, when (passed in by the caller), and what it removed per table (JSON).
  `retired_contact_number` is the highest number among the erased contact ids, so identity
  never hands an erased person's id to somebody new.
- `erasure_suppressions`: the hashed identifiers and source keys of erased people; ingestion
  drops a landed row that carries any of them, so an old file re-dropped does not bring the
  person back. Not to be confused with the audiences' `suppression_list` (marketing opt-outs).
- `erasure_row_counts`: per file, rows kept out of `raw_<entity>` by erasure: at load
  (`suppressed_on_load`) or deleted later by a request (`erased`). With them every file
  still adds up: `files.rows_read = files.rows_loaded + SUM(row_count)`.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.warehouse.schema import metadata

# Kinds of hashed values on the suppression list. Source keys are brand-scoped (`<brand>|<id>`).
SUPPRESSION_KINDS = ("email", "email_key", "phone", "customer", "subscriber", "order", "cookie")
ROW_COUNT_CAUSES = ("suppressed_on_load", "erased")

erasure_requests = sa.Table(
    "erasure_requests", metadata,
    sa.Column("request_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("identifier_kind", sa.String, nullable=False, comment="email / phone / contact_id"),
    sa.Column("identifier_sha256", sa.String(64), nullable=False, comment="of the normalized identifier"),
    sa.Column("contact_count", sa.Integer, nullable=False),
    sa.Column("rows_removed", sa.BigInteger, nullable=False),
    sa.Column("removed_counts", sa.String, nullable=False, comment="JSON object: table -> rows removed"),
    sa.Column("retired_contact_number", sa.BigInteger, comment="highest number among the erased contact ids"),
)

erasure_suppressions = sa.Table(
    "erasure_suppressions", metadata,
    sa.Column("kind", sa.String, primary_key=True, comment="one of SUPPRESSION_KINDS"),
    sa.Column("value_sha256", sa.String(64), primary_key=True, comment="hex SHA-256 of the normalized value"),
    sa.Column("request_id", sa.Integer, nullable=False, comment="the request that added it first"),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

erasure_row_counts = sa.Table(
    "erasure_row_counts", metadata,
    sa.Column("file_id", sa.Integer, nullable=False),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("cause", sa.String, nullable=False, comment="suppressed_on_load / erased"),
    sa.Column("request_id", sa.Integer, comment="the erasure request, for cause = erased"),
    sa.Column("row_count", sa.Integer, nullable=False),
)

ERASURE_TABLES = [erasure_requests, erasure_suppressions, erasure_row_counts]


def create_erasure_tables(bind: sa.Engine | sa.Connection) -> None:
    """Create the erasure tables if they are missing (safe to call on every run)."""
    metadata.create_all(bind, tables=ERASURE_TABLES)
