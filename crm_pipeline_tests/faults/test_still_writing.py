"""Files still being written: not read until complete, then loaded once, even when the producer
rewrites a file after its run was requested."""

from __future__ import annotations

import os

from crm_pipeline_tests.faults.harness import (
    CUSTOMER_HEADER, assert_loaded_exactly_once, by_path, customers, requested_paths, run_requested, sensor_tick,
)

GROWING = "brand_a/customers/growing.csv"
TEMP, FINAL = "brand_a/customers/batch.csv.part", "brand_a/customers/batch.csv"


def append(path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


def test_a_file_is_read_only_once_it_stopped_changing_and_then_loads_once(site, dagster_instance, monkeypatch):
    # Only "unchanged since the last tick" makes these files ready, however slow the machine is today.
    monkeypatch.setenv("CRM_SETTLE_SECONDS", "600")
    growing = site.landing / GROWING
    growing.parent.mkdir(parents=True)
    growing.write_text(CUSTOMER_HEADER + "\n")
    append(growing, customers(5))  # a producer is writing it right now (mtime: now)
    append(site.landing / TEMP, [CUSTOMER_HEADER, *customers(3, start=100)])  # written under a temp name

    result, cursor = sensor_tick(site, dagster_instance, None)
    assert result.run_requests == []
    append(growing, customers(5, start=6))  # still growing between ticks
    result, cursor = sensor_tick(site, dagster_instance, cursor)
    assert result.run_requests == []
    os.replace(site.landing / TEMP, site.landing / FINAL)  # the producer is done with the other file

    result, cursor = sensor_tick(site, dagster_instance, cursor)
    assert requested_paths(result) == [[GROWING]]  # unchanged since the last look; the renamed file is new
    requests = result.run_requests
    result, cursor = sensor_tick(site, dagster_instance, cursor)
    assert requested_paths(result) == [[FINAL]]
    requests += result.run_requests

    # The producer rewrites one of them after its run was requested, before the run starts.
    append(growing, customers(2, start=11))
    for request in requests:
        assert run_requested(site, dagster_instance, request).success
    assert_loaded_exactly_once(site, {GROWING: 12, FINAL: 3})  # the run read the file as it was then

    # The rewrite is seen as new content, requested, and its run finds it already loaded.
    result, cursor = sensor_tick(site, dagster_instance, cursor)
    assert result.run_requests == []  # changed since the last look: it waits one more tick
    result, cursor = sensor_tick(site, dagster_instance, cursor)
    assert requested_paths(result) == [[GROWING]]
    assert run_requested(site, dagster_instance, result.run_requests[0]).success
    assert by_path(site) == {GROWING: ["loaded"], FINAL: ["loaded"]}
    assert_loaded_exactly_once(site, {GROWING: 12, FINAL: 3})
    assert sensor_tick(site, dagster_instance, cursor)[0].run_requests == []
