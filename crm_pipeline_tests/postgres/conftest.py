"""The throwaway PostgreSQL server the tests in this folder share (one per session)."""

from __future__ import annotations

import pytest

from crm_pipeline_tests.postgres.server import PostgresServer, start_server


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    try:
        server = start_server()
    except LookupError as reason:
        pytest.skip(f"no PostgreSQL server for this test: {reason}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """postgresql://postgres@127.0.0.1:<port>/crm on the throwaway server."""
    return postgres_server.url()
