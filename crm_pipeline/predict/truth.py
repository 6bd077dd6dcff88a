"""Churn scores judged against the generator's truth: did the buyer really drop out by as_of?

The generator writes each buyer's silent dropout day per brand (`truth/dropout.csv`, empty while
alive). A person has truly churned at as_of when every brand they buy at saw their dropout on or
before as_of (dropout = the day of their last purchase, so a later purchase means alive). Each
scored contact is matched to the person behind most of their order records (`records.csv` joined
on file and row, as identity evaluation does). Reported: the AUC of the published churn
probability and of each baseline against that truth, and the true churn rate per risk band.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import sqlalchemy as sa

from crm_pipeline.warehouse.bulk import read_frame


def contact_people(conn: sa.Connection, truth_dir: Path, entity: str = "orders") -> pd.DataFrame:
    """contact_id -> person_id (the person behind most of the contact's `entity` records)."""
    records = pcsv.read_csv(truth_dir / "records.csv", convert_options=pcsv.ConvertOptions(
        include_columns=["entity", "person_id", "file", "row_number"],
        column_types={"person_id": "string", "file": "string", "entity": "string"}))
    records = records.filter(pc.and_(pc.equal(records["entity"], entity), pc.is_valid(records["person_id"])))
    truth = records.select(["file", "row_number", "person_id"]).to_pandas()
    mapped = read_frame(conn, sa.text(
        "SELECT m.contact_id, f.path AS file, m._row_number AS row_number FROM identity_map m "
        "JOIN files f ON f.file_id = m._file_id WHERE m.entity = :e").bindparams(e=entity))
    joined = mapped.merge(truth, on=["file", "row_number"])
    counts = joined.groupby(["contact_id", "person_id"]).size().rename("n").reset_index()
    counts = counts.sort_values(["contact_id", "n", "person_id"], ascending=[True, False, True])
    return counts.drop_duplicates("contact_id")[["contact_id", "person_id"]]


def churn_truth(truth_dir: Path, as_of: dt.date) -> pd.DataFrame:
    """person_id, churned (every brand's dropout on or before as_of)."""
    dropout = pd.read_csv(truth_dir / "dropout.csv", dtype=str, keep_default_na=False)
    gone = (dropout["dropout_date"] != "") & (dropout["dropout_date"] <= as_of.isoformat())
    return gone.groupby(dropout["person_id"]).all().rename("churned").reset_index()


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # scikit-learn takes seconds to import: only when a run scores truth

    ok = np.isfinite(score)
    y, score = y[ok], score[ok]
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def evaluate_churn(conn: sa.Connection, truth_dir: Path | None, as_of: dt.date, scored: pd.DataFrame) -> dict:
    """AUCs against true dropout for `scored` (contact_id, churn_probability, risk_band, recency_days,
    expected_purchases_90d), or why there is no truth to judge by."""
    if truth_dir is None or not (Path(truth_dir) / "dropout.csv").is_file():
        return {"status": "no_truth", "message": "no truth/dropout.csv beside the landing folder"}
    truth_dir = Path(truth_dir)
    people = contact_people(conn, truth_dir)
    frame = scored.merge(people, on="contact_id").merge(churn_truth(truth_dir, as_of), on="person_id")
    y = frame["churned"].to_numpy(dtype=int)
    by_band = frame.groupby("risk_band")["churned"].agg(["size", "mean"])
    return {
        "status": "ok", "matched_buyers": int(len(frame)), "true_churn_rate": float(y.mean()) if len(y) else None,
        "auc": {"published": _auc(y, frame["churn_probability"].to_numpy(dtype=float)),
                "recency": _auc(y, frame["recency_days"].to_numpy(dtype=float)),
                "bgnbd_expected_purchases": _auc(y, -frame["expected_purchases_90d"].to_numpy(dtype=float))},
        "true_churn_rate_by_band": {str(b): round(float(r["mean"]), 4) for b, r in by_band.iterrows()},
    }
