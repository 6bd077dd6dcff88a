"""The SQLAlchemy engine for the warehouse URL: a DuckDB file by default, PostgreSQL for serving."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def make_engine(url: str) -> Engine:
    """An engine for `url`; a DuckDB file's folder is created so a fresh machine just works."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "duckdb":
        if parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)
        # No progress bars in run logs.
        sa.event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA disable_progress_bar"))
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


def is_duckdb(bind: Engine | sa.Connection) -> bool:
    return bind.dialect.name == "duckdb"


def is_postgresql(bind: Engine | sa.Connection) -> bool:
    return bind.dialect.name == "postgresql"
