"""Writing recomputed contacts' rows by difference leaves the table a delete-then-insert would leave,
writing only the rows that changed."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.profiles import rewrite
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the fixture)
from crm_pipeline_tests.profiles.test_incremental_backends import backend_engine

ROWS = [("a", 1, 1.5, "x"), ("a", 2, 2.0, None), ("a", 3, 3.0, "gone"), ("b", 1, 9.0, "other contact")]
# the recomputed contact a's rows: day 1 as it was, day 2 a value set (NULL -> text), day 3 gone, day 4 new
NEXT = [("a", 1, 1.5, "x"), ("a", 2, 2.0, "now set"), ("a", 4, 4.0, None)]


@pytest.fixture(params=["duckdb", "postgresql"])
def engine(request, tmp_path):
    engine = backend_engine(request, tmp_path, "rewrite")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE daily (contact_id VARCHAR NOT NULL, day INTEGER NOT NULL, "
                             "points DOUBLE PRECISION, note VARCHAR)"))
        conn.execute(sa.text("INSERT INTO daily VALUES (:c, :d, :p, :n)"),
                     [dict(zip("cdpn", row)) for row in ROWS])
        conn.execute(sa.text("CREATE TABLE recompute (contact_id VARCHAR)"))
        conn.execute(sa.text("INSERT INTO recompute VALUES ('a')"))
    yield engine
    engine.dispose()


def _write(engine: sa.Engine, rows: list[tuple], *, full: bool) -> int | None:
    with engine.begin() as conn:
        into = rewrite.begin(conn, "daily", full=full)
        if rows:
            conn.execute(sa.text(f"INSERT INTO {into} VALUES (:c, :d, :p, :n)"), [dict(zip("cdpn", r)) for r in rows])
        return rewrite.finish(conn, "daily", ("contact_id", "day"), "recompute", full=full)


def _table(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text("SELECT * FROM daily ORDER BY contact_id, day"), conn)
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


def test_only_the_changed_new_and_gone_rows_are_written(engine):
    assert _write(engine, NEXT, full=False) == 3  # day 2 updated, day 4 inserted, day 3 deleted; day 1 untouched
    assert _table(engine) == sorted([*NEXT, ROWS[-1]])  # the other contact's row stays
    assert _write(engine, NEXT, full=False) == 0  # the same rows again: nothing to write


def test_a_contact_without_rows_any_more_loses_them_all_and_a_full_write_replaces_the_table(engine):
    assert _write(engine, [], full=False) == 3
    assert _table(engine) == [ROWS[-1]]
    assert _write(engine, NEXT, full=True) is None
    assert _table(engine) == sorted(NEXT)
