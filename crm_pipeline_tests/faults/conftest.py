"""Fixtures of the fault suite: a site (landing folder + DuckDB file) on a real temporary Dagster instance."""

from __future__ import annotations

import pytest

from crm_pipeline_tests.faults.harness import Site


@pytest.fixture
def site(tmp_path, dagster_instance, monkeypatch) -> Site:
    site = Site(tmp_path)
    site.landing.mkdir()
    # The site's deterministic identity (Site.settings): the assets read it from the environment, since the
    # resources built from Settings do not carry its identity_config; run workers inherit it through env().
    monkeypatch.setenv("CRM_IDENTITY_CONFIG", site.settings.identity_config)
    return site
