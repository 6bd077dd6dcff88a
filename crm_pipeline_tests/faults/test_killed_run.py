"""A run worker killed (SIGKILL) while it loads files, then the run retried: each file loads exactly once
and no file is half-written (a file's rows and its manifest row commit together)."""

from __future__ import annotations

import signal

from crm_pipeline_tests.faults.harness import (
    CUSTOMER_HEADER, INGEST, STAGE, assert_accounting_balanced, assert_loaded_exactly_once, by_path, customers,
    run_assets, start_ingest_worker, write_csv,
)

ROWS = 1_000
FILES = [f"brand_a/customers/{n}.csv" for n in ("1_first", "2_second", "3_third")]


def test_a_run_killed_inside_a_files_transaction_and_retried_loads_every_file_once(site, dagster_instance):
    for i, path in enumerate(FILES):
        write_csv(site.landing, path, CUSTOMER_HEADER, customers(ROWS, start=1 + i * ROWS))
    # Killed after the second file's raw rows and manifest row were written, before they commit.
    worker = start_ingest_worker(site, CRM_FAULT_KILL_AT_MANIFEST=FILES[1])
    _, err = worker.communicate(timeout=180)
    assert worker.returncode == -signal.SIGKILL, err[-2000:]

    # The first file committed; the second left no trace, not even some of its rows; the third never started.
    assert by_path(site) == {FILES[0]: ["loaded"]}
    assert_loaded_exactly_once(site, {FILES[0]: ROWS})
    assert site.query("SELECT COUNT(*) FROM raw_customers") == [(ROWS,)]

    assert run_assets(site, dagster_instance, INGEST).success  # the retry
    assert by_path(site) == {path: ["loaded"] for path in FILES}
    assert_loaded_exactly_once(site, {path: ROWS for path in FILES})
    assert site.query("SELECT COUNT(*), COUNT(DISTINCT customer_id) FROM raw_customers") == [(3 * ROWS, 3 * ROWS)]
    assert run_assets(site, dagster_instance, STAGE).success
    assert_accounting_balanced(site)
