"""Tables of the audience stage: membership snapshots per day, entries and exits, sizes, suppressions.

- `audience_members`: who is in each audience as of a day, with the contact details an export
  needs. One snapshot per `as_of`: a new day's run inserts it; a re-run of a day (a drop)
  writes only the rows that differ.
- `audience_history`: who entered or exited each audience on a day, by comparing that day's
  snapshot with the previous snapshot day (the first snapshot enters everyone).
- `audience_sizes`: one row per audience and day, including empty and skipped audiences, so a
  listing shows an audience that has no members (and why). Entries and exits are read from
  `audience_history`, which a re-run of an earlier day can refresh.
- Every read and delete of the stage is by day (and audience, contact), so a day costs the same
  however many days are kept: DuckDB skips other days through its per-row-group min/max (rows
  are written a day at a time); PostgreSQL gets the `_DAY_INDEXES` below.
- `audience_inputs`, `audience_runs`: the stage's memory, so a drop recomputes only the contacts whose inputs
  changed (`crm_pipeline/audiences/incremental.py`): per contact and brand ('' across brands) what decides
  its memberships as of the last run (rule outcomes as bits, the member details), and one row per run.
- `suppression_list`: people never exported (by contact id and/or the SHA-256 of the trimmed,
  lowercased email), whatever audience they are in.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.warehouse.schema import create_server_indexes, metadata

audience_members = sa.Table(
    "audience_members", metadata,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("audience", sa.String, nullable=False, comment="name; per brand: '<brand>:<name>'"),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("email", sa.String),
    sa.Column("phone", sa.String),
    sa.Column("first_name", sa.String),
    sa.Column("last_name", sa.String),
    sa.Column("brand_scope", sa.String, nullable=False, comment="the brand, or '' across all brands"),
)

audience_history = sa.Table(
    "audience_history", metadata,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("audience", sa.String, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("event", sa.String, nullable=False, comment="entered / exited"),
    sa.Column("previous_as_of", sa.Date, comment="the snapshot compared with; NULL for the first one"),
)

audience_sizes = sa.Table(
    "audience_sizes", metadata,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("audience", sa.String, nullable=False),
    sa.Column("label", sa.String),
    sa.Column("kind", sa.String, nullable=False, comment="smart / cross_brand / predictive / engagement / custom"),
    sa.Column("brand_scope", sa.String, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("note", sa.String, comment="why an audience was skipped, when it was"),
)

suppression_list = sa.Table(
    "suppression_list", metadata,
    sa.Column("contact_id", sa.String),
    sa.Column("email_sha256", sa.String(64), comment="hex SHA-256 of the trimmed, lowercased email"),
    sa.Column("reason", sa.String),
    sa.Column("added_at", sa.DateTime(timezone=True)),
)

audience_inputs = sa.Table(  # as of the last run only: a drop of that day compares its own rows with these
    "audience_inputs", metadata,
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("brand", sa.String, nullable=False, comment="the brand, or '' for the row across brands"),
    sa.Column("outcomes", sa.BigInteger, nullable=False, comment="bits: every rule's outcome on the row, opt-out ..."),
    sa.Column("more_outcomes", sa.String, comment="the bits past a BIGINT's 62, as text; NULL when none"),
    # across brands: the details a member row carries and the RFM segment (NULL on brand rows): copies compare
    # cheaper than a digest of them (an MD5 of the text cost the 1M-contact drop 3 s)
    sa.Column("email", sa.String), sa.Column("phone", sa.String), sa.Column("first_name", sa.String),
    sa.Column("last_name", sa.String), sa.Column("rfm_segment", sa.String),
)

audience_runs = sa.Table(  # one row per run: its day, how it ran, how many contacts' memberships it redid
    "audience_runs", metadata,
    sa.Column("run_number", sa.Integer, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("mode", sa.String, nullable=False, comment="full / incremental"),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("contacts_recomputed", sa.Integer, nullable=False),
    sa.Column("config_key", sa.String, nullable=False, comment="the audience definitions the kept inputs follow"),
)

AUDIENCE_TABLES = [audience_members, audience_history, audience_sizes, suppression_list, audience_inputs,
                   audience_runs]

# PostgreSQL only: keyed reads of one day. On DuckDB an index (in memory, kept on every insert and
# delete) would cost more than it saves: its row-group min/max already skip the other days.
_DAY_INDEXES = (
    ("ix_audience_members_day", "audience_members", "as_of, audience, contact_id"),
    ("ix_audience_history_day", "audience_history", "as_of"),
    ("ix_audience_sizes_day", "audience_sizes", "as_of"),
)


def create_audience_tables(bind: sa.Engine | sa.Connection) -> None:
    """Create the audience tables (and, on PostgreSQL, their day indexes) if missing; safe on every run."""
    metadata.create_all(bind, tables=AUDIENCE_TABLES)
    create_server_indexes(bind, _DAY_INDEXES)
