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
from crm_pipeline.warehouse.engine import is_duckdb

RUN_MODES = ("full", "incremental", "unchanged")
# Settings that say when the graph is clustered whole, never what it gives: outside the digest.
_SCHEDULE = ("full_recluster_every_days",)
_BATCH_ROWS = 100_000


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

    raw = {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.name not in _SCHEDULE}
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


def last_full_as_of(conn: sa.Connection):
    """The as-of day of the last run that clustered the whole graph (None before one)."""
    return conn.execute(sa.text("SELECT MAX(as_of) FROM identity_runs WHERE mode = 'full'")).scalar()


def with_graph(signature: str, graph: str | None) -> str:
    return json.dumps({**json.loads(signature), "graph": graph}, sort_keys=True)


def graph_digest(conn: sa.Connection, queries: list[str], signature: str) -> str:
    """A digest of the graph a resolution clusters (what `queries` select: node ids, identifier and login
    edges, person records, decisions) and of the settings: equal digests cluster alike.

    Each query is read in bounded batches and summarised without sorting: its row count and the sum
    (modulo 2**64) of its rows' 64-bit hashes, which does not depend on the order rows arrive in.
    """
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256(json.loads(signature)["settings"].encode())
    for query in queries:
        rows, total, columns = 0, 0, None
        for batch in _batches(conn, query):
            columns = list(batch.columns)
            hashes = pd.util.hash_pandas_object(batch, index=False).to_numpy()
            rows, total = rows + len(hashes), (total + int(hashes.sum(dtype=np.uint64))) % 2**64
        digest.update(json.dumps([columns, rows, total]).encode())
    return digest.hexdigest()


def _batches(conn: sa.Connection, query: str, rows: int = _BATCH_ROWS):
    """The result of `query` as DataFrames of at most `rows` rows (DuckDB hands Arrow batches over)."""
    import pandas as pd

    if is_duckdb(conn):
        reader = conn.connection.driver_connection.execute(query).fetch_record_batch(rows)
        for batch in reader:
            yield batch.to_pandas()
        return
    # Options on the statement, not the connection: a connection's options would stay for its later statements.
    result = conn.execute(sa.text(query).execution_options(stream_results=True))
    for part in result.partitions(rows):
        yield pd.DataFrame.from_records(part, columns=list(result.keys()))
