"""Audiences say when they are stale: Dagster's freshness daemon on the project's definitions and instance."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import freeze_time  # Dagster's own clock for tests: events are stamped by it
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon

from crm_pipeline.defs.headless import INSTANCE_YAML

ROOT = Path(__file__).resolve().parents[2]
AUDIENCES = ("audience_members", "audience_history")


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


@pytest.fixture
def workspace(instance):
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="crm_pipeline.definitions", working_directory=str(ROOT)),
        location_name="crm_pipeline")
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
        yield context


def evaluate(instance, workspace) -> dict[str, str]:
    """One iteration of the freshness daemon, as `dagster dev` runs it; the state it recorded per audience."""
    list(FreshnessDaemon().run_iteration(workspace))
    records = instance.get_freshness_state_records([dg.AssetKey(name) for name in AUDIENCES])
    return {key.to_user_string(): record.freshness_state.value for key, record in records.items()}


def refreshed_at(instance, when: datetime) -> None:
    with freeze_time(when):
        for name in AUDIENCES:
            instance.report_runless_asset_event(dg.AssetMaterialization(name, partition=when.date().isoformat()))


def test_audiences_are_stale_26_hours_after_their_last_refresh_and_fresh_after_a_new_one(instance, workspace):
    now = datetime.now(timezone.utc)
    assert evaluate(instance, workspace) == dict.fromkeys(AUDIENCES, "UNKNOWN")  # never refreshed

    refreshed_at(instance, now - timedelta(hours=27))
    assert evaluate(instance, workspace) == dict.fromkeys(AUDIENCES, "FAIL")

    refreshed_at(instance, now - timedelta(hours=25))  # yesterday's 05:00 run, say: still within the window
    assert evaluate(instance, workspace) == dict.fromkeys(AUDIENCES, "PASS")


def test_only_the_audiences_carry_the_freshness_policy():
    from crm_pipeline.definitions import defs

    graph = defs.get_repository_def().asset_graph
    with_policy = {key.to_user_string(): graph.get(key).freshness_policy for key in graph.get_all_asset_keys()
                   if graph.get(key).freshness_policy}
    assert set(with_policy) == set(AUDIENCES)
    assert {p.fail_window.to_timedelta() for p in with_policy.values()} == {timedelta(hours=26)}
