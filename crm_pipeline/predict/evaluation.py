"""Scores against outcomes: ROC AUC, log loss, Brier, top-decile lift and capture; the charts as PNG bytes."""

from __future__ import annotations

import numpy as np

from crm_pipeline.markdown import figure_png


def top_decile(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(lift, capture) of the highest-scoring 10%: its positive rate / the overall rate, its share of positives."""
    y = np.asarray(y, dtype=float)
    n_top = max(int(np.ceil(len(y) * 0.1)), 1)
    order = np.lexsort((np.arange(len(y)), -np.asarray(score, dtype=float)))   # ties: first rows first
    hits = y[order[:n_top]].sum()
    base = y.mean()
    lift = float((hits / n_top) / base) if base > 0 else float("nan")
    capture = float(hits / y.sum()) if y.sum() > 0 else float("nan")
    return lift, capture


def score_metrics(y, score, *, is_probability: bool) -> dict:
    """The figures of one scorer; a scorer with no rows to score (e.g. BG/NBD without a fit) gets n = 0 and NaNs."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score  # seconds to import: only runs that train

    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    out = {"n": int(len(y)), "positive_rate": float(y.mean()) if len(y) else float("nan")}
    if not len(y):     # scikit-learn's metrics refuse empty input; "cannot score" is a result, not an error
        nan = float("nan")
        out.update(roc_auc=nan, top_decile_lift=nan, top_decile_capture=nan)
        if is_probability:
            out.update(log_loss=nan, brier=nan, mean_probability=nan)
        return out
    out["roc_auc"] = float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")
    if is_probability:
        p = np.clip(score, 1e-6, 1 - 1e-6)
        out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
        out["brier"] = float(brier_score_loss(y, p))
        out["mean_probability"] = float(p.mean()) if len(p) else float("nan")   # vs positive_rate: calibration
    out["top_decile_lift"], out["top_decile_capture"] = top_decile(y, score)
    return out


def _png(fig) -> bytes:
    return figure_png(fig, dpi=90, bbox_inches="tight")


def calibration_png(y, p, title: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title)
    ax.legend()
    return _png(fig)


def lift_png(y, scores: dict[str, np.ndarray], title: str) -> bytes:
    """Cumulative gains: share of positives captured by the top x% of each score."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    y = np.asarray(y, dtype=float)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    share = np.arange(1, len(y) + 1) / len(y)
    for name, score in scores.items():
        order = np.lexsort((np.arange(len(y)), -np.asarray(score, dtype=float)))
        ax.plot(share, np.cumsum(y[order]) / max(y.sum(), 1), label=name)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="random")
    ax.set(xlabel="share of customers contacted", ylabel="share of positives captured", title=title)
    ax.legend()
    return _png(fig)
