"""Tables of identity resolution: which person (contact) every source record belongs to.

`identity_map` has one row per person-linked source record (customers, subscribers,
orders, email events, web events), keyed like the landed file and the generator's
truth (`brand`, `entity`, `source_key`). Records join through graph nodes: a customer
account, a subscriber, a guest order, a web cookie (`node_id`). `contacts` has one
row per surviving contact id; ids are stable across runs, and merges and splits are
logged in `merge_log`.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.warehouse.schema import metadata

MATCH_TYPES = ("deterministic", "probabilistic", "singleton")

identity_map = sa.Table(
    "identity_map", metadata,
    sa.Column("brand", sa.String, nullable=False),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("source_key", sa.String, nullable=False),
    sa.Column("node_id", sa.String, nullable=False, comment="the graph node the record joins through"),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("match_type", sa.String, nullable=False, comment="deterministic / probabilistic / singleton"),
    sa.Column("match_probability", sa.Double, comment="for probabilistic matches: the accepted pair's probability"),
    sa.Column("_file_id", sa.Integer, nullable=False, comment="lineage of the staged row"),
    sa.Column("_row_number", sa.Integer, nullable=False),
)

identity_nodes = sa.Table(  # the persistent memory of node -> contact id that keeps ids stable
    "identity_nodes", metadata,
    sa.Column("node_id", sa.String, primary_key=True),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("match_type", sa.String, nullable=False),
    sa.Column("match_probability", sa.Double),
    sa.Column("first_seen_as_of", sa.Date, nullable=False),
)

contacts = sa.Table(
    "contacts", metadata,
    sa.Column("contact_id", sa.String, primary_key=True),
    sa.Column("node_count", sa.Integer, nullable=False),
    sa.Column("record_count", sa.Integer, nullable=False),
    sa.Column("brands", sa.String, nullable=False, comment="comma-separated brands the person appears in"),
    sa.Column("match_type", sa.String, nullable=False, comment="strongest way any of its nodes was joined"),
    sa.Column("first_seen_as_of", sa.Date, nullable=False),
)

merge_log = sa.Table(
    "merge_log", metadata,
    sa.Column("kind", sa.String, nullable=False, comment="merge / split / must_link / cannot_link"),
    sa.Column("old_contact_id", sa.String, nullable=False),
    sa.Column("new_contact_id", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
)

identity_alerts = sa.Table(
    "identity_alerts", metadata,
    sa.Column("kind", sa.String, nullable=False,
              comment="cluster_too_large / identifier_capped / junk_identifier / device_shared / "
                      "blocking_rule_tightened / blocking_rule_skipped / blocking_key_oversized"),
    sa.Column("subject", sa.String, nullable=False, comment="the contact id or identifier value concerned"),
    sa.Column("detail", sa.String, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
)

identity_decisions = sa.Table(  # clerical review: honoured by every later run until replaced
    "identity_decisions", metadata,
    sa.Column("node_a", sa.String, primary_key=True, comment="the smaller node id of the pair"),
    sa.Column("node_b", sa.String, primary_key=True),
    sa.Column("decision", sa.String, nullable=False, comment="must_link / cannot_link"),
    sa.Column("note", sa.String),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
)

identity_borderline = sa.Table(  # the last run's pairs nearest the threshold, for review
    "identity_borderline", metadata,
    sa.Column("node_a", sa.String, nullable=False),
    sa.Column("node_b", sa.String, nullable=False),
    sa.Column("match_probability", sa.Double, nullable=False),
    sa.Column("match_weight", sa.Double, nullable=False),
    sa.Column("field_weights", sa.String, nullable=False, comment="JSON: comparison -> weight in bits"),
    sa.Column("accepted", sa.Boolean, nullable=False, comment="joined by this run"),
    sa.Column("as_of", sa.Date, nullable=False),
)

identity_runs = sa.Table(  # one row per resolution: what it read (fingerprint) and what it changed
    "identity_runs", metadata,
    sa.Column("run_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("mode", sa.String, nullable=False, comment="full / incremental / unchanged"),
    sa.Column("fingerprint", sa.String, nullable=False,
              comment="JSON: per staged table and for decisions and settings, what the run resolved"),
    sa.Column("records_added_count", sa.Integer, nullable=False, comment="identity_map rows of new staged rows"),
    sa.Column("records_removed_count", sa.Integer, nullable=False, comment="rows whose staged row is gone"),
    sa.Column("records_reassigned_count", sa.Integer, nullable=False,
              comment="rows kept that got another contact, match type or probability"),
    sa.Column("contacts_created_count", sa.Integer, nullable=False),
    sa.Column("contacts_changed_count", sa.Integer, nullable=False),
    sa.Column("contacts_retired_count", sa.Integer, nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
)

identity_changes = sa.Table(  # the contacts each run touched, for the stages after identity
    "identity_changes", metadata,
    sa.Column("run_number", sa.Integer, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("change", sa.String, nullable=False, comment="created / changed / retired"),
)

identity_match = sa.Table(  # the last probabilistic pass, reused while its exact input stays the same
    "identity_match", metadata,
    sa.Column("digest", sa.String, primary_key=True, comment="of the person records, their clusters and the model"),
    sa.Column("threshold", sa.Double),
    sa.Column("candidate_pairs", sa.Integer, nullable=False),
    sa.Column("model", sa.String, comment="Splink's trained model (JSON)"),
    sa.Column("borderline", sa.String, comment="the borderline sample (JSON, pandas split orientation)"),
    sa.Column("as_of", sa.Date, nullable=False, comment="the day it was trained"),
)

identity_pairs = sa.Table(  # the pairs that pass accepted (before reviewers' cannot-links are applied)
    "identity_pairs", metadata,
    sa.Column("node_a", sa.String, nullable=False),
    sa.Column("node_b", sa.String, nullable=False),
    sa.Column("match_probability", sa.Double, nullable=False),
)

identity_graph = sa.Table(  # the edges and deterministic clusters the last run clustered (identity/scope.py)
    "identity_graph", metadata,
    sa.Column("node_a", sa.String, nullable=False),
    sa.Column("node_b", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False, comment="det / pair / cluster; inputs: email / phone / login"),
    sa.Column("match_probability", sa.Double, comment="pair edges: the accepted pair's probability"),
)

DECISIONS = ("must_link", "cannot_link")
CONTACT_CHANGES = ("created", "changed", "retired")

IDENTITY_TABLES = [identity_map, identity_nodes, contacts, merge_log, identity_alerts, identity_decisions,
                   identity_borderline, identity_runs, identity_changes, identity_match, identity_pairs, identity_graph]


def create_identity_tables(bind: sa.Engine | sa.Connection) -> None:
    metadata.create_all(bind, tables=IDENTITY_TABLES)
