"""Churn and next-purchase classifiers trained on past windows and judged on a later held-out one.

Labels come from a time split: features at a cutoff c (only data up to c), labels from the
days after it: churn = no purchase in (c, c + 90d], next purchase = a purchase in (c, c + 30d].
For a task with label length L the evaluation cutoff is as_of - L (its labels end at as_of)
and the model is trained on `TRAIN_WINDOWS` earlier cutoffs, as_of - 2L - k * 30 days, whose
labels all end before the evaluation window starts: nothing of the held-out window is seen
while fitting, calibrating or choosing the number of boosting rounds.

The classifier is a HistGradientBoostingClassifier (learning rate 0.1, at most 200 rounds,
15 leaves of >= 50 rows) with early stopping on a held-out 20% of the training contacts,
calibrated on that same split (Platt scaling below 20,000 rows, isotonic above). Large
populations are subsampled deterministically (`MAX_ROWS_PER_WINDOW` buyers per cutoff).
It is compared on the held-out window with the two strongest simple baselines:
  - recency: days since the last purchase;
  - bgnbd_expected_purchases: BG/NBD's conditional expected number of purchases over the label's
    horizon, E[X(c, c + L] | x, t_x, T] (churn score: fewer expected purchases = more risk). It
    ranks one-time buyers by their purchase rate and age, which P(alive) cannot (P(alive) is 1 for
    every one-time buyer, so its churn AUC fell below 0.5); P(alive) is a model feature instead.
The classifier scores only if its held-out AUC beats both; otherwise the better baseline scores
(mapped to a probability of the event by a monotone logistic fit on the training windows), and the
outcome says so with every AUC side by side. A baseline whose input is missing (no BG/NBD fit at
the evaluation cutoff or at as_of) is reported as unable to score and is not chosen.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crm_pipeline.predict import bgnbd
from crm_pipeline.predict.evaluation import calibration_svg, gains_svg, score_metrics
from crm_pipeline.profiles.sql import day_number

MODEL_FEATURES = [
    "purchase_count", "frequency", "recency_days", "monetary", "total_value", "tenure_days", "t_x_weeks", "T_weeks",
    "interpurchase_mean_days", "interpurchase_std_days", "return_rate", "category_count", "brand_count",
    "email_open_30d_count", "email_open_90d_count", "email_click_30d_count", "email_click_90d_count",
    "days_since_open", "days_since_click", "browse_30d_count", "browse_90d_count", "days_since_browse",
    "subscription_age_days", "purchase_90d_count", "purchase_prev_90d_count",
    # derived below
    "recency_over_interpurchase", "purchase_trend_90d", "days_since_engaged",
    "bgnbd_p_alive", "bgnbd_p_purchase", "bgnbd_expected_purchases",
]
MIN_BUYERS = 500
TRAIN_WINDOWS = 3               # stacked training cutoffs per task, WINDOW_STEP_DAYS apart
WINDOW_STEP_DAYS = 30
MAX_ROWS_PER_WINDOW = 25_000    # above this, every n-th contact (by contact_id) forms each window
HOLDOUT_SHARE = 0.2             # training contacts held out for early stopping and calibration
ISOTONIC_MIN_ROWS = 20_000


@dataclass(frozen=True)
class Task:
    name: str            # churn / next_purchase
    label_days: int
    positive_is_purchase: bool   # next purchase: 1 = bought; churn: 1 = did not buy


CHURN = Task("churn", 90, False)
NEXT_PURCHASE = Task("next_purchase", 30, True)
TASKS = (CHURN, NEXT_PURCHASE)


@dataclass
class TaskOutcome:
    task: str
    status: str                       # ok / skipped
    used: str                         # classifier / bgnbd_expected_purchases / recency / none
    message: str
    metrics: dict = field(default_factory=dict)
    probabilities: np.ndarray | None = None     # at as_of, aligned with the scoring frame
    charts: dict[str, bytes] = field(default_factory=dict)
    model_path: str | None = None
    scorer: Scorer | None = None     # what scores later days (ok outcomes); read back: a portable.PortableScorer


def cutoffs(task: Task, as_of: dt.date) -> tuple[dt.date, list[dt.date]]:
    """(evaluation cutoff, training cutoffs newest first) of `task` for a run at `as_of`."""
    evaluate = as_of - dt.timedelta(days=task.label_days)
    newest = evaluate - dt.timedelta(days=task.label_days)
    return evaluate, [newest - dt.timedelta(days=k * WINDOW_STEP_DAYS) for k in range(TRAIN_WINDOWS)]


def features_through(as_of: dt.date) -> dt.date:
    """The last cutoff whose features a training at `as_of` reads (the latest evaluation cutoff): later records
    other than orders are not read (orders are, as labels up to as_of)."""
    return max(cutoffs(task, as_of)[0] for task in TASKS)


def sample_every(buyers: int) -> int:
    """Keep every n-th contact in each window so a window has at most MAX_ROWS_PER_WINDOW buyers."""
    return max(1, math.ceil(buyers / MAX_ROWS_PER_WINDOW))


def add_model_columns(frame: pd.DataFrame, params: dict | None, horizon_days: int) -> pd.DataFrame:
    """Derived features and BG/NBD's P(alive), P(a purchase in the horizon), E[purchases] (NaN without params)."""
    out = frame.copy()
    out["recency_over_interpurchase"] = out["recency_days"] / out["interpurchase_mean_days"].where(
        out["interpurchase_mean_days"] > 0)
    out["purchase_trend_90d"] = out["purchase_90d_count"] - out["purchase_prev_90d_count"]
    out["days_since_engaged"] = out[["days_since_open", "days_since_click", "days_since_browse"]].min(axis=1)
    if not params:
        out["bgnbd_p_alive"] = out["bgnbd_p_purchase"] = out["bgnbd_expected_purchases"] = np.nan
        return out
    x, t_x, T = (out[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))
    out["bgnbd_p_alive"] = bgnbd.p_alive(params, x, t_x, T)
    out["bgnbd_p_purchase"] = 1.0 - bgnbd.p_no_purchase(params, x, t_x, T, horizon_days / 7.0)
    out["bgnbd_expected_purchases"] = bgnbd.expected_purchases(params, x, t_x, T, horizon_days / 7.0)
    return out


def baseline_inputs(buyers: pd.DataFrame, params: dict | None, horizon_days: int) -> pd.DataFrame:
    """The baselines' inputs (`BASELINE_COLUMNS`) of `buyers` (recency_days, frequency, t_x_weeks, T_weeks): what
    `train_task` reads of the training day's buyers to know whether a baseline can score there."""
    out = buyers[["recency_days"]].copy()
    if not params:
        out["bgnbd_expected_purchases"] = np.nan
        return out
    x, t_x, T = (buyers[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))
    out["bgnbd_expected_purchases"] = bgnbd.expected_purchases(params, x, t_x, T, horizon_days / 7.0)
    return out


def too_few_buyers(buyers: int) -> str | None:
    if buyers < MIN_BUYERS:
        return f"classifier skipped: {buyers} customers with orders, need >= {MIN_BUYERS}; BG/NBD and RFM still score"
    return None


def too_little_history(history_days: int, horizon_days: int) -> str | None:
    if history_days < 2 * horizon_days:
        return (f"classifier skipped: {history_days} days of order history, need two {horizon_days}-day windows "
                f"(>= {2 * horizon_days}); BG/NBD and RFM still score")
    return None


def labels(frame: pd.DataFrame, first_after: pd.DataFrame, task: Task) -> np.ndarray:
    """1/0 per row of `frame` (as_of, contact_id) from `first_after` (as_of, contact_id, first purchase day after)."""
    first = frame[["as_of", "contact_id"]].merge(first_after, on=["as_of", "contact_id"], how="left")["first_day"]
    dates = frame["as_of"]
    limit = dates.map({d: day_number(d) for d in dates.unique()}).to_numpy(dtype=np.int64) + task.label_days
    bought = (first.notna() & (first <= limit)).to_numpy()
    return (bought if task.positive_is_purchase else ~bought).astype(int)


class CalibratedBooster:
    """A fitted booster and the calibrator of its scores (fitted on held-out training contacts)."""

    def __init__(self, booster, calibrator):
        self.booster, self.calibrator = booster, calibrator

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        from sklearn.isotonic import IsotonicRegression  # loaded with the pickle already: a dictionary look-up

        raw = self.booster.predict_proba(X)[:, 1]
        if isinstance(self.calibrator, IsotonicRegression):
            p = self.calibrator.predict(raw)
        else:
            p = self.calibrator.predict_proba(_logit(raw)[:, None])[:, 1]
        return np.column_stack([1.0 - p, p])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def holdout_mask(contact_ids: pd.Series) -> np.ndarray:
    """True for the contacts held out (every window of a contact on the same side), seeded and deterministic."""
    unique, which = np.unique(contact_ids.astype(str).to_numpy(dtype=object), return_inverse=True)
    held = np.random.default_rng(0).random(len(unique)) < HOLDOUT_SHARE
    return held[which]


def fit_model(X: np.ndarray, y: np.ndarray, held: np.ndarray) -> CalibratedBooster:
    """Boosting with early stopping on the held-out contacts, then calibration on them."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    booster = HistGradientBoostingClassifier(
        learning_rate=0.1, max_iter=200, max_leaf_nodes=15, min_samples_leaf=50, l2_regularization=1.0,
        early_stopping=True, n_iter_no_change=20, scoring="loss", random_state=0)
    booster.fit(X[~held], y[~held], X_val=X[held], y_val=y[held])
    raw = booster.predict_proba(X[held])[:, 1]
    if held.sum() >= ISOTONIC_MIN_ROWS:
        calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y[held])
    else:
        calibrator = LogisticRegression(C=1e6).fit(_logit(raw)[:, None], y[held])
    return CalibratedBooster(booster, calibrator)


BASELINE_COLUMNS = {"recency": "recency_days", "bgnbd_expected_purchases": "bgnbd_expected_purchases"}


def _baselines(frame: pd.DataFrame, task: Task) -> dict[str, np.ndarray]:
    """Higher = more likely positive (churn: no purchase; next purchase: a purchase)."""
    recency = frame["recency_days"].to_numpy(dtype=float)
    expected = frame["bgnbd_expected_purchases"].to_numpy(dtype=float)
    if task.positive_is_purchase:
        return {"recency": -recency, "bgnbd_expected_purchases": expected}
    return {"recency": recency, "bgnbd_expected_purchases": -expected}


@dataclass
class Scorer:
    """What scores a task on later days: the calibrated booster on its feature columns, or the winning
    baseline's input through its logistic map (`fill`: the input's training median, for a missing input)."""
    used: str
    features: list[str]
    model: CalibratedBooster | None = None
    baseline_map: object | None = None         # a fitted LogisticRegression
    fill: float = 0.0

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """P(the task's event) per row of `frame` (features with `add_model_columns`)."""
        if self.model is not None:
            return self.model.predict_proba(frame[self.features].to_numpy(dtype=float))[:, 1]
        x = np.nan_to_num(frame[BASELINE_COLUMNS[self.used]].to_numpy(dtype=float), nan=self.fill)
        return self.baseline_map.predict_proba(np.log1p(np.maximum(x, 0))[:, None])[:, 1]


def run_task(task: Task, train: pd.DataFrame, evaluate: pd.DataFrame, score: pd.DataFrame, *,
             y_train: np.ndarray, y_eval: np.ndarray, model_dir: Path, as_of: dt.date,
             windows: dict) -> TaskOutcome:
    """Train, compare with the baselines on the held-out window, and score `score` with the winner."""
    outcome = train_task(task, train, evaluate, score, y_train=y_train, y_eval=y_eval, model_dir=model_dir,
                         as_of=as_of, windows=windows)
    if outcome.scorer is not None:
        outcome.probabilities = outcome.scorer.probabilities(score)
    return outcome


def train_task(task: Task, train: pd.DataFrame, evaluate: pd.DataFrame, reference: pd.DataFrame, *,
               y_train: np.ndarray, y_eval: np.ndarray, model_dir: Path, as_of: dt.date,
               windows: dict) -> TaskOutcome:
    """Train, compare with the baselines on the held-out window, and keep the winner's `Scorer`.

    `reference` holds the baselines' inputs of the training buyers (`baseline_inputs`): a baseline whose input
    is empty there cannot score the days that use this model.
    """
    if len(np.unique(y_train)) < 2 or len(np.unique(y_eval)) < 2:
        return TaskOutcome(task.name, "skipped", "none", f"{task.name}: a window has only one label class")
    used_features = [c for c in MODEL_FEATURES if train[c].notna().any()]   # an all-empty source adds nothing
    held = holdout_mask(train["contact_id"])
    model = fit_model(train[used_features].to_numpy(dtype=float), y_train, held)
    p_eval = model.predict_proba(evaluate[used_features].to_numpy(dtype=float))[:, 1]
    metrics = {"classifier": score_metrics(y_eval, p_eval, is_probability=True), **windows,
               "n_train": int((~held).sum()), "n_holdout": int(held.sum()),
               "boosting_rounds": int(model.booster.n_iter_), "train_positive_rate": float(np.mean(y_train))}
    baselines = _baselines(evaluate, task)
    for name, values in baselines.items():
        ok = np.isfinite(values)
        metrics[f"baseline_{name}"] = score_metrics(y_eval[ok], values[ok], is_probability=False)
        if not ok.any():
            metrics[f"baseline_{name}"]["cannot_score"] = "no BG/NBD fit at the evaluation cutoff"
    auc = {name: metrics[f"baseline_{name}"]["roc_auc"] for name in baselines}
    # A baseline can score only if its input exists at the evaluation cutoff and on the training day: without
    # a BG/NBD fit (none converged, no earlier good one) its probabilities are empty, and the next best scores.
    valid = {k: v for k, v in auc.items() if not np.isnan(v) and _can_score(k, reference)}
    best_baseline = max(valid, key=valid.get) if valid else None
    classifier_auc = metrics["classifier"]["roc_auc"]
    versus = ", ".join(f"{k} {v:.3f}" if not np.isnan(v) else f"{k} cannot score" for k, v in auc.items())
    if best_baseline is None or classifier_auc > valid[best_baseline]:
        scorer = Scorer("classifier", used_features, model=model)
        message = f"{task.name}: classifier AUC {classifier_auc:.3f} beats every baseline ({versus}); classifier scores"
    else:
        scorer = _baseline_scorer(best_baseline, train, y_train)
        message = (f"{task.name}: classifier AUC {classifier_auc:.3f} does not beat the {best_baseline} baseline "
                   f"({versus}); the {best_baseline} baseline scores")
    metrics["used"] = scorer.used
    import joblib

    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / f"{task.name}_{as_of.isoformat()}.joblib"
    joblib.dump({"model": model, "scorer": scorer, "features": used_features, "task": task.name,
                 "label_days": task.label_days, "windows": windows, "metrics": metrics, "used": scorer.used}, path)
    charts = {f"{task.name}_calibration.svg": calibration_svg(y_eval, p_eval, f"{task.name}: held-out calibration"),
              f"{task.name}_gains.svg": gains_svg(y_eval, {"classifier": p_eval, **baselines}, f"{task.name}: gains")}
    return TaskOutcome(task.name, "ok", scorer.used, message, metrics, None, charts, str(path), scorer)


def _can_score(name: str, score: pd.DataFrame) -> bool:
    return bool(np.isfinite(score[BASELINE_COLUMNS[name]].to_numpy(dtype=float)).any())


def _baseline_scorer(name: str, train: pd.DataFrame, y_train: np.ndarray) -> Scorer:
    """The baseline's input mapped to a probability of the event by a logistic fit on the training windows.

    The map is strictly monotone in log(1 + input), so the published probabilities rank buyers exactly as
    the baseline does (an isotonic map would merge them into steps and lose part of the AUC that won).
    """
    from sklearn.linear_model import LogisticRegression

    x_train = train[BASELINE_COLUMNS[name]].to_numpy(dtype=float)
    ok = np.isfinite(x_train)
    fit = LogisticRegression(C=1e6).fit(np.log1p(np.maximum(x_train[ok], 0))[:, None], y_train[ok])
    return Scorer(name, [BASELINE_COLUMNS[name]], baseline_map=fit, fill=float(np.nanmedian(x_train)))
