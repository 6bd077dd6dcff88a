"""Settings: defaults, YAML, environment, and errors that name the key."""

from datetime import date

import pytest

from crm_pipeline.settings import SettingsError, load_settings


def test_defaults_put_the_warehouse_under_the_home_folder(tmp_path):
    settings = load_settings(env={}, home_dir=tmp_path)
    assert settings.warehouse_url == f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    assert settings.as_of is None and settings.quarantine_hold_share == 0.05


def test_yaml_then_environment_then_overrides(tmp_path):
    config = tmp_path / "crm.yaml"
    config.write_text("quarantine_hold_share: 0.1\nas_of: 2025-01-31\nsettle_seconds: 9\n")
    settings = load_settings(config, env={"CRM_SETTLE_SECONDS": "4"}, sensor_page_size=10)
    assert settings.quarantine_hold_share == 0.1 and settings.as_of == date(2025, 1, 31)
    assert settings.settle_seconds == 4.0 and settings.sensor_page_size == 10


@pytest.mark.parametrize("yaml_text, key", [
    ("quarantine_hold_sahre: 0.1\n", "quarantine_hold_sahre"),
    ("quarantine_hold_share: lots\n", "quarantine_hold_share"),
    ("quarantine_hold_share: 2\n", "quarantine_hold_share"),
    ("as_of: yesterday\n", "as_of"),
])
def test_invalid_config_fails_fast_naming_the_key(tmp_path, yaml_text, key):
    config = tmp_path / "crm.yaml"
    config.write_text(yaml_text)
    with pytest.raises(SettingsError, match=key):
        load_settings(config, env={})
