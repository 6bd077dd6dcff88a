"""What a resolution read, so that the next run can tell nothing changed and skip the work.

A staged row never changes in place: staging deletes and inserts whole rows, each named by
its lineage (`_file_id`, `_row_number`). So the set of lineages of a `stg_*` table says which
rows identity reads, and a few integer aggregates over those two columns (count, sums, a mixed
product sum) tell two sets apart without keeping them: one columnar scan of two integer
columns per table, milliseconds on millions of rows, against the seconds the resolution costs.
Reviewers' decisions and the identity settings are part of the input too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import sqlalchemy as sa

from crm_pipeline.identity.config import IdentityConfig
from crm_pipeline.identity.nodes import RECORD_NODES, Since, all_nodes_sql, direct_edges_sql, identifier_edges_sql

RUN_MODES = ("full", "incremental", "unchanged")
# Settings that say when the graph is clustered whole, never what it gives: outside the digest.
_SCHEDULE = ("full_recluster_every_days",)


def fingerprint(conn: sa.Connection, config: IdentityConfig, probabilistic: bool) -> str:
    """JSON of everything the resolution reads, summarised (see the module docstring)."""
    parts: dict[str, object] = {}
    for entity in RECORD_NODES:
        parts[f"stg_{entity}"] = _lineages(conn, entity)
    decisions = conn.execute(sa.text(
        "SELECT COUNT(*), SUM(CASE WHEN decision = 'must_link' THEN 1 ELSE 0 END), "
        "CAST(MAX(decided_at) AS VARCHAR) FROM identity_decisions")).one()
    parts["identity_decisions"] = [int(decisions[0]), int(decisions[1] or 0), decisions[2]]
    parts["settings"] = settings_digest(config, probabilistic)
    return json.dumps(parts, sort_keys=True)


def _lineages(conn: sa.Connection, entity: str, after: int | None = None) -> list[int]:
    """Count, sums and a mixed sum of the lineages of `stg_<entity>` (of its files after `after` only), its last
    file."""
    row = conn.execute(sa.text(
        "SELECT COUNT(*), COALESCE(SUM(CAST(_file_id AS BIGINT)), 0), COALESCE(SUM(CAST(_row_number AS BIGINT)), 0), "
        "COALESCE(SUM((CAST(_file_id AS BIGINT) * 1000003 + _row_number) % 2147483629), 0), "
        f"COALESCE(MAX(_file_id), 0) FROM stg_{entity}" + ("" if after is None else f" WHERE _file_id > {int(after)}")
    )).one()
    return [int(v) for v in row]


def additions_since(conn: sa.Connection, previous: dict | None, signature: str) -> Since | None:
    """Per entity, the last file the last run read, when since then staged rows were only added, in later files
    (file ids only grow), and that run kept its graph's inputs (`GRAPH_INPUTS`); else None.

    Then this run's identifiers, logins and nodes are the stored ones and those of the new files' rows.
    A row removed or replaced (an erasure, a re-sent customer) or added to an earlier file changes the
    summary of the files the last run read, and the run reads staging whole. That summary is this run's
    (`signature`, the whole table's) less the later files' rows: sums of non-negative terms, so a scan of the
    new files' rows alone tells it.
    """
    if previous is None or previous.get(GRAPH_INPUTS) != inputs_digest():
        return None
    now = json.loads(signature)
    since = {}
    for entity in RECORD_NODES:
        before, whole = previous.get(f"stg_{entity}"), now[f"stg_{entity}"]
        if not before:
            return None
        later = _lineages(conn, entity, after=before[4])
        if [w - l for w, l in zip(whole[:4], later[:4])] != before[:4]:
            return None
        since[entity] = int(before[4])
    return since


def settings_digest(config: IdentityConfig, probabilistic: bool) -> str:
    """A digest of the settings that decide the result (sets sorted, patterns by their text)."""
    def plain(value):
        if isinstance(value, frozenset):
            return sorted(value)
        if isinstance(value, tuple):
            return [v.pattern if isinstance(v, re.Pattern) else v for v in value]
        return value

    raw = {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.name not in _SCHEDULE}
    raw["probabilistic_pass"] = probabilistic
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Kept with a run's fingerprint but not part of its input: what the run derived (the probabilistic pass's
# input digest, match_store.records_digest) and a "graph" digest that runs before the touched-part
# clustering stored.
MATCH_RECORDS = "match_records"
GRAPH_INPUTS = "graph_inputs"  # the run kept its identifiers and logins in identity_graph (guards.save_inputs)


def inputs_digest() -> str:
    """A digest of the SQL that extracts the graph's inputs from staging: inputs kept by other code (another
    release's identifier rules) are not mixed with this code's, the run reads staging whole once instead."""
    text = "\n".join((identifier_edges_sql(), direct_edges_sql(), all_nodes_sql()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
_DERIVED = ("graph", MATCH_RECORDS, GRAPH_INPUTS)


def last_run(conn: sa.Connection) -> str | None:
    """The last resolution's input fingerprint (None before the first one)."""
    parts = last_run_parts(conn)
    if parts is None:
        return None
    return json.dumps({k: v for k, v in parts.items() if k not in _DERIVED}, sort_keys=True)


def last_run_parts(conn: sa.Connection) -> dict | None:
    """The last resolution's stored fingerprint as a dict, derived parts included (None before the first one)."""
    row = conn.execute(sa.text("SELECT fingerprint FROM identity_runs ORDER BY run_number DESC LIMIT 1")).first()
    return None if row is None else json.loads(row[0])


def stored_fingerprint(signature: str, match_records: str | None) -> str:
    """The fingerprint to store for a run: its input's, the digest of its probabilistic pass's input, and the
    digest of the code whose output it kept as its graph's inputs."""
    return json.dumps({**json.loads(signature), MATCH_RECORDS: match_records, GRAPH_INPUTS: inputs_digest()},
                      sort_keys=True)


def last_full_as_of(conn: sa.Connection):
    """The as-of day of the last run that clustered the whole graph (None before one)."""
    return conn.execute(sa.text("SELECT MAX(as_of) FROM identity_runs WHERE mode = 'full'")).scalar()
