"""The service for real: `dagster dev` picks up dropped files and brings them through to audiences unattended."""

from __future__ import annotations

import os
import shutil
import signal
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from crm_pipeline.identity.evaluate import evaluate_identity
from crm_pipeline_tests.live.conftest import (LiveDagster, kill_all, process_tree, tags, wait_for_end,
                                              will_not_retry)
from crm_pipeline_tests.network import free_port

ASSET_QUERY = """
query Asset($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) { groupName description owners { __typename
      ... on TeamAssetOwner { team } ... on UserAssetOwner { email } } kinds
    freshnessStatusInfo { freshnessStatus }
    assetChecksOrError { __typename ... on AssetChecks { checks { name executionForLatestMaterialization {
      status } } } } }
  assetOrError(assetKey: {path: $path}) { __typename ... on Asset {
    assetMaterializations(limit: 1) { partition runId metadataEntries { label __typename
      ... on MarkdownMetadataEntry { mdStr } ... on IntMetadataEntry { intValue } } } } }
}
"""
AUTOMATION_QUERY = """
query Automation { workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  ... on RepositoryLocation { repositories {
    sensors { name sensorState { status } } schedules { name scheduleState { status } } } } } } } }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } }
}
"""
ROW_COUNTS_QUERY = """
query RowCounts { assetNodes { assetKey { path } assetMaterializations(limit: 1) { metadataEntries { label } } } }
"""


def asset(live, name: str) -> tuple[dict, dict]:
    data = live.graphql(ASSET_QUERY, {"path": [name]})
    [node] = data["assetNodes"]
    return node, data["assetOrError"]


def test_one_ingest_run_per_dropped_file_then_one_refresh_for_today(live_dagster, flowed_through):
    flow = flowed_through
    loaded = flow.successful("ingest_job")
    assert sorted(tags(r)["crm/path"] for r in loaded) == flow.files  # exactly one successful run per file
    refreshes = flow.successful("refresh_after_ingest")
    assert {tags(r)["dagster/partition"] for r in refreshes} == {flow.today}
    assert min(r["startTime"] for r in refreshes) >= max(r["endTime"] for r in loaded)  # after the burst drained
    # Runs never collide on the DuckDB file; a run that crashed all the same was retried by the daemon.
    retried = {tags(r).get("dagster/parent_run_id") for r in flow.runs}
    assert all(r["runId"] in retried for r in flow.failed()), flow.failed()
    print(f"live timings: {live_dagster.timings}; runs failed and retried: {len(flow.failed())}")


def test_the_warehouse_has_every_file_loaded_and_todays_audiences(live_dagster, flowed_through):
    with duckdb.connect(str(live_dagster.warehouse), read_only=True) as conn:
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall())
        contacts = conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
        members = dict(conn.execute(
            "SELECT audience, COUNT(*) FROM audience_members WHERE as_of = CAST(? AS DATE) GROUP BY audience",
            [flowed_through.today]).fetchall())
        sizes = dict(conn.execute("SELECT audience, size FROM audience_sizes WHERE as_of = CAST(? AS DATE)",
                                  [flowed_through.today]).fetchall())
    assert statuses == {"loaded": len(flowed_through.files)}
    assert contacts > 0
    # The contacts are people: records of different generated people are (almost) never merged.
    engine = sa.create_engine(f"duckdb:///{live_dagster.warehouse}", connect_args={"read_only": True})
    try:
        with engine.connect() as conn:
            scores = evaluate_identity(conn, live_dagster.landing.parent / "truth")
    finally:
        engine.dispose()
    assert scores.iloc[0]["precision"] >= 0.99, scores
    assert sum(members.values()) > 0 and members["customers_recent"] > 0
    assert {a: n for a, n in sizes.items() if n} == members  # the sizes table agrees with the members


def test_the_ui_shows_audience_metadata_checks_and_freshness(live_dagster, flowed_through):
    node, materialized = asset(live_dagster, "audience_members")
    assert node["groupName"] == "audiences" and node["description"] and node["kinds"]
    assert {"team": "data-engineering", "__typename": "TeamAssetOwner"} in node["owners"]
    [latest] = materialized["assetMaterializations"]
    assert latest["partition"] == flowed_through.today
    entries = {e["label"]: e for e in latest["metadataEntries"]}
    assert entries["dagster/row_count"]["intValue"] > 0
    assert "| customers_recent |" in entries["sizes"]["mdStr"]
    assert entries["sizes_last_90_days"]["mdStr"].startswith("![audience sizes](data:image/svg+xml;base64,")

    contacts, _ = asset(live_dagster, "contacts")
    checks = {c["name"]: c["executionForLatestMaterialization"]["status"]
              for c in contacts["assetChecksOrError"]["checks"]}
    assert checks == {"cluster_size_within_cap": "SUCCEEDED"}

    deadline = time.monotonic() + 60  # the freshness daemon runs every 5 s here
    while node["freshnessStatusInfo"]["freshnessStatus"] != "HEALTHY" and time.monotonic() < deadline:
        time.sleep(2)
        node, _ = asset(live_dagster, "audience_members")
    assert node["freshnessStatusInfo"]["freshnessStatus"] == "HEALTHY"  # refreshed well within 26 hours


def test_every_table_asset_shows_its_row_count_in_the_ui(live_dagster, flowed_through):
    nodes = live_dagster.graphql(ROW_COUNTS_QUERY)["assetNodes"]
    latest = {"/".join(n["assetKey"]["path"]): n["assetMaterializations"] for n in nodes}
    assert len(latest) >= 30 and all(latest.values()), [k for k, v in latest.items() if not v]  # all materialized
    without = {key for key, [m] in latest.items()
               if not any(e["label"] == "dagster/row_count" for e in m["metadataEntries"])}
    assert without <= {"dq_report", "model_runs"}, without  # a report and model fits, not tables of records


def test_sensors_and_schedule_run_by_default_and_the_daemons_are_healthy(live_dagster):
    data = live_dagster.graphql(AUTOMATION_QUERY)
    [entry] = data["workspaceOrError"]["locationEntries"]
    [repository] = entry["locationOrLoadError"]["repositories"]
    assert {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]} == {
        "landing_sensor": "RUNNING", "refresh_after_ingest_sensor": "RUNNING"}
    assert {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]} == {
        "daily_refresh_schedule": "RUNNING"}
    daemons = {d["daemonType"]: d["healthy"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]
               if d["required"]}
    for daemon in ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR", "FRESHNESS_DAEMON"):
        assert daemons.get(daemon), daemons


BACKFILL_MUTATION = """
mutation Backfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }
"""
LOCATION_QUERY = "query { workspaceOrError { ... on Workspace { locationEntries { name } } } }"


def test_a_backfill_launched_as_the_ui_does_refreshes_each_past_day(live_dagster, flowed_through):
    """The UI's "Launch backfill" on the daily_refresh job: the daemon runs one refresh per day."""
    [location] = live_dagster.graphql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
    today = date.fromisoformat(flowed_through.today)
    days = [(today - timedelta(days=n)).isoformat() for n in (2, 1)]
    launched = live_dagster.graphql(BACKFILL_MUTATION, {"params": {
        "selector": {"partitionSetName": "daily_refresh_partition_set",
                     "repositorySelector": {"repositoryLocationName": location["name"],
                                            "repositoryName": "__repository__"}},
        "partitionNames": days}})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + 300
    while True:
        runs = [r for r in live_dagster.runs() if tags(r).get("dagster/backfill") == launched["backfillId"]]
        done = {tags(r)["dagster/partition"] for r in runs if r["status"] == "SUCCESS"}
        if done == set(days):
            break
        hopeless = [r for r in runs if will_not_retry(r)]
        assert not hopeless, {r["runId"]: live_dagster.run_errors(r["runId"]) for r in hopeless}
        assert time.monotonic() < deadline, (runs, live_dagster.log_tail())
        time.sleep(2)
    with duckdb.connect(str(live_dagster.warehouse), read_only=True) as conn:
        computed = {str(d) for (d,) in conn.execute("SELECT DISTINCT as_of FROM audience_sizes").fetchall()}
    assert set(days) | {flowed_through.today} <= computed


def test_dagster_dev_stops_cleanly_on_ctrl_c(live_dagster):
    code = live_dagster.stop()
    assert code == 0 and not live_dagster.signals_unheeded, (code, live_dagster.signals_unheeded,
                                                             live_dagster.log_tail())
    assert not live_dagster.leftovers  # webserver, daemon, code server and run workers all ended
    print(f"live timings: {live_dagster.timings}")


STOP_WITHIN_SECONDS = 10


def signal_states(pids) -> str:
    """Each process's state and signal masks (pending, blocked, ignored, caught) as /proc shows them: when a
    process outlives a stop signal, they tell whether the signal is still pending, blocked or ignored there."""
    lines = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        keep = [line.replace("\t", " ") for line in status
                if line.startswith(("State", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"))]
        lines.append(f"{pid}: " + "; ".join(keep))
    return "\n".join(lines)


@pytest.mark.parametrize("how", ["SIGTERM to make, SIGINT ignored", "Ctrl-C"])
def test_make_ui_ends_within_ten_seconds_leaving_no_process(tmp_path, how):
    """`make ui` itself, on a temporary home and a free port: once it serves, SIGTERM to make (as `kill` or a
    service manager sends it, from a shell that started it in the background, so SIGINT is ignored) or SIGINT
    to its process group (Ctrl-C in a terminal). Every process of its tree, taken just before, ends within 10 s."""
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DAGSTER_", "MAKE"))}
    env["PYTHONUNBUFFERED"] = "1"
    live = LiveDagster(root=tmp_path, port=port, env=env, log_path=tmp_path / "make_ui.log",
                       # -o: never reinstall the venv from a test; the recipe is exactly the ui target's
                       command=["make", "--no-print-directory", "-o", ".venv/.installed", "ui",
                                f"CRM_HOME={tmp_path / 'crm'}", f"UI_PORT={port}"],
                       sigint_ignored=how.startswith("SIGTERM"))
    tree = []
    try:
        live.start()
        tree = process_tree(live.proc.pid)
        commands = " | ".join(p.command for p in tree)
        for part in ("crm_pipeline.dev_server", "dagster dev", "dagster_webserver", "dagster._daemon",
                     "code-server start"):
            assert part in commands, commands
        started = time.monotonic()
        if how.startswith("SIGTERM"):
            os.kill(live.proc.pid, signal.SIGTERM)
        else:
            os.killpg(live.proc.pid, signal.SIGINT)
        left = wait_for_end(tree, STOP_WITHIN_SECONDS)
        seconds = time.monotonic() - started
        assert not left, (f"alive {STOP_WITHIN_SECONDS} s after {how}: {left}\n"
                          f"{signal_states(p.pid for p in tree[:2])}\n{live.log_tail()}")
        assert live.proc.poll() is not None
        print(f"make ui ({len(tree)} processes) ended {seconds:.1f} s after {how}")
    finally:
        if live.proc is not None:  # whatever outlived the test, on a shared machine
            kill_all(tree or process_tree(live.proc.pid))
            live.proc.wait(timeout=10)
    log = live.log_path.read_text(encoding="utf-8", errors="replace")
    assert "in the current folder" not in log  # no stray dagster.yaml beside workspace.yaml
