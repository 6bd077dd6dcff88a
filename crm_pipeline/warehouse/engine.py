"""The SQLAlchemy engine for the warehouse URL: a DuckDB file by default, PostgreSQL for serving."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


# A memory size as the settings give it ("4GB", "512 MiB") or DuckDB shows it ("3.7 GiB").
MEMORY_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B|bytes)", re.IGNORECASE)
_UNITS = {"b": 1, "bytes": 1, **{f"{p}b": 1000 ** (i + 1) for i, p in enumerate("kmgt")},
          **{f"{p}ib": 1024 ** (i + 1) for i, p in enumerate("kmgt")}}


def make_engine(url: str, *, memory_limit: str | None = None, threads: int | None = None,
                temp_directory: str | Path | None = None) -> Engine:
    """An engine for `url`; a DuckDB file's folder is created so a fresh machine just works.

    On DuckDB every connection gets the memory limit, thread count and spill folder given (None: DuckDB's
    own default), so a large run spills to disk instead of being killed; PostgreSQL ignores them (the
    server is tuned by its administrator). Pass `**settings.engine_options` to follow the settings.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "duckdb":
        if parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)
        statements = ["PRAGMA disable_progress_bar"]  # no progress bars in run logs
        if memory_limit:
            statements.append(f"SET memory_limit = {_quoted(memory_limit)}")
        if threads:
            statements.append(f"SET threads = {int(threads)}")
        if temp_directory:
            Path(temp_directory).mkdir(parents=True, exist_ok=True)  # DuckDB makes only the last folder itself
            statements.append(f"SET temp_directory = {_quoted(str(temp_directory))}")

        def configure(dbapi, _record) -> None:
            for statement in statements:
                dbapi.execute(statement)

        sa.event.listen(engine, "connect", configure)
        return engine
    if parsed.drivername == "postgresql":
        # A bare postgresql:// URL means psycopg2 here: the driver the project installs (SQLAlchemy 2.1's
        # default is psycopg 3), and the one whose COPY the bulk loader uses.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.get_driver_name() == "psycopg2" and "options" not in parsed.query:
        # Sessions in UTC, whatever the server's default: dates cut from timestamps and the
        # timestamps read back are then the same as on DuckDB.
        return sa.create_engine(parsed, connect_args={"options": "-c timezone=UTC"})
    return sa.create_engine(parsed)


def _quoted(text: str) -> str:
    """A SQL string literal (SET takes no bound parameters); the settings validate sizes, paths may hold quotes."""
    return "'" + text.replace("'", "''") + "'"


def is_duckdb(bind: Engine | sa.Connection) -> bool:
    return bind.dialect.name == "duckdb"


def is_postgresql(bind: Engine | sa.Connection) -> bool:
    return bind.dialect.name == "postgresql"


@contextmanager
def memory_lent(conn: sa.Connection, share: float) -> Iterator[None]:
    """The warehouse's DuckDB memory limit lowered by `share` of itself while the block runs, then set back.

    For a block that opens another DuckDB instance in this process (identity's probabilistic pass, given that
    share by `resources.side_duckdb_settings`): without this, the warehouse's buffer pool stays resident beside it
    and the process nears twice the limit (7.4 GiB at 1M people under a 4 GB limit). Lowering the limit
    evicts: blocks of the file are dropped, temporary tables written to the spill folder, and read back
    as needed once the limit is back. Tables are untouched. On PostgreSQL (the server's memory) a no-op.
    """
    if not is_duckdb(conn):
        yield
        return
    limit = conn.execute(sa.text("SELECT current_setting('memory_limit')")).scalar_one()
    conn.execute(sa.text(f"SET memory_limit = '{int(memory_bytes(limit) * (1 - share))}B'"))
    try:
        yield
    finally:
        conn.execute(sa.text(f"SET memory_limit = '{limit}'"))


def memory_bytes(size: str) -> int:
    """Bytes in a DuckDB memory size, as the settings give it ("4GB", "512 MiB") or DuckDB shows it ("3.7 GiB")."""
    match = MEMORY_SIZE.fullmatch(size.strip())
    if match is None:
        raise ValueError(f"not a memory size: {size!r}")
    return int(float(match[1]) * _UNITS[match[2].lower()])
