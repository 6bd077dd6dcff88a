"""`crm-pipeline generate` then `crm-pipeline run`, as a user runs them, checked against the truth."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.identity.evaluate import evaluate_identity
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.cli_process import cli

END = "2025-06-30"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster"), "CRM_HOME_DIR": str(root / "home")}
    generated = cli("generate", "--people", "400", "--brands", "3", "--days", "365", "--seed", "11",
                    "--end-date", END, "--out", str(root / "data"), env=env)
    assert generated.returncode == 0, generated.stderr
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    ran = cli("run", "--landing", str(root / "data" / "landing"), "--as-of", END, "--warehouse", url, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    engine = make_engine(url)
    yield root, engine, ran.stdout
    engine.dispose()


def test_every_landed_file_is_in_the_manifest_and_loaded(demo):
    root, engine, _ = demo
    truth_files = pd.read_csv(root / "data" / "truth" / "files.csv")
    with engine.connect() as conn:
        manifest = pd.read_sql(sa.text("SELECT path, status, rows_loaded FROM files"), conn)
    assert sorted(manifest["path"]) == sorted(truth_files["file"])
    assert set(manifest["status"]) == {"loaded"}
    merged = manifest.merge(truth_files, left_on="path", right_on="file")
    assert (merged["rows_loaded"] == merged["rows"]).all()


def test_raw_row_counts_match_the_truth_per_entity(demo):
    root, engine, _ = demo
    truth = pd.read_csv(root / "data" / "truth" / "records.csv", dtype=str)
    with engine.connect() as conn:
        for entity, expected in truth.groupby("entity").size().items():
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM raw_{entity}")).scalar_one() == expected, entity


def test_every_planted_bad_row_is_quarantined_with_its_rule_and_no_other(demo):
    root, engine, _ = demo
    bad = pd.read_csv(root / "data" / "truth" / "bad_rows.csv")
    with engine.connect() as conn:
        # lines held back with their quarantined order (order_quarantined) follow a planted row, are not one
        quarantined = pd.read_sql(sa.text("SELECT file, row_number, rule FROM quarantine "
                                          "WHERE rule <> 'order_quarantined'"), conn)
    assert len(bad) > 0
    pairs = bad.rename(columns={"reason": "rule"}).sort_values(["file", "row_number"]).reset_index(drop=True)
    found = quarantined.sort_values(["file", "row_number"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(found[["file", "row_number", "rule"]], pairs[["file", "row_number", "rule"]])


def test_identity_meets_its_targets_on_profile_records(demo):
    root, engine, _ = demo
    with engine.connect() as conn:
        scores = evaluate_identity(conn, root / "data" / "truth").set_index("scope")
    profiles = scores.iloc[0]
    assert profiles["precision"] >= 0.99 and profiles["f1"] >= 0.98, scores


def test_the_summary_names_files_rows_and_contacts(demo):
    _, _, stdout = demo
    assert "files" in stdout and "rows loaded" in stdout and "rows quarantined" in stdout
    assert "contacts" in stdout


def test_the_generators_country_spellings_and_phone_formats_standardize_to_one_value(demo):
    _, engine, _ = demo
    with engine.connect() as conn:
        countries = pd.read_sql(sa.text(
            "SELECT DISTINCT r.country AS raw, t.country AS iso FROM raw_customers r JOIN typed_customers t "
            "ON t._file_id = r._file_id AND t._row_number = r._row_number"), conn)
        phones = pd.read_sql(sa.text(
            "SELECT r.phone AS raw, t.phone AS e164 FROM raw_customers r JOIN typed_customers t "
            "ON t._file_id = r._file_id AND t._row_number = r._row_number WHERE r.phone LIKE '(%' "
            "OR r.phone LIKE '+1 %' OR (LENGTH(r.phone) = 10 AND r.phone NOT LIKE '0%')"), conn)
    us = countries[countries["raw"].isin(["US", "USA", "United States", "United States of America", "u.s."])]
    assert set(us["raw"]) == {"US", "USA", "United States", "United States of America", "u.s."}
    assert set(us["iso"]) == {"US"}
    digits = phones["raw"].str.replace(r"\D", "", regex=True).str[-10:]
    kinds = phones["raw"].str.slice(0, 1).map({"(": "parenthesized", "+": "international"}).fillna("digits")
    assert set(kinds) == {"parenthesized", "international", "digits"}
    assert (phones["e164"] == "+1" + digits).all()


def test_the_funnel_command_prints_lifecycle_moves_per_brand(demo):
    root, engine, _ = demo
    engine.dispose()  # the CLI process opens the warehouse file
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster"), "CRM_HOME_DIR": str(root / "home")}
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    ran = cli("funnel", "--brand", "brand_a", "--days", "60", "--as-of", END, "--warehouse", url, env=env)
    assert ran.returncode == 0, ran.stderr
    assert f"60 days to {END}, brand_a" in ran.stdout
    assert "first_time" in ran.stdout or "repeat" in ran.stdout, ran.stdout


def test_a_quiet_backfill_refreshes_each_past_day_with_that_days_profiles_and_prints_only_its_days(demo):
    """Runs last in this module: it moves the profiles back to the backfill's last day."""
    from crm_pipeline_tests.test_cli_cdnow import stage_lines

    root, engine, _ = demo
    engine.dispose()  # the CLI process writes the warehouse file
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster"), "CRM_HOME_DIR": str(root / "home")}
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    ran = cli("backfill", "--from", "2025-06-01", "--to", "2025-06-02", "--warehouse", url, "--quiet", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.startswith("2025-06-01  ok") and "2025-06-02  ok" in ran.stdout
    assert stage_lines(ran.stderr) == [] and "files" not in ran.stderr  # --quiet: no stage or file progress
    with engine.connect() as conn:
        days = lambda table: {str(d) for (d,) in conn.execute(sa.text(f"SELECT DISTINCT as_of FROM {table}"))}
        assert {"2025-06-01", "2025-06-02", END} <= days("audience_sizes")
        assert {"2025-06-01", "2025-06-02", END} <= days("predictions")
        # The profiles were rebuilt as of the last backfilled day: nothing after it counts.
        latest_order = conn.execute(sa.text("SELECT MAX(last_order_date) FROM profile_360")).scalar_one()
    assert str(latest_order) <= "2025-06-02"
