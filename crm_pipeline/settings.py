"""One settings object for the whole project: defaults, then a YAML file, then environment.

Domain code never reads the environment or the clock; it is handed a `Settings`
(and an explicit `as_of`). Invalid configuration fails fast naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from crm_pipeline.warehouse.engine import MEMORY_SIZE

ENV_PREFIX = "CRM_"


class SettingsError(ValueError):
    """A configuration value is missing, unknown or of the wrong kind."""


@dataclass(frozen=True)
class Settings:
    """Where the warehouse and the drop folder are, and the thresholds users tune."""

    home_dir: Path = field(default_factory=lambda: Path(".crm").resolve())
    warehouse_url: str = ""  # default: a DuckDB file under home_dir
    landing_dir: Path = field(default_factory=lambda: Path("landing").resolve())
    as_of: date | None = None  # None: the caller supplies the day (partition key or today)
    # A file whose quarantined share passes this is held whole (quality stage).
    quarantine_hold_share: float = 0.05
    # A file must keep its size and mtime this long before it is read (still being written otherwise).
    settle_seconds: float = 2.0
    # How many files one sensor tick may look at; the cursor pages through larger folders.
    sensor_page_size: int = 2000
    # Users' YAML overrides of the packaged defaults (empty: the defaults).
    identity_config: str = ""
    survivorship_config: str = ""
    audiences_config: str = ""
    scoring_config: str = ""
    # The generator's truth/ folder, when the data is synthetic: identity quality is then reported.
    truth_dir: str = ""
    # The first day of the daily partitions (predictions, scoring, audiences): far enough back for real history.
    partition_start_date: date = date(1990, 1, 1)
    # Predictions retrain their models every this many days (cadence counted from partition_start_date); the
    # days between score with the stored models. 1: every day.
    predict_retrain_days: int = 7
    # DuckDB only (ignored on PostgreSQL): memory cap before spilling ("6GB"; empty: DuckDB's default, 80% of RAM),
    # threads (0: one per core) and the spill folder (empty: <home_dir>/duckdb_tmp).
    warehouse_memory_limit: str = ""
    warehouse_threads: int = 0
    warehouse_temp_dir: str = ""

    def __post_init__(self) -> None:
        if not self.warehouse_url:
            object.__setattr__(self, "warehouse_url", f"duckdb:///{self.home_dir / 'warehouse.duckdb'}")
        if not 0 <= self.quarantine_hold_share <= 1:
            raise SettingsError(f"quarantine_hold_share: {self.quarantine_hold_share} is not between 0 and 1")
        if self.settle_seconds < 0:
            raise SettingsError(f"settle_seconds: {self.settle_seconds} must not be negative")
        if self.sensor_page_size < 1:
            raise SettingsError(f"sensor_page_size: {self.sensor_page_size} must be at least 1")
        if self.warehouse_memory_limit and not MEMORY_SIZE.fullmatch(self.warehouse_memory_limit):
            raise SettingsError(f"warehouse_memory_limit: {self.warehouse_memory_limit!r} is not a size like 6GB or "
                                "512MiB")
        if self.predict_retrain_days < 1:
            raise SettingsError(f"predict_retrain_days: {self.predict_retrain_days} must be at least 1 (1: every day)")
        if self.warehouse_threads < 0:
            raise SettingsError(f"warehouse_threads: {self.warehouse_threads} must not be negative (0: one per core)")
        if not self.warehouse_temp_dir:
            object.__setattr__(self, "warehouse_temp_dir", str(Path(self.home_dir) / "duckdb_tmp"))

    def with_overrides(self, **overrides: Any) -> Settings:
        return _build({**_as_raw(self), **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def engine_options(self) -> dict[str, Any]:
        """The warehouse tuning `make_engine` applies (DuckDB memory, threads and spill folder)."""
        return {"memory_limit": self.warehouse_memory_limit or None, "threads": self.warehouse_threads or None,
                "temp_directory": self.warehouse_temp_dir}

    @property
    def data_docs_dir(self) -> Path:
        return self.home_dir / "data_docs"

    @property
    def truth_path(self) -> Path | None:
        """The truth folder: as configured, else `truth/` beside a generated landing folder, if present."""
        candidate = Path(self.truth_dir) if self.truth_dir else self.landing_dir.parent / "truth"
        return candidate if (candidate / "records.csv").is_file() else None


def load_settings(config_file: str | Path | None = None, env: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Defaults < YAML file (`config_file` or $CRM_CONFIG) < $CRM_<KEY> variables < overrides."""
    env = dict(os.environ if env is None else env)
    raw: dict[str, Any] = {}
    config_file = config_file or env.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise SettingsError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path}: expected a mapping of settings at the top level")
        raw.update(loaded)
    for name in _field_names():
        value = env.get(f"{ENV_PREFIX}{name.upper()}")
        if value not in (None, ""):
            raw[name] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return _build(raw)


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]


def _as_raw(settings: Settings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings)}


def _build(raw: dict[str, Any]) -> Settings:
    known = set(_field_names())
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name not in raw:
            continue
        values[f.name] = _coerce(f.name, f.type, raw[f.name])
    return Settings(**values)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind = str(kind)
    try:
        if kind == "Path":
            return Path(value).expanduser().resolve()
        if kind in ("date | None", "date"):
            if (value is None and kind != "date") or isinstance(value, date):
                return value
            return date.fromisoformat(str(value))
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{name}: {value!r} is not a valid {kind} ({exc})") from None


def merge_override(base: dict, override: Any, prefix: str) -> dict:
    """A user's YAML `override` on top of packaged defaults `base`, key by key; a key the defaults do not
    have is an error naming it (a typo must not be silently ignored)."""
    if not isinstance(override, dict):
        raise SettingsError(f"{prefix}: expected a mapping, got {type(override).__name__}")
    merged = dict(base)
    for key, value in override.items():
        if key not in base:
            raise SettingsError(f"{prefix}.{key}: unknown key; known: {', '.join(map(str, base))}")
        merged[key] = merge_override(base[key], value, f"{prefix}.{key}") if isinstance(base[key], dict) else value
    return merged
