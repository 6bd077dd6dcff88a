"""The public CDNOW log at its real 1997 dates through `crm-pipeline cdnow` and `crm-pipeline run`, as a user
runs them: the pipeline's BG/NBD fit is the published one, and the run reports each stage as it finishes.

The published fit (Fader, Hardie & Lee 2005: r 0.2426, alpha 4.414, a 0.7930, b 2.426, log-likelihood
-9582.4) calibrates on 1997-01-01 .. 1997-09-30 (39 weeks), T = weeks from a customer's first purchase to
1997-09-30, purchases on one day merged. The pipeline has no fixed calibration window: the models of a training
day fit on the complete days before it, T = the day before - first purchase day. The cohort's first purchases
all fall in 1997's first quarter, so `--as-of 1997-10-01` (its own training day) is exactly the published
window; the later purchases (to June 1998) are in the warehouse but after it, and must not count.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm_pipeline.cli import main
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.cli_process import cli

CDNOW = Path(__file__).parent / "predict" / "fixtures" / "CDNOW_sample.txt"
AS_OF = "1997-10-01"
PUBLISHED = {"r": 0.2426, "alpha": 4.414, "a": 0.7930, "b": 2.426}
STEPS = [("ingest", "ingest_files"), ("quality", "stage_entities"), ("identity", "resolve_identity"),
         ("identity", "build_profile_tables"), ("predict", "predict_customers"), ("scoring", "score_contacts"),
         ("audiences", "materialize_audience_tables")]


@pytest.fixture(scope="module")
def cdnow_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdnow")
    # Train on the day after the calibration period (1997-10-01 is not a weekly boundary from partition_start_date):
    # its models read the complete days before it, exactly the published calibration period; the README's CDNOW
    # example does the same.
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster"), "CRM_HOME_DIR": str(root / "home"),
           "CRM_PREDICT_RETRAIN_DAYS": "1"}
    env.pop("CRM_CONFIG", None)
    converted = cli("cdnow", str(CDNOW), "--out", str(root / "data"), env=env)
    assert converted.returncode == 0, converted.stderr
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    ran = cli("run", "--landing", str(root / "data" / "landing"), "--as-of", AS_OF, "--warehouse", url, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return url, ran, env


def query(url: str, sql: str, **params) -> list:
    """Rows of one query; the file is released at once (DuckDB admits one process, and the CLI runs next)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
    finally:
        engine.dispose()


def stage_lines(stderr: str) -> list[tuple[str, str]]:
    """(stage, step) of every `stage step N rows S s` line, in order."""
    return re.findall(r"^(\w+)\s+(\w+)\s+[\d,]+ rows\s+[\d.]+ s$", stderr, flags=re.MULTILINE)


def test_every_transaction_lands_and_every_customer_is_one_contact(cdnow_run):
    url, *_ = cdnow_run
    [counts] = query(url, "SELECT (SELECT COUNT(*) FROM stg_orders), (SELECT COUNT(*) FROM quarantine), "
                          "(SELECT COUNT(*) FROM contacts)")
    assert tuple(counts) == (6919, 0, 2357)


def test_the_pipelines_bgnbd_fit_reproduces_the_published_cdnow_fit(cdnow_run):
    url, *_ = cdnow_run
    [run] = query(url, "SELECT status, params, log_likelihood FROM model_runs WHERE model = 'bgnbd' AND as_of = :d",
                  d=AS_OF)
    [window] = query(url, "SELECT COUNT(*), SUM(CASE WHEN frequency > 0 THEN 1 ELSE 0 END), MAX(\"T_weeks\") "
                          "FROM features WHERE as_of = :d AND purchase_count > 0", d=AS_OF)
    assert run.status == "ok"
    params = json.loads(run.params)
    for name, published in PUBLISHED.items():
        assert params[name] == pytest.approx(published, rel=0.002), (name, params)
    assert run.log_likelihood == pytest.approx(-9582.4, abs=0.5)
    # The published calibration window: 2,357 buyers, 946 of them repeat buyers by 1997-09-30 (still so on
    # 1997-10-01), and the earliest buyers (1997-01-01) observed for 273 days at the as-of day (272 in the fit).
    assert tuple(window) == (2357, 946, pytest.approx(273 / 7))


def test_evaluate_predictions_shows_the_fitted_parameters_beside_the_published_ones(cdnow_run, capsys):
    url, *_ = cdnow_run
    assert main(["evaluate", "predictions", "--as-of", AS_OF, "--warehouse", url]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("bgnbd parameters: "))
    shown = dict(pair.split() for pair in line.removeprefix("bgnbd parameters: ").split(", "))
    assert {k: float(v) for k, v in shown.items()} == pytest.approx(PUBLISHED, rel=0.001)


def test_run_prints_each_stage_as_it_finishes_and_the_files_ingested(cdnow_run):
    _, ran, _ = cdnow_run
    assert stage_lines(ran.stderr) == STEPS, ran.stderr
    assert "ingest_files: ingested 4/4 files, 16,196 new rows" in ran.stderr
    assert "crm_pipeline as of 1997-10-01" in ran.stdout  # the summary stays on standard output


@pytest.mark.parametrize("args", [
    ["run", "--as-of", "1989-12-31"], ["backfill", "--from", "1989-12-31", "--to", AS_OF],
    ["evaluate", "predictions", "--as-of", "1989-12-31"], ["funnel", "--as-of", "1989-12-31"],
])
def test_a_day_before_the_partitions_is_one_sentence_naming_the_range(args, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CRM_CONFIG", raising=False)
    monkeypatch.delenv("CRM_PARTITION_START_DATE", raising=False)
    assert main([*args, "--warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}"]) == 2
    err = capsys.readouterr().err
    assert "1989-12-31 is outside the daily partitions, which run from 1990-01-01 to" in err
    assert len(err.strip().splitlines()) == 1


def test_a_day_after_today_is_refused_and_an_earlier_first_day_admits_older_history(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CRM_CONFIG", raising=False)
    assert main(["audiences", "list", "--as-of", "2999-01-01"]) == 2
    assert "a day after today has no partition yet" in capsys.readouterr().err
    config = tmp_path / "crm.yaml"
    config.write_text(f"partition_start_date: 1980-01-01\nwarehouse_url: duckdb:///{tmp_path / 'w.duckdb'}\n")
    # Past the range check: the command itself answers (nothing computed for that day yet).
    assert main(["--config", str(config), "audiences", "list", "--as-of", "1985-06-30"]) == 1
    assert "outside" not in capsys.readouterr().err
    assert "CRM_CONFIG" not in os.environ  # the command's --config does not outlive it
