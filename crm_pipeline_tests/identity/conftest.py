"""A warehouse on each engine identity's SQL runs on: a DuckDB file, and a database on the session's PostgreSQL."""

from __future__ import annotations

import pytest

from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the fixture)


@pytest.fixture(params=["duckdb", "postgresql"])
def backend(request, tmp_path):
    if request.param == "duckdb":
        engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    else:
        server = request.getfixturevalue("postgres_server")
        engine = make_engine(server.create_database(f"identity_{tmp_path.name}".lower()[:60]))
    yield engine
    engine.dispose()
