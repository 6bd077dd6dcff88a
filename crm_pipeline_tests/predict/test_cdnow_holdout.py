"""A public transaction log: on CDNOW (39 weeks of calibration, 39 of holdout) the churn score the predict
stage publishes ranks the holdout's non-buyers at least as well as the best simple baseline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

import joblib

from crm_pipeline.predict import bgnbd, classifier
from crm_pipeline.predict.features import compute_features
from crm_pipeline.predict.run import run_predictions
from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.identity_schema import create_identity_tables, identity_map
from crm_pipeline.warehouse.quality_schema import create_quality_tables, stg_tables
from crm_pipeline_tests.profiles.warehouse import _arrow

CDNOW = Path(__file__).parent / "fixtures" / "CDNOW_sample.txt"
CALIBRATION_END = dt.date(1997, 9, 30)
HOLDOUT_END = dt.date(1998, 6, 30)          # 39 weeks after the calibration period
HOLDOUT_WEEKS = 39


def _transactions() -> pd.DataFrame:
    tx = pd.read_csv(CDNOW, sep=r"\s+", header=None, names=["master_id", "id", "date", "quantity", "amount"],
                     dtype={"date": str, "id": str})
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d").dt.date
    return tx


def _load(engine: sa.Engine, tx: pd.DataFrame) -> None:
    """Calibration purchases as staged orders of one brand, each linked to its customer's contact."""
    create_quality_tables(engine)
    create_identity_tables(engine)
    rows, links = [], []
    for n, (cid, day, amount) in enumerate(zip(tx["id"], tx["date"], tx["amount"]), start=1):
        order_id = f"O{n}"
        rows.append({"_file_id": 1, "_row_number": n, "_brand": "cdnow", "_row_hash": n, "order_id": order_id,
                     "ordered_at": dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc),
                     "total": float(amount), "status": "delivered", "currency": "USD", "channel": "web"})
        links.append({"brand": "cdnow", "entity": "orders", "source_key": order_id, "node_id": f"orders:{order_id}",
                      "contact_id": f"C{cid}", "match_type": "deterministic", "match_probability": None,
                      "_file_id": 1, "_row_number": n})
    with engine.begin() as conn:
        insert_arrow(conn, stg_tables["orders"], _arrow(stg_tables["orders"], rows))
        insert_arrow(conn, identity_map, _arrow(identity_map, links))


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdnow")
    tx = _transactions()
    engine = make_engine(f"duckdb:///{root / 'warehouse.duckdb'}")
    _load(engine, tx[tx["date"] <= CALIBRATION_END])
    result = run_predictions(engine, as_of=CALIBRATION_END, model_dir=root / "models")
    with engine.connect() as conn:
        features = compute_features(conn, CALIBRATION_END)
        scored = pd.read_sql(sa.text(
            "SELECT p.contact_id, p.churn_probability, f.recency_days, f.frequency, f.t_x_weeks, f.\"T_weeks\" "
            "FROM predictions p JOIN features f ON f.as_of = p.as_of AND f.contact_id = p.contact_id "
            "WHERE p.as_of = :d"), conn, params={"d": CALIBRATION_END})
    engine.dispose()
    later = tx[(tx["date"] > CALIBRATION_END) & (tx["date"] <= HOLDOUT_END)]
    y = (~scored["contact_id"].isin("C" + later["id"])).to_numpy(dtype=int)      # churn: no holdout purchase
    x, t_x, T = (scored[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))
    expected = bgnbd.expected_purchases(result["bgnbd"]["used_params"], x, t_x, T, HOLDOUT_WEEKS)
    # The classifier's own holdout AUC, published or not (its model file holds the features it used).
    saved = joblib.load(root / "models" / f"churn_{CALIBRATION_END}.joblib")
    frame = classifier.add_model_columns(features, result["bgnbd"]["used_params"], classifier.CHURN.label_days)
    frame = scored[["contact_id"]].merge(frame, on="contact_id", how="left")
    p_model = saved["model"].predict_proba(frame[saved["features"]].to_numpy(dtype=float))[:, 1]
    aucs = {"published": roc_auc_score(y, scored["churn_probability"]), "classifier": roc_auc_score(y, p_model),
            "recency": roc_auc_score(y, scored["recency_days"]),
            "bgnbd_expected_purchases": roc_auc_score(y, -expected)}
    return result, scored, y, aucs


def test_cdnow_holdout_auc_of_the_published_churn_score_is_not_below_the_best_baseline(holdout, capsys):
    result, scored, y, aucs = holdout
    churn = result["classifiers"]["churn"]
    with capsys.disabled():
        print(f"\nCDNOW holdout churn AUC ({len(y)} customers, {y.mean():.1%} churned): "
              + ", ".join(f"{k} {v:.4f}" for k, v in aucs.items())
              + f"; published = {churn['used']} ({churn['message']})")
    assert len(scored) == 2357 and result["bgnbd"]["converged"]
    assert churn["status"] == "ok", churn["message"]
    assert aucs["published"] >= max(aucs["recency"], aucs["bgnbd_expected_purchases"]), aucs
    # What the pipeline chose on its own evaluation window holds on the holdout: the published score is
    # at least as good as the classifier it passed over (or is that classifier).
    assert aucs["published"] >= aucs["classifier"] - 1e-9, aucs
    # Bands split the cohort by rank whatever the base rate (about 70% here).
    assert max(result["risk_bands"].values()) <= 0.5 * len(scored)
