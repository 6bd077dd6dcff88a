"""Shared fixtures: a temporary landing folder and a temporary DuckDB warehouse file."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.warehouse.engine import make_engine

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def landing_dir(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    return root


@pytest.fixture
def folder(landing_dir: Path) -> LandingFolder:
    return LandingFolder(landing_dir)


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    yield engine
    engine.dispose()


def drop(root: Path, relative: str, content: bytes | str, *, age_seconds: float = 3600) -> Path:
    """Write a file into the landing folder as a finished drop (mtime in the past by default)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    if age_seconds:
        past = datetime.now(timezone.utc).timestamp() - age_seconds
        os.utime(path, (past, past))
    return path


@pytest.fixture
def dagster_instance(tmp_path):
    """A real Dagster instance on a temporary DAGSTER_HOME."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance
