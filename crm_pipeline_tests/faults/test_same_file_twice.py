"""The same file dropped twice at once (two names, same bytes), and two ingest runs racing for one file."""

from __future__ import annotations

import json

from crm_pipeline_tests.faults.harness import (
    CUSTOMER_HEADER, assert_loaded_exactly_once, by_path, customers, manifest, requested_paths, run_requested,
    sensor_tick, start_ingest_worker, write_csv,
)

ROWS = 100_000  # enough that one run still holds the warehouse when the other starts
A, COPY = "brand_a/customers/export.csv", "brand_a/customers/export_copy.csv"


def test_two_names_with_the_same_bytes_in_one_tick_load_once_and_the_copy_is_recorded(site, dagster_instance):
    write_csv(site.landing, A, CUSTOMER_HEADER, customers(4))
    write_csv(site.landing, COPY, CUSTOMER_HEADER, customers(4))

    result, cursor = sensor_tick(site, dagster_instance, None)

    assert requested_paths(result) == [[A, COPY]]  # one run for the content, carrying both names
    for request in result.run_requests:
        assert run_requested(site, dagster_instance, request).success
    assert by_path(site) == {A: ["loaded"], COPY: ["duplicate"]}
    [original, copy] = manifest(site)
    assert copy["duplicate_of"] == original["file_id"] and A in copy["reason"]
    assert_loaded_exactly_once(site, {A: 4})
    again, _ = sensor_tick(site, dagster_instance, cursor)
    assert again.run_requests == []


def test_two_ingest_runs_racing_for_one_file_load_it_once(site, dagster_instance):
    write_csv(site.landing, A, CUSTOMER_HEADER, customers(ROWS))
    workers = [start_ingest_worker(site, [A], wait=True) for _ in range(2)]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:  # both runs start now
        worker.stdin.write("go\n")
        worker.stdin.flush()
    finished = [w.communicate(timeout=120) for w in workers]

    outcomes = [json.loads(out.strip().splitlines()[-1]) for out, _ in finished]
    # The DuckDB file admits one writer: the loser meets the lock (a transient error, retried after a
    # pause) and then finds the file already loaded. Neither run may fail, and the file must not load twice.
    assert [o["success"] for o in outcomes] == [True, True], [err[-2000:] for _, err in finished]
    assert sum(o["retries"] for o in outcomes) >= 1, "the two runs did not overlap: no race was tested"
    assert by_path(site) == {A: ["loaded"]}
    assert_loaded_exactly_once(site, {A: ROWS})
