"""Churn and next-purchase classifiers trained on a past window and judged on a later held-out one.

Labels come from a time split: features at a cutoff c (only data up to c), labels from the
days after it — churn = no purchase in (c, c + 90d], next purchase = a purchase in (c, c + 30d].
The model is trained at c1 = as_of - 2H and evaluated at c2 = as_of - H (H = 90 days, labels
end at as_of), against two baselines: recency alone and BG/NBD P(alive). It is used only
if its held-out AUC beats both; otherwise the better baseline scores and the outcome says so.
A HistGradientBoostingClassifier is calibrated with CalibratedClassifierCV.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression

from crm_pipeline.predict import bgnbd
from crm_pipeline.predict.evaluation import calibration_png, lift_png, score_metrics

MODEL_FEATURES = [
    "purchase_count", "frequency", "recency_days", "monetary", "total_value", "tenure_days", "t_x_weeks", "T_weeks",
    "interpurchase_mean_days", "interpurchase_std_days", "return_rate", "category_count", "brand_count",
    "email_open_30d_count", "email_open_90d_count", "email_click_30d_count", "email_click_90d_count",
    "days_since_open", "days_since_click", "browse_30d_count", "browse_90d_count", "days_since_browse",
    "subscription_age_days", "bgnbd_p_alive", "bgnbd_p_purchase",
]
MIN_BUYERS = 500


@dataclass(frozen=True)
class Task:
    name: str            # churn / next_purchase
    label_days: int
    positive_is_purchase: bool   # next purchase: 1 = bought; churn: 1 = did not buy


CHURN = Task("churn", 90, False)
NEXT_PURCHASE = Task("next_purchase", 30, True)


@dataclass
class TaskOutcome:
    task: str
    status: str                       # ok / skipped
    used: str                         # classifier / bgnbd / recency / none
    message: str
    metrics: dict = field(default_factory=dict)
    probabilities: np.ndarray | None = None     # at as_of, aligned with the scoring frame
    charts: dict[str, bytes] = field(default_factory=dict)
    model_path: str | None = None


def add_bgnbd_columns(frame: pd.DataFrame, params: dict | None, horizon_days: int) -> pd.DataFrame:
    """BG/NBD P(alive) and P(a purchase in the horizon) as model features (NaN without parameters)."""
    out = frame.copy()
    if not params:
        out["bgnbd_p_alive"] = np.nan
        out["bgnbd_p_purchase"] = np.nan
        return out
    x, t_x, T = (out[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))
    out["bgnbd_p_alive"] = bgnbd.p_alive(params, x, t_x, T)
    out["bgnbd_p_purchase"] = 1.0 - bgnbd.p_no_purchase(params, x, t_x, T, horizon_days / 7.0)
    return out


def small_data_reason(buyers: int, history_days: int, horizon_days: int) -> str | None:
    if buyers < MIN_BUYERS:
        return f"classifier skipped: {buyers} customers with orders, need >= {MIN_BUYERS}; BG/NBD and RFM still score"
    if history_days < 2 * horizon_days:
        return (f"classifier skipped: {history_days} days of order history, need two {horizon_days}-day windows "
                f"(>= {2 * horizon_days}); BG/NBD and RFM still score")
    return None


def labels(frame: pd.DataFrame, future: pd.DataFrame, cutoff: dt.date, task: Task) -> np.ndarray:
    """1/0 per row of `frame` from `future` (contact_id, first_day of purchases after the cutoff)."""
    from crm_pipeline.predict.features import day_number
    first = frame[["contact_id"]].merge(future[["contact_id", "first_day"]], on="contact_id", how="left")["first_day"]
    bought = (first.notna() & (first <= day_number(cutoff) + task.label_days)).to_numpy()
    return (bought if task.positive_is_purchase else ~bought).astype(int)


def _model(n: int) -> CalibratedClassifierCV:
    booster = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                             min_samples_leaf=40, l2_regularization=1.0, random_state=0)
    return CalibratedClassifierCV(booster, method="isotonic" if n >= 20_000 else "sigmoid", cv=3)


def _baselines(frame: pd.DataFrame, task: Task) -> dict[str, np.ndarray]:
    """Higher = more likely positive. Churn: long recency, low P(alive); next purchase: the reverse."""
    recency = frame["recency_days"].to_numpy(dtype=float)
    alive = frame["bgnbd_p_alive"].to_numpy(dtype=float)
    if task.positive_is_purchase:
        return {"recency": -recency, "bgnbd": alive}
    return {"recency": recency, "bgnbd": 1.0 - alive}


def run_task(task: Task, train: pd.DataFrame, evaluate: pd.DataFrame, score: pd.DataFrame, *,
             y_train: np.ndarray, y_eval: np.ndarray, model_dir: Path, as_of: dt.date,
             windows: dict) -> TaskOutcome:
    """Train, compare with the baselines on the held-out window, and score `score` with the winner."""
    if len(np.unique(y_train)) < 2 or len(np.unique(y_eval)) < 2:
        return TaskOutcome(task.name, "skipped", "none", f"{task.name}: a window has only one label class")
    used_features = [c for c in MODEL_FEATURES if train[c].notna().any()]   # an all-empty source adds nothing
    model = _model(len(train)).fit(train[used_features].to_numpy(dtype=float), y_train)
    p_eval = model.predict_proba(evaluate[used_features].to_numpy(dtype=float))[:, 1]
    metrics = {"classifier": score_metrics(y_eval, p_eval, is_probability=True), **windows,
               "n_train": int(len(train)), "train_positive_rate": float(np.mean(y_train))}
    baselines = _baselines(evaluate, task)
    for name, values in baselines.items():
        ok = np.isfinite(values)
        metrics[f"baseline_{name}"] = score_metrics(y_eval[ok], values[ok], is_probability=name == "bgnbd")
    auc = {name: metrics[f"baseline_{name}"]["roc_auc"] for name in baselines}
    best_baseline = max(auc, key=lambda k: -np.inf if np.isnan(auc[k]) else auc[k])
    classifier_auc = metrics["classifier"]["roc_auc"]
    if classifier_auc > max(v for v in auc.values() if not np.isnan(v)):
        used, probabilities = "classifier", model.predict_proba(score[used_features].to_numpy(dtype=float))[:, 1]
        message = (f"{task.name}: classifier AUC {classifier_auc:.3f} beats recency {auc['recency']:.3f} "
                   f"and BG/NBD {auc['bgnbd']:.3f}; classifier scores")
    else:
        used = best_baseline
        message = (f"{task.name}: classifier AUC {classifier_auc:.3f} does not beat the {best_baseline} baseline "
                   f"({auc[best_baseline]:.3f}); the {best_baseline} baseline scores")
        probabilities = _baseline_probabilities(best_baseline, task, train, y_train, score)
    metrics["used"] = used
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / f"{task.name}_{as_of.isoformat()}.joblib"
    joblib.dump({"model": model, "features": used_features, "task": task.name, "label_days": task.label_days,
                 "windows": windows, "metrics": metrics, "used": used}, path)
    charts = {f"{task.name}_calibration.png": calibration_png(y_eval, p_eval, f"{task.name}: held-out calibration"),
              f"{task.name}_gains.png": lift_png(y_eval, {"classifier": p_eval, **baselines}, f"{task.name}: gains")}
    return TaskOutcome(task.name, "ok", used, message, metrics, probabilities, charts, str(path))


def _baseline_probabilities(name: str, task: Task, train: pd.DataFrame, y_train: np.ndarray,
                            score: pd.DataFrame) -> np.ndarray:
    """A baseline turned into a probability by isotonic regression on the training window."""
    column = "recency_days" if name == "recency" else "bgnbd_p_alive"
    x_train = train[column].to_numpy(dtype=float)
    ok = np.isfinite(x_train)
    increasing = (name == "recency") != task.positive_is_purchase
    iso = IsotonicRegression(out_of_bounds="clip", increasing=increasing).fit(x_train[ok], y_train[ok])
    return iso.predict(np.nan_to_num(score[column].to_numpy(dtype=float), nan=np.nanmedian(x_train)))
