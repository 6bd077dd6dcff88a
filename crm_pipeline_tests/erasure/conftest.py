"""A small generated warehouse, built once through the whole graph, copied fresh for every erasure test."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.cli_process import cli

END = "2025-06-30"


@dataclass
class Built:
    root: Path
    warehouse: Path
    landing: Path


@dataclass
class Warehouse:
    engine: sa.Engine
    landing: Path
    tmp: Path


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    """`crm-pipeline generate` (200 people, 2 brands, a year) then `crm-pipeline run`, as a user does."""
    root = tmp_path_factory.mktemp("erasure")
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster"), "CRM_HOME_DIR": str(root / "home")}
    generated = cli("generate", "--people", "200", "--brands", "2", "--days", "365", "--seed", "11",
                    "--end-date", END, "--out", str(root / "data"), env=env, timeout=900)
    assert generated.returncode == 0, generated.stderr
    warehouse = root / "warehouse.duckdb"
    ran = cli("run", "--landing", str(root / "data" / "landing"), "--as-of", END,
              "--warehouse", f"duckdb:///{warehouse}", env=env, timeout=900)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return Built(root, warehouse, root / "data" / "landing")


@pytest.fixture
def warehouse(built: Built, tmp_path: Path):
    """A private copy of the built warehouse and landing folder: each test may erase and re-load freely."""
    shutil.copy(built.warehouse, tmp_path / "warehouse.duckdb")
    shutil.copytree(built.landing, tmp_path / "landing")
    engine = make_engine(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    yield Warehouse(engine, tmp_path / "landing", tmp_path)
    engine.dispose()
