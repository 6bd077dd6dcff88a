"""Cheaper event writes to a local (SQLite) Dagster instance while a run executes in this process.

Dagster's SQLite storages open a connection for every event they store and close it after. Closing the last
connection to a WAL database checkpoints it (copies the log back and syncs the file), so a run's ~200 events
paid ~200 checkpoints and ~400 syncs: on a shared disk the largest share of a run that has nothing new to do.
While the run executes, one idle connection is held open to each database file of the instance, so the events'
connections commit to the log and close without a checkpoint; the last close, at the end, checkpoints once.
They also commit with `synchronous=NORMAL`, SQLite's setting for WAL databases: a crash of the process loses
nothing, a power cut may lose the last events but never corrupts the file. The same events, runs and
materializations are written, so the UI shows the run as before. A PostgreSQL instance is left as it is.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa


@contextmanager
def sqlite_instance_kept_open(instance) -> Iterator[None]:
    """Within the block, every SQLite file under the instance's folder is kept open and synced as WAL allows."""
    root = Path(instance.root_directory).resolve()
    kept: dict[str, sqlite3.Connection] = {}
    mine: dict[str, bool] = {}  # path -> whether it is one of the instance's files (a connection per event)
    lock = threading.Lock()  # Dagster may store events from more than one thread

    def on_connect(dbapi_connection, _record) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return  # the warehouse (DuckDB, PostgreSQL) and a PostgreSQL instance
        path = next((row[2] for row in dbapi_connection.execute("PRAGMA database_list") if row[1] == "main"), "")
        if path not in mine:
            mine[path] = bool(path) and Path(path).resolve().is_relative_to(root)
        if not mine[path]:
            return  # an in-memory instance, or a SQLite file that is not the instance's
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        with lock:
            if path not in kept:
                _keep(path, kept)

    sa.event.listen(sa.pool.Pool, "connect", on_connect)
    try:
        yield
    finally:
        sa.event.remove(sa.pool.Pool, "connect", on_connect)
        with lock:
            for connection in kept.values():
                connection.close()


def _keep(path: str, kept: dict[str, sqlite3.Connection]) -> None:
    """Hold `path` open once it is a WAL database (a new file becomes one when Dagster creates its tables)."""
    keeper = sqlite3.connect(path, check_same_thread=False)
    try:
        wal = keeper.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        if wal:
            keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()  # maps the log's index: counts as open
    except sqlite3.Error:
        wal = False  # a file another process is creating right now: the next connection tries again
    if wal:
        kept[path] = keeper
    else:
        keeper.close()
