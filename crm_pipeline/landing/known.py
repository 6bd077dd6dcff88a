"""Which landed contents the warehouse already has: the sensor asks before requesting runs.

A content hash in the `files` manifest was handled (loaded, rejected or recorded as a duplicate),
whoever handled it: the sensor's runs, `crm-pipeline run`, a backfill. Asking the warehouse, not
Dagster's run keys, is what keeps the first UI start after a CLI load from queueing a run per file.

The sensor ticks every few seconds next to runs that write the warehouse, so the look-up is one
`IN` query per thousand hashes on a short-lived read-only connection, and a warehouse it cannot read
right now (the DuckDB file is locked by a writing run) answers "unknown", never an error: the sensor then
requests the runs as it would without the manifest, and ingestion skips what is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.schema import files

# Bound parameters per query: far below every backend's limit, and few queries for a 2,000-file page.
LOOKUP_CHUNK = 1000


class WarehouseUnreadable(RuntimeError):
    """The manifest cannot be read right now (locked file, server down): whether a file is known is unknown."""


def known_contents(warehouse_url: str, shas: Iterable[str]) -> set[str]:
    """The hashes among `shas` that the `files` manifest holds. A warehouse not created yet knows none;
    opening it never creates it."""
    wanted = sorted(set(shas))
    if not wanted or not _may_exist(warehouse_url):
        return set()
    engine = _reader(warehouse_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(files.name):
                return set()
            known: set[str] = set()
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                chunk = wanted[start:start + LOOKUP_CHUNK]
                known.update(conn.execute(
                    sa.select(files.c.sha256).where(files.c.sha256.in_(chunk)).distinct()).scalars())
            return known
    except sa.exc.DBAPIError as exc:
        raise WarehouseUnreadable(str(exc).splitlines()[0]) from exc
    finally:
        engine.dispose()


def _may_exist(url: str) -> bool:
    """A DuckDB file is looked for on disk (an in-memory database has no manifest); a server is asked."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "duckdb":
        return True
    return parsed.database not in (None, "", ":memory:") and Path(parsed.database).is_file()


def _reader(url: str) -> sa.Engine:
    """Read-only on a DuckDB file, so the look-up cannot change it; PostgreSQL as the project connects."""
    if sa.engine.make_url(url).get_backend_name() == "duckdb":
        return sa.create_engine(url, connect_args={"read_only": True}, poolclass=sa.pool.NullPool)
    return make_engine(url)
