"""The throwaway PostgreSQL server the tests share: one per session, whichever folders use it."""

from __future__ import annotations

import pytest

from crm_pipeline_tests.postgres.server import PostgresServer, start_server

# Modules in other folders import the fixture below, and pytest makes each import a fixture of its own:
# the server lives here instead, so the session starts one (initdb and a start cost seconds each time).
_shared: dict[str, PostgresServer | str] = {}


def shared_server() -> PostgresServer:
    """The session's server, started on first use; pytest.skip with the reason when there can be none."""
    if "server" not in _shared and "reason" not in _shared:
        try:
            _shared["server"] = start_server()
        except LookupError as reason:
            _shared["reason"] = str(reason)
    if "reason" in _shared:
        pytest.skip(f"no PostgreSQL server for this test: {_shared['reason']}")
    return _shared["server"]


def stop_shared_server() -> None:
    """Stop the session's server, if one was started (the root conftest calls this when the session ends)."""
    server = _shared.pop("server", None)
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    return shared_server()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """postgresql://postgres@127.0.0.1:<port>/crm on the throwaway server."""
    return postgres_server.url()
