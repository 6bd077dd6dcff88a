"""A landing folder of 50,000 files: the sensor pages through it with its cursor, each tick well inside
Dagster's 60 s sensor limit, and every file is requested exactly once."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from crm_pipeline.defs.resources import CrmSettingsResource, LandingResource
from crm_pipeline.defs import sensors
from crm_pipeline.defs.sensors import landing_sensor
from crm_pipeline_tests.conftest import drop
from crm_pipeline_tests.faults.harness import mounted_tmpfs

FILES = 50_000
DAGSTER_SENSOR_LIMIT_SECONDS = 60


def make_tiny_files(root, n: int) -> list[str]:
    """n distinct one-row files, finished an hour ago, written with bare os calls (the count is the point)."""
    folder = root / "brand_a" / "customers"
    folder.mkdir(parents=True)
    old = time.time() - 3600
    names = [f"{i:06d}.csv" for i in range(n)]
    directory = os.open(folder, os.O_RDONLY)
    try:
        for i, name in enumerate(names):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=directory)
            os.write(fd, b"customer_id\nC%d\n" % i)
            os.utime(fd, (old, old))
            os.close(fd)
    finally:
        os.close(directory)
    return [f"brand_a/customers/{name}" for name in names]


@pytest.fixture
def fast_landing(site):
    """The landing folder on a tmpfs when we may mount one (the disk only makes file creation slower)."""
    with mounted_tmpfs(site.landing, "300m"):
        yield site.landing


def sensor_resources(landing):
    return {"landing": LandingResource(root=str(landing)),
            "crm_settings": CrmSettingsResource(landing_dir=str(landing), home_dir=str(landing.parent))}


def test_fifty_thousand_files_are_paged_across_ticks_each_requested_once(site, fast_landing, dagster_instance):
    paths = make_tiny_files(fast_landing, FILES)
    resources = sensor_resources(fast_landing)
    requested: list[str] = []
    run_keys: set[str] = set()
    ticks, cursor, seconds = 0, None, []
    while True:
        started = time.monotonic()
        result = landing_sensor(dg.build_sensor_context(instance=dagster_instance, cursor=cursor,
                                                        resources=resources))
        seconds.append(time.monotonic() - started)
        ticks += 1
        cursor = result.cursor
        for request in result.run_requests:
            requested.extend(request.run_config["ops"]["ingest_files"]["config"]["paths"])
            run_keys.add(request.run_key)
        if not result.run_requests:
            break
        assert ticks <= FILES // 1000, "the cursor does not advance"
    print(f"{ticks} ticks, slowest {max(seconds):.2f} s, cursor {len(cursor) / 1e6:.1f} MB")
    assert max(seconds) < DAGSTER_SENSOR_LIMIT_SECONDS / 6, seconds
    assert ticks > 2  # it did page
    assert sorted(requested) == paths  # every file, each once
    assert len(run_keys) == FILES


def test_a_tick_that_runs_out_of_hashing_time_goes_on_where_it_stopped(site, dagster_instance, monkeypatch):
    paths = [f"brand_a/customers/{i}.csv" for i in range(4)]
    for i, path in enumerate(paths):
        drop(site.landing, path, f"customer_id\nC{i}\n")
    monkeypatch.setattr(sensors, "HASHING_BUDGET_SECONDS", 0.0)  # every tick hashes one file, then stops
    resources, cursor, per_tick = sensor_resources(site.landing), None, []
    for _ in range(6):
        result = landing_sensor(dg.build_sensor_context(instance=dagster_instance, cursor=cursor,
                                                        resources=resources))
        cursor = result.cursor
        per_tick.append([r.tags["crm/path"] for r in result.run_requests])
    assert per_tick == [[p] for p in paths] + [[], []]
