"""Scoring config: the packaged defaults are valid and a bad key or value stops the run naming it."""

from __future__ import annotations

import pytest

from crm_pipeline.scoring.config import load_scoring_config
from crm_pipeline.settings import SettingsError


def test_documented_defaults():
    config = load_scoring_config()
    assert config.points["email_open"] == 1 and config.points["email_click"] == 3
    assert config.points["product_view"] == 2 and config.points["add_to_cart"] == 5
    assert config.points["purchase"] == 10 and config.points["unsubscribe"] == -10
    assert config.half_life_days == 30
    assert (config.active_days, config.lapsed_days, config.loyal_min_purchases) == (90, 365, 3)
    assert config.channels == ("web", "app", "store", "marketplace", "email")
    assert (config.min_evidence, config.email_attribution_days, config.min_volume_points) == (3, 3, 5)


@pytest.mark.parametrize(("text", "message"), [
    ("engagement: {points: {emial_open: 2}}", "scoring.engagement.points.emial_open: unknown key; known: email_open"),
    ("engagement: {half_lif_days: 7}", "scoring.engagement.half_lif_days: unknown key"),
    ("engagement: {half_life_days: soon}", "scoring.engagement.half_life_days: expected a number, got 'soon'"),
    ("engagement: {growth: {band_window_days: 14}}", "scoring.engagement.growth.band_window_days: expected 7 or 30"),
    ("channel: {channels: [email, fax]}",
     "scoring.channel.channels: expected a list out of web, app, store, marketplace, email"),
    ("channel: {prior_strength: 4}", "scoring.channel.prior_strength: unknown key"),
    ("lifecycle: {active_days: 400}", "scoring.lifecycle.lapsed_days: 365 must be more than active_days (400)"),
    ("lifecycle: {loyal_min_purchases: 2.5}", "scoring.lifecycle.loyal_min_purchases: expected a whole number"),
    ("lifecycle: 3", "scoring.lifecycle: expected a mapping"),
])
def test_a_bad_key_or_value_names_the_key(tmp_path, text, message):
    path = tmp_path / "scoring.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        load_scoring_config(path)
    assert message in str(raised.value)


def test_an_override_keeps_the_other_defaults(tmp_path):
    path = tmp_path / "scoring.yaml"
    path.write_text("engagement: {points: {purchase: 25}}\nlifecycle: {active_days: 60}\n", encoding="utf-8")
    config = load_scoring_config(path)
    assert config.points["purchase"] == 25 and config.points["email_click"] == 3
    assert config.active_days == 60 and config.lapsed_days == 365
