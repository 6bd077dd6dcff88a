"""The settings a run is given reach its steps through the resources, not only through the YAML and environment."""

import dagster as dg

from crm_pipeline.defs.resources import CrmSettingsResource, default_resources
from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.settings import Settings


def _settings_a_step_sees(settings: Settings, monkeypatch) -> Settings:
    """The settings as a step of a run on `default_resources(settings)` loads them (through Dagster's config)."""
    for name in ("CRM_CONFIG", "CRM_IDENTITY_CONFIG", "CRM_PREDICT_RETRAIN_DAYS"):
        monkeypatch.delenv(name, raising=False)
    seen = {}

    @dg.asset
    def probe(crm_settings: CrmSettingsResource) -> None:
        seen["settings"] = crm_settings.load()

    assert dg.materialize([probe], resources=default_resources(settings)).success
    return seen["settings"]


def test_a_configured_identity_config_reaches_the_identity_step(tmp_path, monkeypatch):
    override = tmp_path / "identity.yaml"
    override.write_text("max_cluster_size: 7\n", encoding="utf-8")
    settings = Settings(home_dir=tmp_path / "home", landing_dir=tmp_path / "landing", identity_config=str(override))

    seen = _settings_a_step_sees(settings, monkeypatch)

    assert seen.identity_config == str(override)
    assert load_identity_config(seen.identity_config or None).max_cluster_size == 7  # what resolve_identity reads


def test_other_non_default_settings_reach_the_steps_and_defaults_stay_out_of_the_config(tmp_path, monkeypatch):
    settings = Settings(home_dir=tmp_path / "home", landing_dir=tmp_path / "landing", predict_retrain_days=1,
                        quarantine_hold_share=0.2)

    seen = _settings_a_step_sees(settings, monkeypatch)

    assert (seen.predict_retrain_days, seen.quarantine_hold_share) == (1, 0.2)
    assert seen.warehouse_temp_dir == settings.warehouse_temp_dir
    assert default_resources(settings)["crm_settings"].overrides == {
        "predict_retrain_days": "1", "quarantine_hold_share": "0.2"}


def test_the_code_locations_resources_leave_the_yaml_and_environment_to_be_read_at_each_run(tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_CONFIG", raising=False)
    monkeypatch.setenv("CRM_HOME_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("CRM_PREDICT_RETRAIN_DAYS", "1")
    resource = default_resources()["crm_settings"]
    assert resource.overrides == {}  # nothing frozen when the definitions load
    monkeypatch.setenv("CRM_PREDICT_RETRAIN_DAYS", "3")
    assert resource.load().predict_retrain_days == 3  # a later change counts from the next run
