"""Scoring settings: the packaged `scoring.yaml` overridden by a user's YAML, validated before any SQL runs.

Every problem names its key (`scoring.engagement.points.emial_open: unknown key ...`), so a typo in a
user's file stops the run instead of silently scoring with a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crm_pipeline.settings import SettingsError, merge_override
from crm_pipeline.warehouse.profile_schema import TIMELINE_EVENT_TYPES

# Points keys: the timeline's event types, with `purchase` standing for an order that is a purchase.
POINT_EVENTS = tuple("purchase" if t == "order" else t for t in TIMELINE_EVENT_TYPES)
ORDER_CHANNELS = ("web", "app", "store", "marketplace")      # the orders' own channel values (the contract's)
CHANNELS = (*ORDER_CHANNELS, "email", "unknown")
STAGES = ("prospect", "first_time", "repeat", "loyal", "lapsing", "lapsed", "won_back", "unknown")
GROWTH_BANDS = ("rising", "steady", "falling", "dormant", "unknown")


@dataclass(frozen=True)
class ScoringConfig:
    points: dict[str, float]
    half_life_days: float
    band_window_days: int
    rising_at: float
    falling_at: float
    min_base_points: float
    min_volume_points: float
    top_n: int
    preference_lookback_days: int
    channels: tuple[str, ...]
    channel_lookback_days: int
    email_attribution_days: int
    min_evidence: int
    active_days: int
    lapsed_days: int
    loyal_min_purchases: int
    funnel_days: int


def default_raw() -> dict:
    return yaml.safe_load(resources.files("crm_pipeline.scoring").joinpath("scoring.yaml").read_text("utf-8"))


def load_scoring_config(path: str | Path | None = None) -> ScoringConfig:
    """The packaged defaults merged with `path`'s YAML; raises SettingsError naming the first bad key."""
    raw = default_raw()
    if path:
        try:
            override = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML: {exc}") from None
        raw = merge_override(raw, override, prefix="scoring")
    return build_config(raw)


def _number(raw: dict, path: str, kind: type = float, low: float | None = None, high: float | None = None):
    value: Any = raw
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise SettingsError(f"scoring.{path}: missing")
        value = value[part]
    whole = not isinstance(value, bool) and isinstance(value, (int, float)) and float(value).is_integer()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not whole):
        raise SettingsError(f"scoring.{path}: expected a {'whole number' if kind is int else 'number'}, "
                            f"got {value!r}")
    value = kind(value)
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        raise SettingsError(f"scoring.{path}: {value} is outside {low if low is not None else '-inf'}.."
                            f"{high if high is not None else 'inf'}")
    return value


def build_config(raw: dict) -> ScoringConfig:
    for section in ("engagement", "preferences", "channel", "lifecycle"):
        if not isinstance(raw.get(section), dict):
            raise SettingsError(f"scoring.{section}: expected a mapping")
    points_raw = raw["engagement"].get("points")
    if not isinstance(points_raw, dict):
        raise SettingsError("scoring.engagement.points: expected a mapping of interaction -> points")
    for key in points_raw:
        if key not in POINT_EVENTS:
            raise SettingsError(f"scoring.engagement.points.{key}: unknown interaction; known: "
                                f"{', '.join(POINT_EVENTS)}")
    points = {key: _number(raw, f"engagement.points.{key}", float, -1000, 1000) for key in points_raw}
    window = _number(raw, "engagement.growth.band_window_days", int)
    if window not in (7, 30):
        raise SettingsError(f"scoring.engagement.growth.band_window_days: expected 7 or 30, got {window}")
    rising = _number(raw, "engagement.growth.rising_at", float, 0, 100)
    falling = _number(raw, "engagement.growth.falling_at", float, -1, 0)
    channels = raw["channel"].get("channels")
    choosable = CHANNELS[:-1]
    if not isinstance(channels, list) or not channels or any(c not in choosable for c in channels) \
            or len(set(channels)) != len(channels):
        raise SettingsError(f"scoring.channel.channels: expected a list out of {', '.join(choosable)} "
                            f"without repeats, got {channels!r}")
    active = _number(raw, "lifecycle.active_days", int, 1, 3650)
    lapsed = _number(raw, "lifecycle.lapsed_days", int, 1, 3650)
    if lapsed <= active:
        raise SettingsError(f"scoring.lifecycle.lapsed_days: {lapsed} must be more than active_days ({active})")
    return ScoringConfig(
        points=points,
        half_life_days=_number(raw, "engagement.half_life_days", float, 0.5, 3650),
        band_window_days=window, rising_at=rising, falling_at=falling,
        min_base_points=_number(raw, "engagement.growth.min_base_points", float, 0.001, 1e6),
        min_volume_points=_number(raw, "engagement.growth.min_volume_points", float, 0, 1e6),
        top_n=_number(raw, "preferences.top_n", int, 1, 20),
        preference_lookback_days=_number(raw, "preferences.lookback_days", int, 1, 36500),
        channels=tuple(channels),
        channel_lookback_days=_number(raw, "channel.lookback_days", int, 1, 36500),
        email_attribution_days=_number(raw, "channel.email_attribution_days", int, 0, 365),
        min_evidence=_number(raw, "channel.min_evidence", int, 0, 1_000_000),
        active_days=active, lapsed_days=lapsed,
        loyal_min_purchases=_number(raw, "lifecycle.loyal_min_purchases", int, 2, 1000),
        funnel_days=_number(raw, "lifecycle.funnel_days", int, 1, 3650),
    )
