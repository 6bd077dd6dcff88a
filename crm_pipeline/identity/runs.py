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
from crm_pipeline.identity.nodes import RECORD_NODES

RUN_MODES = ("full", "incremental", "unchanged")


def fingerprint(conn: sa.Connection, config: IdentityConfig, probabilistic: bool) -> str:
    """JSON of everything the resolution reads, summarised (see the module docstring)."""
    parts: dict[str, object] = {}
    for entity in RECORD_NODES:
        row = conn.execute(sa.text(
            "SELECT COUNT(*), COALESCE(SUM(CAST(_file_id AS BIGINT)), 0), COALESCE(SUM(CAST(_row_number AS BIGINT)), 0), "
            "COALESCE(SUM((CAST(_file_id AS BIGINT) * 1000003 + _row_number) % 2147483629), 0), "
            f"COALESCE(MAX(_file_id), 0) FROM stg_{entity}")).one()
        parts[f"stg_{entity}"] = [int(v) for v in row]
    decisions = conn.execute(sa.text(
        "SELECT COUNT(*), SUM(CASE WHEN decision = 'must_link' THEN 1 ELSE 0 END), "
        "CAST(MAX(decided_at) AS VARCHAR) FROM identity_decisions")).one()
    parts["identity_decisions"] = [int(decisions[0]), int(decisions[1] or 0), decisions[2]]
    parts["settings"] = settings_digest(config, probabilistic)
    return json.dumps(parts, sort_keys=True)


def settings_digest(config: IdentityConfig, probabilistic: bool) -> str:
    """A digest of the settings that decide the result (sets sorted, patterns by their text)."""
    def plain(value):
        if isinstance(value, frozenset):
            return sorted(value)
        if isinstance(value, tuple):
            return [v.pattern if isinstance(v, re.Pattern) else v for v in value]
        return value

    raw = {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    raw["probabilistic_pass"] = probabilistic
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def last_run(conn: sa.Connection) -> tuple[str | None, str | None, object]:
    """The last resolution's input fingerprint, graph digest and as-of day (Nones before the first one).

    The stored fingerprint is the input fingerprint with the graph digest added under "graph"."""
    row = conn.execute(sa.text(
        "SELECT fingerprint, as_of FROM identity_runs ORDER BY run_number DESC LIMIT 1")).first()
    if row is None:
        return None, None, None
    parts = json.loads(row[0])
    graph = parts.pop("graph", None)
    return json.dumps(parts, sort_keys=True), graph, row[1]


def with_graph(signature: str, graph: str | None) -> str:
    return json.dumps({**json.loads(signature), "graph": graph}, sort_keys=True)


def graph_digest(frames: list, signature: str) -> str:
    """A digest of the graph a resolution clusters (node ids, identifier and direct edges, person
    records, decisions, each in a fixed order) and of the settings: equal digests cluster alike."""
    import pandas as pd

    digest = hashlib.sha256(json.loads(signature)["settings"].encode())
    for frame in frames:
        ordered = frame.sort_values(list(frame.columns), ignore_index=True)
        digest.update(str(list(frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()
