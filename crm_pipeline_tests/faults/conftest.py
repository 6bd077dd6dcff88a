"""Fixtures of the fault suite: a site (landing folder + DuckDB file) on a real temporary Dagster instance."""

from __future__ import annotations

import pytest

from crm_pipeline_tests.faults.harness import Site


@pytest.fixture
def site(tmp_path, dagster_instance) -> Site:
    site = Site(tmp_path)
    site.landing.mkdir()
    return site
