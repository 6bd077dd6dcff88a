"""The throwaway server the PostgreSQL tests use: started for real, or a skip that says why."""

from __future__ import annotations

import pytest

from crm_pipeline_tests.postgres import server as server_module

psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 comes with the project's test extra")


def test_without_binaries_the_reason_names_the_package_to_install(monkeypatch):
    monkeypatch.setattr(server_module, "find_binaries", lambda: None)
    with pytest.raises(LookupError, match="install Debian's `postgresql` package"):
        server_module.start_server()


def test_the_server_is_real_and_gone_after_stop():
    try:
        server = server_module.start_server()
    except LookupError as reason:
        pytest.skip(f"no PostgreSQL server for this test: {reason}")
    url, root = server.url(), server.root
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW server_version")
        assert cursor.fetchone()[0].split(".")[0].isdigit()
    server.stop()
    assert not root.exists()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(url, connect_timeout=3).close()
