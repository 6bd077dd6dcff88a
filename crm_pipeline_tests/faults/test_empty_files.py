"""Empty drops: a zero-byte file and a header-only file get a clear status and crash nothing."""

from __future__ import annotations

from crm_pipeline_tests.conftest import drop
from crm_pipeline_tests.faults.harness import (
    CUSTOMER_HEADER, STAGE, assert_accounting_balanced, assert_loaded_exactly_once, by_path, customers, manifest,
    run_assets, write_csv,
)


def test_empty_files_get_a_clear_status_and_a_later_full_version_loads_once(site, dagster_instance):
    write_csv(site.landing, "brand_a/customers/full.csv", CUSTOMER_HEADER, customers(3))
    write_csv(site.landing, "brand_a/customers/header_only.csv", CUSTOMER_HEADER, [])
    drop(site.landing, "brand_a/customers/zero.csv", b"")
    drop(site.landing, "brand_a/subscribers/zero.jsonl", b"")
    drop(site.landing, "brand_a/subscribers/blank.jsonl", "\n\n")

    assert run_assets(site, dagster_instance, STAGE).success

    assert_loaded_exactly_once(site, {"brand_a/customers/full.csv": 3, "brand_a/customers/header_only.csv": 0})
    reasons = {r["path"]: (r["status"], r["reason"]) for r in manifest(site)}
    for path in ("brand_a/customers/zero.csv", "brand_a/subscribers/zero.jsonl", "brand_a/subscribers/blank.jsonl"):
        assert reasons[path] == ("rejected", "empty file: no header row"), path
    balances = assert_accounting_balanced(site)
    assert {(b.file, b.rows_read) for b in balances["customers"]} == {
        ("brand_a/customers/full.csv", 3), ("brand_a/customers/header_only.csv", 0)}

    # The producer had only created the file; its content arrives later under the same name.
    write_csv(site.landing, "brand_a/customers/zero.csv", CUSTOMER_HEADER, customers(2, start=10))
    assert run_assets(site, dagster_instance, STAGE).success
    assert by_path(site)["brand_a/customers/zero.csv"] == ["rejected", "loaded"]
    assert_loaded_exactly_once(site, {"brand_a/customers/full.csv": 3, "brand_a/customers/header_only.csv": 0,
                                      "brand_a/customers/zero.csv": 2})
    assert_accounting_balanced(site)
    assert site.query("SELECT COUNT(*) FROM stg_customers") == [(5,)]
