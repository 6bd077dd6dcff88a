"""The classifier's choice on frames where browsing shows who is still active (signal beyond purchase history)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from crm_pipeline.predict import classifier, portable

PARAMS = {"r": 0.5, "alpha": 10.0, "a": 0.8, "b": 2.5}
AS_OF = dt.date(2025, 6, 30)


def _window(rng: np.random.Generator, n: int, cutoff: dt.date, offset: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Buyers whose next-30-day purchase depends on being active, which recent browsing reveals."""
    frequency = rng.poisson(1.5, n)
    T = rng.uniform(10, 100, n)
    t_x = np.where(frequency > 0, T * rng.uniform(0, 1, n), 0.0)
    active = rng.random(n) < 0.4
    frame = pd.DataFrame({
        "as_of": cutoff, "contact_id": [f"C{offset + i:06d}" for i in range(n)],
        "purchase_count": frequency + 1, "frequency": frequency, "t_x_weeks": t_x, "T_weeks": T,
        "recency_days": np.round((T - t_x) * 7), "interpurchase_mean_days": np.where(frequency > 0, t_x * 7 / np.maximum(frequency, 1), np.nan),
        "purchase_90d_count": rng.poisson(0.3, n), "purchase_prev_90d_count": rng.poisson(0.3, n),
        "days_since_browse": np.where(active, rng.integers(0, 20, n), rng.integers(40, 400, n)),
        "days_since_open": np.nan, "days_since_click": np.nan,
    })
    for column in classifier.MODEL_FEATURES:
        if column not in frame:
            frame[column] = np.nan
    y = (active & (rng.random(n) < 0.6)).astype(int)
    return classifier.add_model_columns(frame, PARAMS, 30), y


def test_the_classifier_scores_when_it_beats_every_baseline_on_the_later_window(tmp_path):
    rng = np.random.default_rng(3)
    parts = [_window(rng, 1500, AS_OF - dt.timedelta(days=60 + 30 * k), 10_000 * k) for k in range(3)]
    train = pd.concat([f for f, _ in parts], ignore_index=True)
    y_train = np.concatenate([y for _, y in parts])
    evaluate, y_eval = _window(rng, 1500, AS_OF - dt.timedelta(days=30), 90_000)
    score, _ = _window(rng, 200, AS_OF, 95_000)
    outcome = classifier.run_task(classifier.NEXT_PURCHASE, train, evaluate, score, y_train=y_train, y_eval=y_eval,
                                  model_dir=tmp_path, as_of=AS_OF, windows={})
    auc = {k: v["roc_auc"] for k, v in outcome.metrics.items() if isinstance(v, dict)}
    assert outcome.used == "classifier", (outcome.message, auc)
    assert auc["classifier"] > max(auc["baseline_recency"], auc["baseline_bgnbd_expected_purchases"]) + 0.1
    assert outcome.probabilities.shape == (200,) and np.all((outcome.probabilities >= 0) & (outcome.probabilities <= 1))
    assert (tmp_path / f"next_purchase_{AS_OF}.joblib").exists()
    # Stored as arrays and read back, the scorer gives scikit-learn's probabilities to the bit, with Platt's and
    # with an isotonic calibration (missing values included: days_since_open is empty).
    assert np.array_equal(_portable(outcome.scorer).probabilities(score), outcome.probabilities)
    booster = outcome.scorer.model.booster
    raw = booster.predict_proba(train[outcome.scorer.features].to_numpy(dtype=float))[:, 1]
    isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y_train)
    scorer = classifier.Scorer("classifier", outcome.scorer.features,
                               model=classifier.CalibratedBooster(booster, isotonic))
    assert np.array_equal(_portable(scorer).probabilities(score), scorer.probabilities(score))


def _portable(scorer: classifier.Scorer) -> portable.PortableScorer:
    return portable.loads(portable.dumps(scorer))


def _bgnbd_world(rng: np.random.Generator, n: int, cutoff: dt.date, offset: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Buyers who churn exactly as BG/NBD says, and browsing that tells nothing: BG/NBD is the best scorer."""
    frame, _ = _window(rng, n, cutoff, offset)
    frame["days_since_browse"] = np.nan
    return frame, (rng.random(n) >= frame["bgnbd_p_purchase"].to_numpy()).astype(int)


def test_without_a_bgnbd_fit_on_the_day_a_baseline_that_can_score_is_used(tmp_path):
    """BG/NBD did not converge at as_of (and had no earlier good fit): its columns are empty there, so
    the BG/NBD baseline may not score, however well it did on the evaluation window."""
    rng = np.random.default_rng(5)
    parts = [_bgnbd_world(rng, 1500, AS_OF - dt.timedelta(days=60 + 30 * k), 10_000 * k) for k in range(3)]
    train = pd.concat([f for f, _ in parts], ignore_index=True)
    y_train = np.concatenate([y for _, y in parts])
    evaluate, y_eval = _bgnbd_world(rng, 4000, AS_OF - dt.timedelta(days=30), 90_000)
    score, _ = _bgnbd_world(rng, 200, AS_OF, 95_000)
    score = score.assign(bgnbd_p_purchase=np.nan, bgnbd_p_alive=np.nan, bgnbd_expected_purchases=np.nan)
    outcome = classifier.run_task(classifier.CHURN, train, evaluate, score, y_train=y_train, y_eval=y_eval,
                                  model_dir=tmp_path, as_of=AS_OF, windows={})
    auc = {k: v["roc_auc"] for k, v in outcome.metrics.items() if isinstance(v, dict)}
    assert auc["baseline_bgnbd_expected_purchases"] >= auc["classifier"], auc  # BG/NBD won on the evaluation window ...
    assert outcome.used == "recency", outcome.message      # ... but cannot score today
    assert np.isfinite(outcome.probabilities).all()
    assert np.array_equal(_portable(outcome.scorer).probabilities(score), outcome.probabilities)


def test_a_winning_baseline_publishes_probabilities_in_its_own_order(tmp_path):
    """The published probabilities of a baseline rank buyers exactly as the baseline does (no ties added),
    so the AUC that made it win is the AUC of what is published."""
    rng = np.random.default_rng(5)
    parts = [_bgnbd_world(rng, 1500, AS_OF - dt.timedelta(days=60 + 30 * k), 10_000 * k) for k in range(3)]
    train = pd.concat([f for f, _ in parts], ignore_index=True)
    y_train = np.concatenate([y for _, y in parts])
    evaluate, y_eval = _bgnbd_world(rng, 4000, AS_OF - dt.timedelta(days=30), 90_000)
    score, _ = _bgnbd_world(rng, 500, AS_OF, 95_000)
    outcome = classifier.run_task(classifier.CHURN, train, evaluate, score, y_train=y_train, y_eval=y_eval,
                                  model_dir=tmp_path, as_of=AS_OF, windows={})
    assert outcome.used == "bgnbd_expected_purchases", outcome.message
    expected = score["bgnbd_expected_purchases"].to_numpy()
    p = outcome.probabilities
    order = np.argsort(expected, kind="stable")
    assert np.all(np.diff(p[order]) <= 1e-12)           # fewer expected purchases, higher churn probability
    assert len(np.unique(np.round(p, 12))) == len(np.unique(np.round(expected, 12)))
    assert abs(p.mean() - y_train.mean()) < 0.05         # calibrated in the large
    score.loc[::7, "bgnbd_expected_purchases"] = np.nan   # read as the input's training median
    assert np.array_equal(_portable(outcome.scorer).probabilities(score), outcome.scorer.probabilities(score))


def test_the_charts_show_scikit_learns_calibration_bins_and_the_exact_gains():
    from sklearn.calibration import calibration_curve

    from crm_pipeline.predict import evaluation

    rng = np.random.default_rng(3)
    p = rng.random(5_000)
    y = (rng.random(5_000) < p).astype(int)
    for ours, theirs in zip(evaluation.calibration_curve(y, p), calibration_curve(y, p, n_bins=10, strategy="quantile")):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    share, captured = evaluation.gains(y, p)
    order = np.argsort(-p, kind="stable")
    assert share[0] == captured[0] == 0 and captured[-1] == 1.0
    assert captured[10] == y[order[:500]].sum() / y.sum()      # the top 10% of 5,000: exactly the top 500
    assert np.all(np.diff(captured) >= 0)
