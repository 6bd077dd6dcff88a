"""Shared fixtures: a temporary landing folder and a temporary DuckDB warehouse file."""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.warehouse.engine import make_engine

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def _one_duckdb_thread_per_connection() -> None:
    """Every DuckDB connection the test processes open runs one thread unless its config asks for more.

    Three workers share two cores (Makefile), so DuckDB's default of a thread per core oversubscribes them,
    and a test's tables are mostly smaller than one row group (122,880 rows), which DuckDB does not split
    among threads anyway. The whole suite measured 12% less CPU in its test processes (1,208 -> 1,057 s).
    The commands the tests start as processes (`crm-pipeline run`, `dagster dev` and its runs) keep DuckDB's
    defaults, so multi-threaded execution is still exercised end to end."""
    import functools

    import duckdb

    connect = duckdb.connect

    @functools.wraps(connect)
    def one_thread(*args, config=None, **kwargs):
        return connect(*args, config={"threads": 1, **(config or {})}, **kwargs)

    duckdb.connect = one_thread


_one_duckdb_thread_per_connection()


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


@pytest.fixture(scope="session")
def resolved_2000(tmp_path_factory) -> tuple[Path, Path]:
    """The generator's default 2,000 people to 2025-06-30, ingested, typed, published and resolved
    (deterministic identity): (warehouse file, generated folder with landing/ and truth/).

    Built once per session, because predictions and scoring both test on it; a test that writes copies
    the file first (`copy_warehouse`), so each module starts from the same staged warehouse."""
    from crm_pipeline.identity.config import load_identity_config
    from crm_pipeline.identity.resolve import resolve_identities
    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.quality.publish import publish
    from crm_pipeline.quality.typing_run import type_new_files
    from crm_pipeline.synth.generate import generate

    end, now = date(2025, 6, 30), datetime(2025, 7, 1, tzinfo=timezone.utc)
    root = tmp_path_factory.mktemp("resolved_2000")
    generate(root / "gen", people=2000, end_date=end)
    path = root / "warehouse.duckdb"
    engine = make_engine(f"duckdb:///{path}")
    ingest_folder(engine, LandingFolder(root / "gen" / "landing"), now=now)
    type_new_files(engine, now=now)
    publish(engine, hold_share=0.05)
    resolve_identities(engine, as_of=end, config=load_identity_config(), find_pairs=None)
    engine.dispose()  # the file is closed and complete: copies of it are whole warehouses
    return path, root / "gen"


def copy_warehouse(source: Path, folder: Path):
    """An engine on a private copy of the warehouse file `source`, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    shutil.copyfile(source, target)
    return make_engine(f"duckdb:///{target}")


# `make test` runs three pytest-xdist workers (Makefile). A module's tests stay on one worker, so its module fixtures
# are built once. A package whose fixtures are costly and shared across its modules is one unit: the live UI (a
# Dagster server), Spark (a JVM), erasure (a built warehouse), synth (generated sets). The units are handed out by the
# scheduler below, from each test's path: xdist's own `--dist loadgroup` reads `xdist_group` marks through a node id
# suffix that pytest 9.2 no longer honours, and silently ran one module's tests on both workers (each building the
# module's fixtures). The longest units go first (the Makefile passes --no-loadscope-reorder to keep this order): a
# long unit started last would leave the other workers idle at the end.
_ONE_UNIT_PACKAGES = ("live", "spark", "erasure", "synth")
_LONGEST_FIRST = ("live", "spark", "identity", "erasure", "faults", "synth")
_TESTS = Path(__file__).parent


def worker_unit(nodeid: str) -> str:
    """The worker unit of a test node id (`crm_pipeline_tests/<package or module path>::...`)."""
    path = Path(nodeid.split("::", 1)[0])
    parts = path.relative_to(_TESTS.name).parts if path.parts[:1] == (_TESTS.name,) else path.parts
    return parts[0] if parts[0] in _ONE_UNIT_PACKAGES else "/".join(parts)


def pytest_xdist_make_scheduler(config, log):
    """Load scheduling by `worker_unit`: xdist's module scheduling with our packages kept whole."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_unit(nodeid)

    return UnitScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    rank = {package: n for n, package in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).relative_to(_TESTS).parts[0], len(rank)))


def pytest_sessionfinish(session, exitstatus):
    """The shared PostgreSQL server (crm_pipeline_tests.postgres.conftest) ends with the session."""
    from crm_pipeline_tests.postgres.conftest import stop_shared_server

    stop_shared_server()


def canonical_contact_ids(conn) -> dict:
    """Each contact id mapped to its smallest record key: the same person compares equal across two warehouses
    that numbered their contacts differently (a full refresh against a run in drops)."""
    import sqlalchemy as sa

    return dict(conn.execute(sa.text(
        "SELECT contact_id, MIN(entity || '|' || brand || '|' || source_key) FROM identity_map "
        "GROUP BY contact_id")).all())
