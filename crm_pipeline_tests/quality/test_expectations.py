"""The GX suites: what a data engineer reading the quality results relies on."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pandas as pd
import pytest

from crm_pipeline.contract import ENTITIES
from crm_pipeline.quality.expectations import (
    RESULT_COLUMNS,
    build_data_docs,
    build_suite,
    run_validation,
    validate_frame,
)
from crm_pipeline.quality.summary import summarize_markdown

AS_OF = dt.date(2024, 6, 30)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def staged_orders() -> pd.DataFrame:
    """Four clean staged orders of one brand, one a guest checkout (email only)."""
    n = 4
    return pd.DataFrame({
        "order_id": ["O1", "O2", "O3", "O4"],
        "customer_id": ["C1", "C2", None, "C1"],
        "email": ["ann@example.com", None, "guest@example.org", "ann@example.com"],
        "ordered_at": [
            utc("2024-01-05 10:00"), utc("2024-03-01 12:30"), utc("2024-06-30 23:59"), utc("2023-12-24 08:00"),
        ],
        "status": ["placed", "shipped", "delivered", "refunded"],
        "currency": ["USD"] * n,
        "subtotal": [100.0, 20.0, 35.5, 0.0],
        "discount_total": [10.0, 0.0, 0.0, 0.0],
        "shipping_total": [4.99, 0.0, 4.99, 0.0],
        "tax_total": [8.0, 1.6, 2.84, 0.0],
        "total": [102.99, 21.6, 43.33, 0.0],
        "shipping_country": ["US", "GB", "DE", "US"],
        "channel": ["web", "store", "app", "marketplace"],
        "phone": ["+15551234567", None, "+4915112345678", "+15551234567"],
        "updated_at": [utc("2024-01-06"), utc("2024-03-02"), utc("2024-06-30 23:59:59"), utc("2024-01-02")],
        "_file_id": [1, 1, 1, 2],
        "_row_number": [2, 3, 4, 2],
        "_brand": ["acme"] * n,
        "_customer_known": [True, True, True, True],
    })


def staged_order_items() -> pd.DataFrame:
    return pd.DataFrame({
        "order_id": ["O1", "O1", "O2", "O9"],
        "line_number": pd.array([1, 2, 1, 1], dtype="Int64"),
        "sku": ["SKU-1", "SKU-2", "SKU-1", "SKU-3"],
        "quantity": pd.array([1, 2, -1, 1], dtype="Int64"),
        "unit_price": [50.0, 25.0, 20.0, 9.99],
        "discount": [0.0, 0.0, None, 0.0],
        "_file_id": [3, 3, 3, 3],
        "_row_number": [2, 3, 4, 5],
        "_brand": ["acme"] * 4,
        "_order_known": [True, True, True, True],
        "_product_known": [True, True, True, True],
    })


def check(results: pd.DataFrame, expectation: str) -> pd.Series:
    rows = results[results["expectation"] == expectation]
    assert len(rows) == 1, f"{expectation!r} not among {list(results['expectation'])}"
    return rows.iloc[0]


def failures(results: pd.DataFrame) -> list[str]:
    return list(results.loc[~results["success"], "expectation"])


def test_clean_orders_pass_every_expectation():
    results = validate_frame("orders", staged_orders(), as_of=AS_OF, file_label="orders.csv")
    assert list(results.columns) == list(RESULT_COLUMNS)
    assert len(results) >= 15
    assert failures(results) == []
    assert (results["unexpected_count"] == 0).all()
    assert set(results["file"]) == {"orders.csv"} and set(results["suite"]) == {"orders"}


def test_duplicated_key_within_a_brand_fails_uniqueness_for_both_rows():
    df = staged_orders()
    df.loc[3, "order_id"] = "O1"
    row = check(validate_frame("orders", df, as_of=AS_OF, file_label="f"),
                "expect_compound_columns_to_be_unique(_brand, order_id)")
    assert not row["success"]
    assert row["unexpected_count"] == 2  # GX counts every row of a repeated key
    assert {r["_row_number"] for r in json.loads(row["sample_rows"])} == {2}
    assert {r["_file_id"] for r in json.loads(row["sample_rows"])} == {1, 2}


def test_the_same_key_in_two_brands_is_not_a_duplicate():
    df = staged_orders()
    df.loc[3, ["order_id", "_brand"]] = ["O1", "other_brand"]
    row = check(validate_frame("orders", df, as_of=AS_OF, file_label="f"),
                "expect_compound_columns_to_be_unique(_brand, order_id)")
    assert row["success"]


def test_null_required_column_fails_with_its_count():
    df = staged_orders()
    df.loc[[0, 2], "total"] = None
    results = validate_frame("orders", df, as_of=AS_OF, file_label="f")
    row = check(results, "expect_column_values_to_not_be_null(total)")
    assert not row["success"]
    assert row["unexpected_count"] == 2
    assert row["unexpected_percent"] == pytest.approx(50.0)
    assert failures(results) == ["expect_column_values_to_not_be_null(total)"]


def test_order_without_customer_id_or_email_fails_one_of():
    df = staged_orders()
    df.loc[2, "email"] = None  # the guest checkout loses its only identity
    row = check(validate_frame("orders", df, as_of=AS_OF, file_label="f"),
                "expect_column_values_to_not_be_null(email) where customer_id IS NULL")
    assert not row["success"]
    assert row["unexpected_count"] == 1
    assert row["evaluated_rows"] == 1  # only rows without a customer_id are checked


def test_status_outside_allowed_set_fails_and_is_sampled():
    df = staged_orders()
    df.loc[1, "status"] = "lost_in_transit"
    row = check(validate_frame("orders", df, as_of=AS_OF, file_label="f"),
                "expect_column_values_to_be_in_set(status)")
    assert not row["success"]
    assert row["unexpected_count"] == 1
    assert json.loads(row["sample_values"]) == ["lost_in_transit"]
    assert json.loads(row["sample_rows"]) == [
        {"_file_id": 1, "_row_number": 3, "order_id": "O2", "customer_id": "C2"}
    ]


def test_timestamp_after_the_as_of_day_fails_but_the_last_second_passes():
    df = staged_orders()
    df.loc[0, "ordered_at"] = utc("2024-07-01 00:00")  # first instant after the as-of day
    results = validate_frame("orders", df, as_of=AS_OF, file_label="f")
    row = check(results, "expect_column_values_to_be_between(ordered_at)")
    assert not row["success"]
    assert row["unexpected_count"] == 1  # 2024-06-30 23:59 in row O3 is still fine
    assert json.loads(row["sample_values"]) == ["2024-07-01T00:00:00+00:00"]
    # the same frame validated a day later is clean
    later = validate_frame("orders", df, as_of=AS_OF + dt.timedelta(days=1), file_label="f")
    assert failures(later) == []


def test_unknown_order_fails_referential_integrity_and_names_the_order():
    df = staged_order_items()
    df.loc[3, "_order_known"] = False
    results = validate_frame("order_items", df, as_of=AS_OF, file_label="items.csv")
    row = check(results, "expect_column_values_to_be_in_set(_order_known)")
    assert not row["success"]
    assert row["unexpected_count"] == 1
    assert json.loads(row["sample_values"]) == ["O9"]
    assert failures(results) == ["expect_column_values_to_be_in_set(_order_known)"]


def test_order_lines_ranges_allow_returns_but_not_zero_quantities_or_line_zero():
    df = staged_order_items()
    assert failures(validate_frame("order_items", df, as_of=AS_OF, file_label="f")) == []  # -1 is a return
    df.loc[0, "quantity"] = 0
    df.loc[1, "line_number"] = 0
    df.loc[2, "unit_price"] = -5.0
    assert failures(validate_frame("order_items", df, as_of=AS_OF, file_label="f")) == [
        "expect_column_values_to_be_between(line_number)",
        "expect_column_values_to_not_be_in_set(quantity)",
        "expect_column_values_to_be_between(unit_price)",
    ]


def test_a_missing_contract_column_is_reported_by_name():
    results = validate_frame("orders", staged_orders().drop(columns=["channel"]), as_of=AS_OF, file_label="f")
    row = check(results, "expect_table_columns_to_match_set()")
    assert not row["success"]
    assert json.loads(row["sample_values"]) == ["channel"]


def test_data_docs_index_is_written_and_lists_each_suite(tmp_path):
    bad = staged_order_items()
    bad.loc[0, "_order_known"] = False
    runs = [
        run_validation("orders", staged_orders(), as_of=AS_OF, file_label="acme/orders/2024-06-30.csv"),
        run_validation("order_items", bad, as_of=AS_OF, file_label="acme/order_items/2024-06-30.csv"),
    ]
    index = build_data_docs(runs, tmp_path / "data_docs")
    assert index == (tmp_path / "data_docs" / "index.html").resolve()
    html = index.read_text()
    assert "orders" in html and "order_items" in html
    assert (tmp_path / "data_docs" / "expectations" / "order_items.html").exists()
    # a later build for one entity keeps the other entity's results listed, and their pages (rendered once)
    pages = {p: p.stat().st_mtime_ns for p in (tmp_path / "data_docs" / "validations" / "order_items").rglob("*.html")}
    assert len(pages) == 1
    again = run_validation("orders", staged_orders(), as_of=AS_OF, file_label="again")
    build_data_docs([again], tmp_path / "data_docs")
    assert "order_items" in index.read_text()
    assert "again" in index.read_text()
    assert {p: p.stat().st_mtime_ns for p in pages} == pages  # not rendered again
    assert set((tmp_path / "data_docs" / "validations" / "order_items").rglob("*.html")) == set(pages)
    assert len(list((tmp_path / "data_docs" / "validations" / "orders").rglob("*.html"))) == 2


def test_great_expectations_is_imported_without_pyspark_but_leaves_it_importable():
    # The probe is skipped for speed; a later `import pyspark` (the Spark engine) must still find it.
    assert sys.modules.get("pyspark", "not imported") is not None


def test_great_expectations_leaves_modules_the_suites_never_use_unloaded_until_someone_uses_them():
    # A small drop pays GX's import: scipy.stats and altair (expectations these suites lack) wait for a real use,
    # and a later user (predictions, a chart) still gets the real modules.
    script = (
        "import sys\n"
        "import crm_pipeline.quality.expectations\n"
        "from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl\n"
        "assert 'scipy.stats' not in sys.modules and 'altair' not in sys.modules\n"
        "from scipy import stats\n"
        "import altair.vegalite.v6\n"
        "assert kl.stats.entropy is stats.entropy and kl.alt.Chart is altair.vegalite.v6.Chart\n"
        "assert abs(stats.entropy([0.5, 0.5]) - 0.6931471805599453) < 1e-12\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_summary_markdown_marks_failures():
    df = staged_orders()
    df.loc[1, "status"] = "lost"
    text = summarize_markdown(validate_frame("orders", df, as_of=AS_OF, file_label="f"))
    lines = text.splitlines()
    assert lines[0].startswith("| expectation |")
    assert "| expect_column_values_to_be_in_set(status) | ✗ | 1 | 25.00 |" in lines
    assert "| expect_column_values_to_not_be_null(order_id) | ✓ | 0 | 0.00 |" in lines


def test_every_entity_has_a_suite_built_from_its_contract():
    for name, entity in ENTITIES.items():
        suite = build_suite(entity, as_of=AS_OF)
        assert suite.name == name
        configs = [e.configuration for e in suite.expectations]
        not_null = {c.kwargs["column"] for c in configs
                    if c.type == "expect_column_values_to_not_be_null" and not c.kwargs.get("row_condition")}
        assert not_null == set(entity.required_columns)
        unique = [c.kwargs["column_list"] for c in configs if c.type == "expect_compound_columns_to_be_unique"]
        assert unique == [["_brand", *entity.key]]
        allowed = {c.kwargs["column"] for c in configs if c.type == "expect_column_values_to_be_in_set"}
        assert {c.name for c in entity.columns if c.allowed} <= allowed
        assert all(e.notes for e in suite.expectations), f"{name}: every expectation says why"


def test_one_run_over_several_files_gives_each_file_the_results_of_its_own_run():
    """Batch validation split per file must equal validating each file alone (counts, verdicts, samples)."""
    from crm_pipeline.quality.expectations import run_validation_by_file

    first, second = staged_orders(), staged_orders()
    first["_file_id"], second["_file_id"] = 1, 2
    second["order_id"] = ["O5", "O6", "O7", "O5"]  # a repeated key within the second file
    second.loc[0, "phone"] = "0151 1234 5678"  # kept raw: 1 of the file's 3 phones, past `mostly`
    second.loc[1, ["customer_id", "email"]] = None  # neither customer_id nor email
    second.loc[2, "_customer_known"] = False
    first.loc[3, "status"] = "lost"
    frame = pd.concat([first, second], ignore_index=True)
    files = {1: "acme/orders/1.csv", 2: "acme/orders/2.csv", 3: "acme/orders/empty.csv"}
    runs = run_validation_by_file("orders", frame, as_of=AS_OF, files=files, label="acme/orders/1.csv (+2 files)")
    together = pd.concat([r.results for r in runs], ignore_index=True).sort_values(["file_id", "expectation"])
    alone = pd.concat([
        run_validation("orders", frame[frame["_file_id"] == f], as_of=AS_OF, file_label=path).results.assign(file_id=f)
        for f, path in files.items()
    ], ignore_index=True).sort_values(["file_id", "expectation"])
    columns = ["file_id", *RESULT_COLUMNS]
    pd.testing.assert_frame_equal(together[columns].reset_index(drop=True), alone[columns].reset_index(drop=True))
    assert len(runs) == 2 and runs[0].file_label.endswith("(+2 files)")  # one batch run, one for the empty file
    assert failures(together[together["file_id"] == 1]) == ["expect_column_values_to_be_in_set(status)"]
    assert len(failures(together[together["file_id"] == 2])) == 4  # key, one_of, phone format, customer known


def test_results_do_not_depend_on_how_the_warehouse_chunked_the_batch():
    """A batch read from the warehouse holds its text in several Arrow chunks: same verdicts, counts and
    sample rows as the same rows in one chunk (samples are picked by position across the chunks)."""
    import numpy as np
    import pyarrow as pa

    from crm_pipeline.quality.expectations import run_validation_by_file

    first, second = staged_orders(), staged_orders()
    first["_file_id"], second["_file_id"] = 1, 2
    second["order_id"] = ["O5", "O6", "O7", "O8"]
    first.loc[3, "status"] = "lost"
    second.loc[2, "status"] = "stolen"  # in the second chunk
    whole = pd.concat([first, second], ignore_index=True)
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    table = pa.Table.from_pandas(whole, preserve_index=False)
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=3)).to_pandas(
        types_mapper={pa.string(): text, pa.large_string(): text}.get)
    assert pa.array(chunked["status"].array).num_chunks > 1  # the case under test
    files = {1: "acme/orders/1.csv", 2: "acme/orders/2.csv"}
    results = [pd.concat([r.results for r in run_validation_by_file("orders", frame, as_of=AS_OF, files=files,
                                                                    label="batch")], ignore_index=True)
               for frame in (whole, chunked)]
    pd.testing.assert_frame_equal(results[0], results[1])
    status = results[1][results[1]["expectation"] == "expect_column_values_to_be_in_set(status)"]
    assert [json.loads(v) for v in status["sample_values"]] == [["lost"], ["stolen"]]
    assert json.loads(status["sample_rows"].iloc[1]) == [
        {"_file_id": 2, "_row_number": 4, "order_id": "O7", "customer_id": None}
    ]


def test_results_do_not_depend_on_the_order_the_warehouse_returned_the_rows_in():
    """Staged rows are read in no particular order: each file's sample rows are still its first failing rows
    by row number, and every count and verdict is that of the rows in file and row order."""
    from crm_pipeline.quality.expectations import run_validation_by_file

    files = {1: "acme/orders/1.csv", 2: "acme/orders/2.csv"}
    parts = []
    for file_id in files:
        for start in range(0, 8, 4):  # 8 rows per file, 7 of them with an unknown status: more than 5 samples
            part = staged_orders()
            part["_file_id"], part["_row_number"] = file_id, range(start + 2, start + 6)
            part["order_id"] = [f"O{file_id}-{start + i}" for i in range(4)]
            parts.append(part)
    ordered = pd.concat(parts, ignore_index=True)
    ordered.loc[ordered.index[1:8], "status"] = [f"lost{i}" for i in range(7)]
    ordered.loc[ordered.index[9:16], "status"] = [f"gone{i}" for i in range(7)]
    shuffled = ordered.sample(frac=1, random_state=3).reset_index(drop=True)
    assert not shuffled["_row_number"].is_monotonic_increasing  # the case under test
    results = [pd.concat([r.results for r in run_validation_by_file("orders", frame, as_of=AS_OF, files=files,
                                                                    label="batch")], ignore_index=True)
               for frame in (ordered, shuffled)]
    pd.testing.assert_frame_equal(results[0], results[1])
    status = results[1][results[1]["expectation"] == "expect_column_values_to_be_in_set(status)"]
    assert [json.loads(v) for v in status["sample_values"]] == [[f"lost{i}" for i in range(5)],
                                                                [f"gone{i}" for i in range(5)]]
    assert [r["_row_number"] for r in json.loads(status["sample_rows"].iloc[0])] == [3, 4, 5, 6, 7]


def test_a_validated_batch_is_not_kept_alive_once_its_results_are_returned():
    """The process that validates a million staged rows goes on to identity and scoring: GX must not hold the
    batch (its execution engine caches the last batch of each asset for as long as the context lives)."""
    import gc

    from crm_pipeline.quality.expectations import run_validation_by_file

    run_validation("orders", staged_orders(), as_of=AS_OF, file_label="orders.csv")
    runs = run_validation_by_file("orders", staged_orders(), as_of=AS_OF, files={1: "a.csv", 2: "b.csv"}, label="x")
    assert runs and all(len(r.results) for r in runs)
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, pd.DataFrame) and "_customer_known" in o.columns]
    assert alive == []
