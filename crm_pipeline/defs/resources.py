"""Resources: the settings, the warehouse engine and the landing folder. Nothing global."""

from datetime import date, datetime, timezone

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.settings import Settings, load_settings
from crm_pipeline.warehouse.engine import make_engine


class CrmSettingsResource(dg.ConfigurableResource):
    """The project settings (YAML + CRM_* environment), with per-run overrides."""

    config_file: str | None = None
    warehouse_url: str | None = None
    landing_dir: str | None = None
    home_dir: str | None = None
    as_of: str | None = None

    def load(self) -> Settings:
        return load_settings(self.config_file, warehouse_url=self.warehouse_url, landing_dir=self.landing_dir,
                             home_dir=self.home_dir, as_of=self.as_of)

    def as_of_date(self, partition_key: str | None = None) -> date:
        """The day a run computes for: the partition, else the configured day, else today (UTC)."""
        if partition_key:
            return date.fromisoformat(partition_key)
        return self.load().as_of or datetime.now(timezone.utc).date()


class WarehouseResource(dg.ConfigurableResource):
    """A SQLAlchemy engine on the warehouse URL (DuckDB file by default, PostgreSQL for serving)."""

    url: str
    _engine: sa.Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # Release the DuckDB file as soon as the step ends: it admits one writing process at a time.
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class LandingResource(dg.ConfigurableResource):
    """The drop folder; a local folder today, swappable for object storage tomorrow."""

    root: str

    def folder(self) -> LandingFolder:
        return LandingFolder(self.root)


def default_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    settings = settings or load_settings()
    return {
        "crm_settings": CrmSettingsResource(
            warehouse_url=settings.warehouse_url, landing_dir=str(settings.landing_dir),
            home_dir=str(settings.home_dir), as_of=settings.as_of.isoformat() if settings.as_of else None,
        ),
        "warehouse": WarehouseResource(url=settings.warehouse_url),
        "landing": LandingResource(root=str(settings.landing_dir)),
    }
