"""A source changes its export: an extra column, a dropped optional column, a dropped required column."""

from __future__ import annotations

import json

from crm_pipeline_tests.faults.harness import (
    CUSTOMER_HEADER, STAGE, assert_accounting_balanced, assert_loaded_exactly_once, by_path, customers, manifest,
    run_assets, this_run_markdown, write_csv,
)


def test_drifted_files_load_or_are_rejected_by_name_and_every_row_is_accounted_for(site, dagster_instance):
    write_csv(site.landing, "brand_a/customers/1_base.csv", CUSTOMER_HEADER, customers(3, start=1))
    write_csv(site.landing, "brand_a/customers/2_extra.csv", CUSTOMER_HEADER + ",loyalty_tier",
              [row + f",tier{i}" for i, row in enumerate(customers(3, start=4))])
    write_csv(site.landing, "brand_a/customers/3_no_country.csv", "customer_id,email,first_name",
              [f"C{i},person{i}@example.com,Ann{i}" for i in range(7, 10)])
    write_csv(site.landing, "brand_a/orders/4_no_ordered_at.csv", "order_id,customer_id,total",
              ["O1,C1,10.00", "O2,C2,12.00"])

    result = run_assets(site, dagster_instance, STAGE)

    assert result.success
    assert_loaded_exactly_once(site, {"brand_a/customers/1_base.csv": 3, "brand_a/customers/2_extra.csv": 3,
                                      "brand_a/customers/3_no_country.csv": 3})
    assert_accounting_balanced(site)
    assert site.query("SELECT COUNT(*), COUNT(DISTINCT customer_id) FROM stg_customers") == [(9, 9)]
    # The extra column is kept with its values and reported.
    extras = site.query("SELECT customer_id, _extra FROM raw_customers r JOIN files f ON f.file_id = r._file_id "
                        "WHERE f.path = 'brand_a/customers/2_extra.csv' ORDER BY customer_id")
    assert [(c, json.loads(e)) for c, e in extras] == [(f"C{4 + i}", {"loyalty_tier": f"tier{i}"}) for i in range(3)]
    [extra_row] = [r for r in manifest(site) if r["path"] == "brand_a/customers/2_extra.csv"]
    assert json.loads(extra_row["extra_columns"]) == ["loyalty_tier"] and "loyalty_tier" in extra_row["reason"]
    # The missing optional column is empty, not a reason to refuse the file.
    assert site.query("SELECT COUNT(*) FROM stg_customers WHERE customer_id IN ('C7', 'C8', 'C9') "
                      "AND country IS NULL AND email IS NOT NULL") == [(3,)]
    # The missing required column rejects the file, naming it and the column, and loads none of it.
    assert by_path(site)["brand_a/orders/4_no_ordered_at.csv"] == ["rejected"]
    [rejected] = [r for r in manifest(site) if r["status"] == "rejected"]
    assert "missing required column(s) ordered_at" in rejected["reason"]
    assert site.query("SELECT COUNT(*) FROM raw_orders") == [(0,)]
    report = this_run_markdown(result)
    assert "| brand_a/orders/4_no_ordered_at.csv | orders | rejected | 0 | missing required column(s) ordered_at" \
        in report
    assert "| brand_a/customers/2_extra.csv | customers | loaded | 3 | extra column(s) kept in _extra: loyalty_tier" \
        in report
