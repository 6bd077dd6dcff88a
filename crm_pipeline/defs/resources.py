"""Resources: the settings, the warehouse engine and the landing folder. Nothing global."""

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.settings import Settings, load_settings
from crm_pipeline.warehouse.engine import make_engine, memory_bytes


class CrmSettingsResource(dg.ConfigurableResource):
    """The project settings (YAML + CRM_* environment), with per-run overrides."""

    config_file: str | None = None
    warehouse_url: str | None = None
    landing_dir: str | None = None
    home_dir: str | None = None
    as_of: str | None = None
    # Every other setting the run was given that is not the default (an identity or scoring YAML, a threshold),
    # as text: without it a step would read only the YAML file and environment, and lose the caller's values.
    overrides: dict[str, str] = {}

    def load(self) -> Settings:
        return load_settings(self.config_file, warehouse_url=self.warehouse_url, landing_dir=self.landing_dir,
                             home_dir=self.home_dir, as_of=self.as_of, **self.overrides)

    def as_of_date(self, partition_key: str | None = None) -> date:
        """The day a run computes for: the partition, else the configured day, else today (UTC)."""
        if partition_key:
            return date.fromisoformat(partition_key)
        return self.load().as_of or datetime.now(timezone.utc).date()


class WarehouseResource(dg.ConfigurableResource):
    """A SQLAlchemy engine on the warehouse URL (DuckDB file by default, PostgreSQL for serving)."""

    url: str
    # DuckDB's memory cap, threads and spill folder (settings warehouse_memory_limit, _threads, _temp_dir).
    memory_limit: str | None = None
    threads: int | None = None
    temp_directory: str | None = None
    _engine: sa.Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.url, memory_limit=self.memory_limit, threads=self.threads,
                                       temp_directory=self.temp_directory)
        return self._engine

    def side_duckdb_settings(self, purpose: str) -> dict[str, str | int | None]:
        """Memory, threads and spill folder for another DuckDB instance this process opens beside the warehouse
        (Splink's in-memory pass). Its memory is a share of the warehouse's limit (identity.resolve's
        PASS_MEMORY_SHARE; the warehouse lowers its own limit to the rest while the pass runs), so the process
        stays within the one limit. Its spill folder is a folder of its own under the warehouse's: two instances
        spilling into one folder overwrite each other's files, and the one closing first deletes the folder,
        taking the other's spilled rows with it (a 1M-people run died at commit on "Corrupt temporary file")."""
        from crm_pipeline.identity.resolve import PASS_MEMORY_SHARE

        folder = str(Path(self.temp_directory) / purpose) if self.temp_directory else None
        share = int(memory_bytes(self.memory_limit) * PASS_MEMORY_SHARE) if self.memory_limit else None
        memory = f"{share // 10**6}MB" if share else None
        return {"memory_limit": memory, "threads": self.threads, "temp_directory": folder}

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # Release the DuckDB file when the run ends (our jobs run every step in one process, so the engine serves
        # them all): the file admits one writing process at a time.
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


# Errors that pass on their own, so a later attempt of the same step can succeed: another process holds the
# DuckDB file, or the PostgreSQL server dropped or refused the connection, or two transactions collided.
TRANSIENT_WAREHOUSE_ERRORS = (
    "could not set lock on file", "conflicting lock is held", "database is locked",
    "server closed the connection unexpectedly", "could not connect to server", "connection refused",
    "terminating connection due to administrator command", "deadlock detected", "could not serialize access",
)
RETRY_ATTEMPTS = 3
RETRY_FIRST_WAIT_SECONDS = 2.0


def is_transient_warehouse_error(exc: BaseException) -> bool:
    """Whether retrying can help. A data error (bad value, missing table, broken rule) never is: it would loop."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__ or exc.__context__
    text = " ".join(str(e) for e in seen).lower()
    return any(marker in text for marker in TRANSIENT_WAREHOUSE_ERRORS)


@contextmanager
def transient_warehouse_errors_retried(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Turn a transient warehouse error into a step retry with exponential backoff (2, 4, 8 s).

    Steps delete-then-insert in one transaction, so a retried step gives the same tables.
    Any other error fails the step at once.
    """
    try:
        yield
    except Exception as exc:
        if not is_transient_warehouse_error(exc):
            raise
        wait = RETRY_FIRST_WAIT_SECONDS * 2 ** context.retry_number
        context.log.warning(f"transient warehouse error (attempt {context.retry_number + 1} of "
                            f"{RETRY_ATTEMPTS + 1}), retrying in {wait:.0f} s: {str(exc).splitlines()[0]}")
        raise dg.RetryRequested(max_retries=RETRY_ATTEMPTS, seconds_to_wait=wait) from exc


class LandingResource(dg.ConfigurableResource):
    """The drop folder; a local folder today, swappable for object storage tomorrow."""

    root: str

    def folder(self) -> LandingFolder:
        return LandingFolder(self.root)


# The settings the resources carry in their own fields; the rest travel in `CrmSettingsResource.overrides`.
_OWN_FIELDS = {"warehouse_url", "landing_dir", "home_dir", "as_of"}


def _overrides(settings: Settings) -> dict[str, str]:
    """The settings that differ from the defaults, as text (`load_settings` reads them as it reads the YAML)."""
    default = Settings(home_dir=Path(settings.home_dir))  # the defaults derived from the home (the spill folder) too
    return {f.name: str(getattr(settings, f.name)) for f in dataclasses.fields(Settings)
            if f.name not in _OWN_FIELDS and getattr(settings, f.name) != getattr(default, f.name)}


def default_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources for `settings` (a headless run's, a test's), all of them carried to the steps; without it,
    for the YAML and environment, which the steps re-read at every run (an edited YAML counts from the next run)."""
    given = settings is not None
    settings = settings or load_settings()
    # A URL from the environment stays an env var reference, so a PostgreSQL password never shows in the UI.
    url = dg.EnvVar("CRM_WAREHOUSE_URL") if os.environ.get("CRM_WAREHOUSE_URL") == settings.warehouse_url \
        else settings.warehouse_url
    return {
        "crm_settings": CrmSettingsResource(
            warehouse_url=url, landing_dir=str(settings.landing_dir),
            home_dir=str(settings.home_dir), as_of=settings.as_of.isoformat() if settings.as_of else None,
            overrides=_overrides(settings) if given else {},
        ),
        "warehouse": WarehouseResource(url=url, **settings.engine_options),
        "landing": LandingResource(root=str(settings.landing_dir)),
    }
