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
    return sa.create_engine(url)


def is_duckdb(bind: Engine | sa.Connection) -> bool:
    return bind.dialect.name == "duckdb"
