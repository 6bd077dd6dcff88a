"""Shared harness for the fault suite: a landing folder, a DuckDB file and a Dagster instance,
driven by the real assets, and the checks that nothing was lost or duplicated.

The invariants every fault test ends with:
- each distinct file content is loaded at most once, and every landed file is in the manifest
  with a status (loaded / duplicate / rejected);
- every loaded file's rows are all in its raw table, and no raw row lacks a loaded file
  (a file loads in one transaction or not at all);
- after staging, per file: rows read = staged + quarantined + deduplicated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES
from crm_pipeline.defs.resources import CrmSettingsResource, LandingResource, default_resources
from crm_pipeline.defs.sensors import landing_sensor
from crm_pipeline.landing.report import raw_rows_not_matching_manifest
from crm_pipeline.quality.accounting import file_balances
from crm_pipeline.settings import Settings
from crm_pipeline.warehouse.engine import make_engine

AS_OF = date(2025, 6, 30)
INGEST = ["ingest_files"]
STAGE = ["ingest_files", "stage_entities"]
IDENTITY = ["ingest_files", "stage_entities", "resolve_identity"]


@dataclass(frozen=True)
class Site:
    """One installation under a temporary folder: landing/, the warehouse file, the settings home."""

    root: Path

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse_file(self) -> Path:
        return self.root / "wh" / "warehouse.duckdb"

    @property
    def url(self) -> str:
        return f"duckdb:///{self.warehouse_file}"

    @property
    def settings(self) -> Settings:
        # Deterministic identity only: these faults are about files, and Splink would only add seconds.
        config = self.root / "identity.yaml"
        if not config.exists():
            config.write_text("probabilistic:\n  enabled: false\n", encoding="utf-8")
        return Settings(home_dir=self.root / "home", landing_dir=self.landing, warehouse_url=self.url,
                        identity_config=str(config))

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a subprocess (run worker, daemon) of this site sees."""
        return {**os.environ, "CRM_HOME_DIR": str(self.root / "home"), "CRM_LANDING_DIR": str(self.landing),
                "CRM_WAREHOUSE_URL": self.url, "DAGSTER_HOME": os.environ["DAGSTER_HOME"], **extra}

    def query(self, sql: str, **params) -> list[tuple]:
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()


def run_assets(site: Site, instance: dg.DagsterInstance, selection: list[str], paths: list[str] | None = None,
               raise_on_error: bool = False):
    """`selection`: op names of multi-assets (ingest_files, stage_entities, resolve_identity ...).

    One real run of the selected assets on the instance (what the sensor's or the CLI's run does)."""
    from crm_pipeline.definitions import ALL_ASSETS

    chosen = [a for a in ALL_ASSETS if a.op.name in selection]
    return dg.materialize(
        ALL_ASSETS, selection=dg.AssetSelection.assets(*chosen), instance=instance,
        resources=default_resources(site.settings),
        run_config={"ops": {"ingest_files": {"config": {"paths": paths or []}}},
                    "loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        raise_on_error=raise_on_error, tags={"crm/as_of": AS_OF.isoformat()},
    )


def manifest(site: Site) -> list[dict]:
    engine = make_engine(site.url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("files"):
                return []
            return [dict(r) for r in conn.execute(sa.text("SELECT * FROM files ORDER BY file_id")).mappings()]
    finally:
        engine.dispose()


def by_path(site: Site) -> dict[str, list[str]]:
    """path -> the statuses its manifest rows have, in order."""
    found: dict[str, list[str]] = {}
    for row in manifest(site):
        found.setdefault(row["path"], []).append(row["status"])
    return found


def assert_loaded_exactly_once(site: Site, expected_rows: dict[str, int]) -> None:
    """Each path in `expected_rows` has one loaded manifest row with that many rows, all of them in raw;
    no content loads twice; no raw row is orphaned or missing."""
    rows = manifest(site)
    loaded = [r for r in rows if r["status"] == "loaded"]
    twice = [sha for sha, n in Counter(r["sha256"] for r in loaded).items() if n > 1]
    assert not twice, f"content loaded more than once: {twice}"
    loaded_paths = Counter(r["path"] for r in loaded)
    for path, n in expected_rows.items():
        assert loaded_paths[path] == 1, f"{path} loaded {loaded_paths[path]} times; manifest: {by_path(site)}"
        [row] = [r for r in loaded if r["path"] == path]
        assert (row["rows_read"], row["rows_loaded"]) == (n, n), f"{path}: {row}"
    engine = make_engine(site.url)
    try:
        with engine.connect() as conn:
            assert raw_rows_not_matching_manifest(conn) == []
    finally:
        engine.dispose()


def assert_accounting_balanced(site: Site) -> dict[str, list]:
    """Per loaded file and entity: rows read = staged + quarantined + deduplicated (nothing held)."""
    engine = make_engine(site.url)
    try:
        with engine.connect() as conn:
            balances = {name: file_balances(conn, name) for name in ENTITIES}
    finally:
        engine.dispose()
    problems = [f"{b.file}: read {b.rows_read} staged {b.staged} quarantined {b.quarantined} "
                f"deduplicated {b.deduplicated} held {b.held}"
                for bs in balances.values() for b in bs if not b.balanced or b.held]
    assert not problems, problems
    return balances


def write_csv(root: Path, relative: str, header: str, rows: list[str], *, age_seconds: float = 3600) -> Path:
    """A finished drop (mtime in the past unless age_seconds is 0)."""
    from crm_pipeline_tests.conftest import drop

    return drop(root, relative, header + "\n" + "".join(r + "\n" for r in rows), age_seconds=age_seconds)


CUSTOMER_HEADER = "customer_id,email,first_name,last_name,country,created_at,updated_at"
ORDER_HEADER = "order_id,customer_id,email,ordered_at,status,currency,total"
ITEM_HEADER = "order_id,line_number,sku,quantity,unit_price"


def customers(n: int, start: int = 1) -> list[str]:
    return [f"C{i},person{i}@example.com,Ann{i},Lee,US,2025-01-01T00:00:00Z,2025-01-02T00:00:00Z"
            for i in range(start, start + n)]


def orders(n: int, start: int = 1) -> list[str]:
    return [f"O{i},C{i},person{i}@example.com,2025-05-0{1 + i % 9}T10:00:00Z,delivered,USD,{10 + i}.50"
            for i in range(start, start + n)]


def order_items(n: int, start: int = 1) -> list[str]:
    return [f"O{i},1,SKU{i % 7},1,{10 + i}.50" for i in range(start, start + n)]


def this_run_markdown(result) -> str:
    """The `files` materialization's table of what the ingest run did with each new file."""
    [files] = [m for m in result.asset_materializations_for_node("ingest_files") if m.asset_key.path == ["files"]]
    return files.metadata["this_run"].value


@contextmanager
def mounted_tmpfs(path: Path, size: str) -> Iterator[bool]:
    """Mount a tmpfs of `size` on `path` when we may (root); yields whether it is mounted.

    A real small file system: it fills up for real, and creating 50,000 files on it takes a second."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        yield False
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def start_ingest_worker(site: Site, paths: list[str] | None = None, *, wait: bool = False,
                        **env: str) -> subprocess.Popen:
    """A real ingest run in its own process (crm_pipeline_tests.faults.ingest_worker), on this site.

    With `wait`, the worker imports everything, prints `ready` and starts its run on a line from stdin."""
    import sys

    args = [sys.executable, "-m", "crm_pipeline_tests.faults.ingest_worker", *(["--wait"] if wait else []),
            *(paths or [])]
    return subprocess.Popen(args, env=site.env(**env), cwd=Path(__file__).resolve().parents[2],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_requested(site: Site, instance: dg.DagsterInstance, request: dg.RunRequest):
    """Execute a sensor's run request as the run it asks for (same config, same run key)."""
    from crm_pipeline.defs.ingest_assets import ingest_files

    return dg.materialize(
        [ingest_files], instance=instance, resources=default_resources(site.settings),
        run_config={**request.run_config, "loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        tags={**request.tags, "dagster/run_key": request.run_key},
    )


def sensor_tick(site: Site, instance: dg.DagsterInstance, cursor: str | None):
    """One evaluation of the real landing sensor on this site's folder; returns (result, new cursor)."""
    resources = {"landing": LandingResource(root=str(site.landing)),
                 "crm_settings": CrmSettingsResource(landing_dir=str(site.landing), home_dir=str(site.root / "home"))}
    result = landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    return result, result.cursor


def requested_paths(result) -> list[list[str]]:
    return [r.run_config["ops"]["ingest_files"]["config"]["paths"] for r in result.run_requests]


def failed_step_messages(result) -> list[str]:
    """Each failed step's error message, with the messages of its causes (what a user reads in the UI)."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure:
            error, parts = event.event_specific_data.error, []
            while error is not None:
                parts.append(error.message.strip())
                error = error.cause
            messages.append("\n".join(parts))
    return messages
