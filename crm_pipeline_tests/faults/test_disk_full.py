"""The warehouse's disk fills up while a file loads: a clear error, nothing half-written, and a retry
after space is freed loads the file once.

The DuckDB file lives on a real, small tmpfs (mounting one needs root), filled up with a filler file."""

from __future__ import annotations

import os

import pytest

from crm_pipeline_tests.faults.harness import (
    CUSTOMER_HEADER, INGEST, assert_loaded_exactly_once, by_path, customers, failed_step_messages, mounted_tmpfs,
    run_assets, write_csv,
)

SMALL, BIG = "brand_a/customers/1_small.csv", "brand_a/customers/2_big.csv"
BIG_ROWS = 40_000  # a few MB of rows, far more than the space left


@pytest.fixture
def full_disk(site, dagster_instance):
    """A warehouse holding one small file, on a file system with 256 KB left; yields the filler file."""
    with mounted_tmpfs(site.warehouse_file.parent, "16m") as mounted:
        if not mounted:
            pytest.skip("mounting a small tmpfs for the warehouse needs root (CI runs as root)")
        write_csv(site.landing, SMALL, CUSTOMER_HEADER, customers(5))
        assert run_assets(site, dagster_instance, INGEST).success
        write_csv(site.landing, BIG, CUSTOMER_HEADER, customers(BIG_ROWS, start=100))
        stat = os.statvfs(site.warehouse_file.parent)
        filler = site.warehouse_file.parent / "filler"
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 256 * 1024))
        yield filler


def test_disk_full_keeps_nothing_of_the_file_and_a_retry_loads_it_once(site, dagster_instance, full_disk):
    result = run_assets(site, dagster_instance, INGEST)

    assert not result.success
    assert any("No space left on device" in m for m in failed_step_messages(result))
    assert by_path(site) == {SMALL: ["loaded"]}  # no manifest row for the failed file
    assert site.query("SELECT COUNT(*) FROM raw_customers") == [(5,)]  # and none of its rows

    full_disk.unlink()  # space freed
    assert run_assets(site, dagster_instance, INGEST).success
    assert by_path(site) == {SMALL: ["loaded"], BIG: ["loaded"]}
    assert_loaded_exactly_once(site, {SMALL: 5, BIG: BIG_ROWS})


def test_disk_full_error_names_the_file_being_loaded_and_the_cause(site, dagster_instance, full_disk):
    messages = failed_step_messages(run_assets(site, dagster_instance, INGEST))
    assert any(BIG in m and "No space left on device" in m for m in messages), messages
