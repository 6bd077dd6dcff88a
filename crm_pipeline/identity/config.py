"""Identity resolution settings: packaged defaults (identity.yaml) overridden by a user's YAML."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crm_pipeline.identity.blocking import BlockingBudget
from crm_pipeline.settings import SettingsError, merge_override


@dataclass(frozen=True)
class IdentityConfig:
    junk_emails: frozenset[str]
    junk_email_patterns: tuple[re.Pattern, ...]
    junk_phones: frozenset[str]
    max_people_per_identifier: int
    max_people_per_device: int
    max_cluster_size: int
    probabilistic_enabled: bool
    probabilistic_threshold: float | None  # None: chosen from the trained model on every run
    max_pairs_per_record: int
    seed: int
    blocking: BlockingBudget = BlockingBudget()
    full_recluster_every_days: int = 30  # 0: never (only --full-refresh clusters the whole graph)


def load_identity_config(path: str | Path | None = None) -> IdentityConfig:
    raw = yaml.safe_load(resources.files("crm_pipeline.identity").joinpath("identity.yaml").read_text("utf-8"))
    if path:
        override = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(override, dict):
            raise SettingsError(f"{path}: expected a mapping at the top level")
        raw = merge_override(raw, override, prefix="identity")
    return _build(raw)


def _build(raw: dict[str, Any]) -> IdentityConfig:
    def number(key: str, value: Any, kind: type, low: float, high: float | None = None):
        try:
            v = kind(value)
        except (TypeError, ValueError):
            raise SettingsError(f"identity.{key}: {value!r} is not a {kind.__name__}") from None
        if v < low or (high is not None and v > high):
            raise SettingsError(f"identity.{key}: {v} is outside {low}..{high if high is not None else 'inf'}")
        return v

    junk, prob = raw["junk"], raw["probabilistic"]
    blocking = prob["blocking"]
    patterns = []
    for pattern in junk.get("email_patterns") or []:
        try:
            patterns.append(re.compile(pattern))
        except re.error as exc:
            raise SettingsError(f"identity.junk.email_patterns: {pattern!r} is not a regular expression ({exc})") from None
    return IdentityConfig(
        junk_emails=frozenset(str(e).strip().lower() for e in junk.get("emails") or []),
        junk_email_patterns=tuple(patterns),
        junk_phones=frozenset(str(p).strip() for p in junk.get("phones") or []),
        max_people_per_identifier=number("max_people_per_identifier", raw["max_people_per_identifier"], int, 1),
        max_people_per_device=number("max_people_per_device", raw["max_people_per_device"], int, 1),
        max_cluster_size=number("max_cluster_size", raw["max_cluster_size"], int, 2),
        probabilistic_enabled=bool(prob["enabled"]),
        probabilistic_threshold=(None if str(prob["threshold"]).strip().lower() == "auto"
                                 else number("probabilistic.threshold", prob["threshold"], float, 0.5, 1.0)),
        max_pairs_per_record=number("probabilistic.max_pairs_per_record", prob["max_pairs_per_record"], int, 1),
        seed=number("probabilistic.seed", prob["seed"], int, 0),
        blocking=BlockingBudget(
            comparisons_per_record=number("probabilistic.blocking.comparisons_per_record",
                                          blocking["comparisons_per_record"], float, 1e-9),
            max_block_size=number("probabilistic.blocking.max_block_size", blocking["max_block_size"],
                                  int, 2)),
        full_recluster_every_days=number("full_recluster_every_days", raw["full_recluster_every_days"], int, 0),
    )
