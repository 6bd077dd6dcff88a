"""The daemon killed mid-tick and restarted, and the sensor's cursor lost: exactly one run per file content.

The daemon here is Dagster's own sensor tick code on a real instance whose runs execute as they are
submitted; the first daemon process SIGKILLs itself after launching the first of a tick's runs, before
the tick (and its cursor) is saved.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType
from dagster._utils import get_terminate_signal

from crm_pipeline_tests.faults import daemon
from crm_pipeline_tests.faults.harness import (
    CUSTOMER_HEADER, Site, assert_loaded_exactly_once, by_path, customers, manifest, write_csv,
)

DEFS = '''"""The ingest job and landing sensor of crm_pipeline, on one test site."""
import dagster as dg
from crm_pipeline.defs.ingest_assets import ingest_files, ingest_job
from crm_pipeline.defs.resources import default_resources
from crm_pipeline.defs.sensors import landing_sensor
from crm_pipeline.settings import Settings

defs = dg.Definitions(assets=[ingest_files], jobs=[ingest_job], sensors=[landing_sensor],
                      executor=dg.in_process_executor,  # runs execute inside the daemon: no step processes
                      resources=default_resources(Settings(home_dir={home!r}, landing_dir={landing!r},
                                                           warehouse_url={url!r})))
'''


@pytest.fixture
def daemon_site(tmp_path):
    """A site whose instance executes each run as soon as the sensor daemon submits it."""
    with dg.instance_for_test(temp_dir=str(tmp_path), synchronous_run_coordinator=True,
                              synchronous_run_launcher=True) as instance:
        site = Site(tmp_path)
        site.landing.mkdir()
        defs_file = tmp_path / "faults_defs.py"
        defs_file.write_text(DEFS.format(home=str(tmp_path / "home"), landing=str(site.landing), url=site.url))
        yield site, instance, str(defs_file)


def ingest_runs(instance) -> list[dg.DagsterRun]:
    return instance.get_runs(filters=dg.RunsFilter(job_name="ingest_job"))


def sensor_state(instance):
    [state] = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return state


def test_daemon_killed_mid_tick_restarted_and_cursor_lost_gives_one_run_per_file(daemon_site):
    site, instance, defs_file = daemon_site
    paths = [f"brand_a/customers/{i}.csv" for i in range(3)]
    for i, path in enumerate(paths):
        write_csv(site.landing, path, CUSTOMER_HEADER, customers(2, start=10 * i))
    t0 = time.time()

    killed = subprocess.run([sys.executable, "-m", "crm_pipeline_tests.faults.daemon", defs_file, str(t0),
                             "RUN_LAUNCHED"], env=site.env(), cwd=Path(daemon.__file__).parents[2],
                            capture_output=True, text=True, timeout=180)
    assert killed.returncode == -int(get_terminate_signal()), killed.stderr[-2000:] + killed.stdout[-3000:]
    assert len(ingest_runs(instance)) == 1  # one run launched (and done), then the daemon died
    assert by_path(site) == {paths[0]: ["loaded"]}

    daemon.tick(instance, defs_file, t0 + 60)  # restarted: finishes the interrupted tick
    daemon.tick(instance, defs_file, t0 + 120)  # and ticks on: nothing new
    assert len(ingest_runs(instance)) == 3

    # The cursor is lost (reset in the UI, or storage restored), and meanwhile one more file landed.
    state = sensor_state(instance)
    assert state.instigator_data.cursor  # what the restarted daemon saved
    instance.update_instigator_state(state.with_data(state.instigator_data._replace(cursor=None)))
    write_csv(site.landing, "brand_a/customers/3.csv", CUSTOMER_HEADER, customers(2, start=30))
    paths.append("brand_a/customers/3.csv")
    daemon.tick(instance, defs_file, t0 + 180)
    daemon.tick(instance, defs_file, t0 + 240)

    runs = ingest_runs(instance)
    shas = {row["path"]: row["sha256"] for row in manifest(site)}
    assert Counter(run.tags["dagster/run_key"] for run in runs) == Counter(shas[p] for p in paths)
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert by_path(site) == {path: ["loaded"] for path in paths}
    assert_loaded_exactly_once(site, {path: 2 for path in paths})

