"""The predict stage's entry point: features, RFM, BG/NBD + Gamma-Gamma CLV and the classifiers for one as-of date.

`run_predictions` brings the `features`, `predictions` and `model_runs` rows of `as_of` up to date
in one transaction. The models come from the training day of `as_of` (`cadence`): trained there on the
complete days before it (`cadence.data_through`: a drop of the day's own records does not train again) and
stored in `predict_models` when that day's stored models are missing, stale or a full refresh is
asked for, otherwise read back and reused. Between training days a run follows new data
(`incremental`): only the contacts new records touched are computed from their records, the others
are carried from the last run's features, and a drop on the same day rescores only the touched
buyers; a new day scores every buyer from a narrow read of the day's features, since BG/NBD's age
moves for everyone. A BG/NBD or Gamma-Gamma fit that does not
converge is recorded as `not_converged` and the latest good parameters of an earlier training day are
used instead; without any, those columns stay empty. Risk bands are shares of the day's scored buyers
(`risk`); with the generator's truth at hand the churn score is also judged against true dropout
(`truth`), in the churn classifier's `model_runs` metrics.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.metadata
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from threadpoolctl import threadpool_limits

from crm_pipeline.predict import bgnbd, cadence, classifier, gamma_gamma, incremental, portable, rfm
from crm_pipeline.predict.features import (DAY, add_to_day, buyers_at, carry_to_day, compute_features, create_day,
                                           cutoff_of, day_batches, feature_batches, features_of, first_purchase_after,
                                           training_windows)
from crm_pipeline.predict.risk import risk_bands
from crm_pipeline.predict.truth import evaluate_churn
from crm_pipeline.profiles.sql import day_number
from crm_pipeline.step_clock import StepClock
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.predict_schema import (create_predict_tables, features, model_runs, predict_models,
                                                   predictions)

CHURN_DAYS = 90
PREDICT_MODELS = ("bgnbd", "gamma_gamma", "churn_classifier", "next_purchase_classifier")
# Contacts per batch: the features and model arrays of one batch are what scoring holds at once; across
# batches only the columns the day's rankings read (`_RANKED_INPUTS`) and the scores are kept.
SCORE_BATCH_ROWS = 50_000
_RANKED_INPUTS = ["contact_id", "recency_days", "purchase_count", "monetary", "frequency"]
_SCORES = ["p_alive", "e1", "e2", "churn", "p30", "wait_days", "clv"]
# The tables a run writes rows of (its `rows_written`): none on a re-run of the day with nothing new.
_WRITTEN = ("features", "predictions", "model_runs")
# Part of the settings key: raise it when a change to the training code must retrain the stored models.
MODEL_VERSION = 3


@dataclass
class Models:
    """The models of one training day, freshly trained or read back from `predict_models`."""
    trained_on: dt.date
    rows: dict[str, dict]                       # model -> its predict_models row
    outcomes: dict[str, classifier.TaskOutcome]
    retrained: bool
    reason: str
    fit_seconds: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""                      # the training inputs' digest they were checked against

    def used_params(self, model: str) -> dict | None:
        return json.loads(self.rows[model]["metrics"]).get("used_params")

    def load_scorers(self) -> None:
        """Read back the stored scorers not yet in memory, as NumPy arrays (`portable`): a run that only scores
        never imports scikit-learn."""
        for outcome in self.outcomes.values():
            estimator = self.rows[f"{outcome.task}_classifier"]["estimator"]
            if outcome.scorer is None and estimator:
                outcome.scorer = portable.loads(base64.b64decode(estimator))


def _previous_params(conn: sa.Connection, model: str, day: dt.date) -> tuple[dict | None, str | None]:
    row = conn.execute(sa.select(predict_models.c.params, predict_models.c.trained_on)
                       .where(predict_models.c.model == model, predict_models.c.status == "ok",
                              predict_models.c.trained_on < day)
                       .order_by(predict_models.c.trained_on.desc()).limit(1)).first()
    return (json.loads(row.params), row.trained_on.isoformat()) if row else (None, None)


def fit_with_fallback(conn, model: str, day: dt.date, fit) -> tuple[dict | None, str | None]:
    """The parameters to use: this fit's if it converged, else the latest good ones of an earlier training day."""
    if fit.converged:
        return fit.params, day.isoformat()
    return _previous_params(conn, model, day)


def _fit_row(model: str, fit, used: dict | None, used_from: str | None, extra: dict) -> dict:
    status = "ok" if fit.converged else "not_converged"
    message = fit.message if fit.converged else (
        f"{fit.message}; using parameters trained on {used_from}" if used else f"{fit.message}; no good parameters yet")
    metrics = {"n": fit.n, "iterations": fit.iterations, "used_params": used, "used_params_from": used_from, **extra}
    ll = fit.log_likelihood if np.isfinite(fit.log_likelihood) else None
    return {"model": model, "params": json.dumps(fit.params), "log_likelihood": ll, "metrics": json.dumps(metrics),
            "status": status, "message": message, "estimator": None}


def _bgnbd_at(frame: pd.DataFrame, maxiter: int = 500):
    buyers = frame[frame["purchase_count"] > 0]
    return bgnbd.fit(buyers["frequency"], buyers["t_x_weeks"], buyers["T_weeks"], maxiter=maxiter)


def _plan(conn, day: dt.date) -> tuple[dict, int, str | None]:
    """Evaluation and training cutoffs per task, the training sample step, or why there is too little history
    (all from the orders up to `day`, the last complete day, so later orders do not change what is trained)."""
    first, customers = conn.execute(sa.text(
        "SELECT MIN(o.ordered_at), COUNT(DISTINCT m.contact_id) FROM stg_orders o "
        "JOIN identity_map m ON m.entity = 'orders' AND m.brand = o._brand AND m.source_key = o.order_id "
        "WHERE o.ordered_at < :cutoff"), {"cutoff": cutoff_of(day)}).one()
    history_days = 0 if first is None else day_number(day) - day_number(first.date())
    reason = classifier.too_little_history(history_days, CHURN_DAYS)
    if reason:
        return {}, 1, reason
    plan = {t.name: classifier.cutoffs(t, day) for t in classifier.TASKS}
    return plan, classifier.sample_every(int(customers or 0)), None


def _classifiers(conn, through: dt.date, buyers: pd.DataFrame, bg_params: dict | None, model_dir: Path,
                 plan: dict, windows: pd.DataFrame, every: int, reason: str | None, maxiter: int,
                 trained_on: dt.date) -> dict:
    """Both classifier tasks trained on the windows before `through` (the last complete day) and judged on the
    last one, whose labels end on `through`, or why skipped; model files are named by `trained_on`.

    BG/NBD is refitted at each cutoff on that cutoff's data only (no look-ahead). A cutoff whose
    fit does not converge gets no BG/NBD columns: the classifier trains without them and the
    BG/NBD baseline is reported as unable to score there, never crashed on.
    """
    reason = reason or classifier.too_few_buyers(len(buyers))
    if reason:
        return {t.name: classifier.TaskOutcome(t.name, "skipped", "none", reason) for t in classifier.TASKS}
    first_after = first_purchase_after(conn, sorted(set(windows["as_of"])), through)
    by_cutoff = {c: f.reset_index(drop=True) for c, f in windows.groupby("as_of", sort=True)}
    params = {}
    for cutoff, frame in by_cutoff.items():
        fit = _bgnbd_at(frame, maxiter)
        params[cutoff] = fit.params if fit.converged else None   # never parameters fitted on later data
    outcomes = {}
    for task in classifier.TASKS:
        evaluate_at, train_at = plan[task.name]
        train_at = [c for c in train_at if c in by_cutoff]
        if evaluate_at not in by_cutoff or not train_at:
            outcomes[task.name] = classifier.TaskOutcome(task.name, "skipped", "none",
                                                         f"{task.name}: no buyers at a training or evaluation cutoff")
            continue
        prepared = {c: classifier.add_model_columns(by_cutoff[c], params[c], task.label_days)
                    for c in (evaluate_at, *train_at)}
        train = pd.concat([prepared[c] for c in train_at], ignore_index=True)
        evaluate = prepared[evaluate_at]
        reference = classifier.baseline_inputs(buyers, bg_params, task.label_days)
        meta = {"train_cutoffs": [c.isoformat() for c in train_at], "eval_cutoff": evaluate_at.isoformat(),
                "label_days": task.label_days, "sample_every": every}
        outcomes[task.name] = classifier.train_task(
            task, train, evaluate, reference, y_train=classifier.labels(train, first_after, task),
            y_eval=classifier.labels(evaluate, first_after, task), model_dir=model_dir, as_of=trained_on,
            windows=meta)
    return outcomes


def _train(conn, day: dt.date, buyers: pd.DataFrame, windows: pd.DataFrame, plan: dict, every: int,
           reason: str | None, model_dir: Path, maxiter: int) -> tuple[dict[str, dict], dict, dict]:
    """Fit BG/NBD and Gamma-Gamma on `buyers` (at the last complete day before training day `day`) and train the
    classifiers: predict_models rows."""
    x, t_x, T = (buyers[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))
    bg_fit = bgnbd.fit(x, t_x, T, maxiter=maxiter)
    bg_params, bg_from = fit_with_fallback(conn, "bgnbd", day, bg_fit)
    gg_fit = gamma_gamma.fit(buyers["frequency"], buyers["monetary_repeat"])
    gg_params, gg_from = fit_with_fallback(conn, "gamma_gamma", day, gg_fit)
    outcomes = _classifiers(conn, cadence.data_through(day), buyers, bg_params, model_dir, plan, windows, every,
                            reason, maxiter, trained_on=day)
    rows = {"bgnbd": _fit_row("bgnbd", bg_fit, bg_params, bg_from, {}),
            "gamma_gamma": _fit_row("gamma_gamma", gg_fit, gg_params, gg_from, {})}
    for outcome in outcomes.values():
        estimator = None
        if outcome.scorer is not None:
            stored = portable.dumps(outcome.scorer)
            estimator = base64.b64encode(stored).decode("ascii")
            # this run scores with what later runs read back: the day's predictions are the same either way
            outcome.scorer = portable.loads(stored)
        rows[f"{outcome.task}_classifier"] = {
            "model": f"{outcome.task}_classifier", "params": json.dumps({"model_path": outcome.model_path,
                                                                         "used": outcome.used}),
            "log_likelihood": None, "metrics": json.dumps(outcome.metrics, default=float), "status": outcome.status,
            "message": outcome.message, "estimator": estimator}
    return rows, outcomes, {"bgnbd": bg_fit.seconds, "gamma_gamma": gg_fit.seconds}


def _stored(conn, day: dt.date) -> dict[str, dict]:
    result = conn.execute(sa.select(predict_models).where(predict_models.c.trained_on == day))
    return {row["model"]: dict(row) for row in result.mappings()}


def _outcomes_of(rows: dict[str, dict]) -> dict[str, classifier.TaskOutcome]:
    """The classifier outcomes stored for a training day; their scorers are read back when a batch is scored
    (`Models.load_scorers`)."""
    outcomes = {}
    for task in classifier.TASKS:
        row = rows[f"{task.name}_classifier"]
        params = json.loads(row["params"])
        outcomes[task.name] = classifier.TaskOutcome(task.name, row["status"], params["used"], row["message"],
                                                     json.loads(row["metrics"]), model_path=params["model_path"])
    return outcomes


def _sklearn_on_one_thread():
    """scikit-learn's compiled parts loaded, then their OpenMP pool held to one thread (a context manager):
    threadpoolctl limits only the libraries already loaded, and scikit-learn is imported only by runs that
    train, after the run's first limit."""
    import sklearn.ensemble  # noqa: F401 (loads its OpenMP runtime)

    return threadpool_limits(limits=1)


def _models(conn, as_of: dt.date, *, plan: incremental.Plan, retrain_days: int, cadence_start: dt.date | None,
            full_refresh: bool, model_dir: Path, maxiter: int, threads: ExitStack,
            clock: StepClock) -> tuple[Models, pd.DataFrame | None]:
    """The models for `as_of` (trained now or read back) and, when a full run trains them, the features of `as_of`
    of every contact, computed in the training pass with the windows. The training inputs' digest is read from the
    last run when no record changed since (`Plan.known_fingerprint`), else computed over the staged history.
    Training reads complete days only (`cadence.data_through`): a drop of the training day's own records
    leaves the digest, and so the models, as they are."""
    day = cadence.training_day(as_of, retrain_days=retrain_days, start=cadence_start)
    through = cadence.data_through(day)
    # scikit-learn's version too: the stored trees and calibration are read as the version that fitted them made them.
    key = cadence.settings_key(version=MODEL_VERSION, sklearn=importlib.metadata.version("scikit-learn"),
                               bgnbd_maxiter=maxiter,
                               churn_days=CHURN_DAYS,
                               min_buyers=classifier.MIN_BUYERS, train_windows=classifier.TRAIN_WINDOWS,
                               window_step_days=classifier.WINDOW_STEP_DAYS,
                               max_rows_per_window=classifier.MAX_ROWS_PER_WINDOW,
                               holdout_share=classifier.HOLDOUT_SHARE, isotonic_min_rows=classifier.ISOTONIC_MIN_ROWS)
    with clock.step("fingerprint"):
        fingerprint = plan.known_fingerprint(conn, day) or cadence.training_fingerprint(
            conn, day, None if plan.full else (incremental.RECOMPUTE, incremental.RECOMPUTE_MAP))
    stored = _stored(conn, day)
    decision = cadence.decide(stored, PREDICT_MODELS, fingerprint=fingerprint, key=key, full_refresh=full_refresh)
    if not decision.retrain:
        return Models(day, stored, _outcomes_of(stored), False, decision.reason, fingerprint=fingerprint), None
    with clock.step("train: import"):
        threads.enter_context(_sklearn_on_one_thread())
    with clock.step("train: windows"):   # a full run's day features come in the same pass
        cutoffs, every, reason = _plan(conn, through)
        training = sorted({c for evaluate_at, train_at in cutoffs.values() for c in (evaluate_at, *train_at)})
        # The sampled buyers at the classifier's cutoffs; the fits' buyers at the last complete day from the orders
        # alone. A full run computes everyone at as_of in the same pass (one scan of the records); an incremental
        # run, which carries most contacts' features, reads the sampled buyers' records only.
        feats = None
        if plan.full:
            frame = compute_features(conn, as_of, training=training, every=every, sample_until=through)
            feats = frame[frame["as_of"] == as_of].reset_index(drop=True)
            windows = frame[frame["as_of"] != as_of].reset_index(drop=True)
        else:
            windows = training_windows(conn, training, every=every, sample_until=through)
        buyers = buyers_at(conn, through)
    with clock.step("train: fit"):
        rows, outcomes, seconds = _train(conn, day, buyers, windows, cutoffs, every, reason, model_dir, maxiter)
    for row in rows.values():
        row.update(trained_on=day, input_fingerprint=fingerprint, settings_key=key)
    # Training again for the same day replaces its models (a back-dated change, a full refresh).
    conn.execute(predict_models.delete().where(predict_models.c.trained_on == day))
    conn.execute(predict_models.insert(), list(rows.values()))
    return Models(day, rows, outcomes, True, decision.reason, seconds, fingerprint), feats


def _score_batch(batch: pd.DataFrame, models: Models, horizons, clv_months: int,
                 monthly_discount: float) -> dict[str, np.ndarray]:
    """The model scores of one batch of buyers with the stored parameters and scorers."""
    bg_params, gg_params = models.used_params("bgnbd"), models.used_params("gamma_gamma")
    x, t_x, T = (batch[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))
    nan = np.full(len(batch), np.nan)
    out = dict.fromkeys(_SCORES, nan)
    if batch.empty:
        return out
    models.load_scorers()
    if bg_params:
        out.update(p_alive=bgnbd.p_alive(bg_params, x, t_x, T),
                   e1=bgnbd.expected_purchases(bg_params, x, t_x, T, horizons[0] / 7.0),
                   e2=bgnbd.expected_purchases(bg_params, x, t_x, T, horizons[1] / 7.0),
                   churn=bgnbd.p_no_purchase(bg_params, x, t_x, T, CHURN_DAYS / 7.0),
                   p30=1.0 - bgnbd.p_no_purchase(bg_params, x, t_x, T, 30 / 7.0),
                   wait_days=bgnbd.median_wait_if_alive(bg_params, x, T) * 7.0)
        if gg_params:
            out["clv"] = gamma_gamma.clv(bg_params, gg_params, x, t_x, T, batch["monetary_repeat"].to_numpy(dtype=float),
                                         months=clv_months, monthly_discount=monthly_discount)
    for task, column in ((classifier.CHURN, "churn"), (classifier.NEXT_PURCHASE, "p30")):
        outcome = models.outcomes[task.name]
        if outcome.status == "ok":
            out[column] = outcome.scorer.probabilities(classifier.add_model_columns(batch, bg_params, task.label_days))
    return out


def _scored(buyers: pd.DataFrame, models: Models, as_of: dt.date, horizons, clv_months: int,
            monthly_discount: float) -> pd.DataFrame:
    """One batch of buyers reduced to what the day's rankings read, beside its model scores."""
    scores = _score_batch(buyers, models, horizons, clv_months, monthly_discount)
    wait_days = scores.pop("wait_days")
    next_date = pd.Series(pd.Timestamp(as_of) + pd.to_timedelta(
        np.where(wait_days <= 365, np.ceil(wait_days), np.nan), unit="D")).dt.date
    return buyers[_RANKED_INPUTS].reset_index(drop=True).assign(**scores, next_date=next_date.to_numpy())


def _kept_scores(conn, as_of: dt.date) -> pd.DataFrame:
    """The stored scores of the day's buyers a same-day run did not recompute, beside their ranking inputs."""
    return read_frame(conn, sa.text(f"""
        SELECT f.contact_id, f.recency_days, f.purchase_count, f.monetary, f.frequency, p.p_alive,
               p.expected_purchases_90d AS e1, p.expected_purchases_365d AS e2, p.churn_probability AS churn,
               p.p_purchase_30d AS p30, p.predicted_clv AS clv, p.expected_next_order_date AS next_date
        FROM features f JOIN predictions p ON p.as_of = f.as_of AND p.contact_id = f.contact_id
        WHERE f.as_of = :as_of AND f.purchase_count > 0
          AND f.contact_id NOT IN (SELECT contact_id FROM {incremental.RECOMPUTE})
    """).bindparams(as_of=as_of))


def _scored_by(models: Models) -> str:
    """What scores churn with these models: the classifier, BG/NBD or RFM alone."""
    churn_outcome = models.outcomes["churn"]
    if churn_outcome.status == "ok":
        return {"classifier": "classifier", "bgnbd_expected_purchases": "bgnbd", "recency": "rfm_only"}[
            churn_outcome.used]
    return "bgnbd" if models.used_params("bgnbd") else "rfm_only"


def _predictions(scored: pd.DataFrame, models: Models, as_of: dt.date) -> tuple[pd.DataFrame, str]:
    """The `predictions` rows of the day's buyers from their scores: RFM and risk ranks over all of them."""
    scored_by = _scored_by(models)
    out = rfm.score(scored)
    out.insert(0, "as_of", as_of)
    out = out.assign(p_alive=scored["p_alive"].to_numpy(), expected_purchases_90d=scored["e1"].to_numpy(),
                     expected_purchases_365d=scored["e2"].to_numpy(), predicted_clv=scored["clv"].to_numpy(),
                     churn_probability=scored["churn"].to_numpy(), p_purchase_30d=scored["p30"].to_numpy(),
                     expected_next_order_date=scored["next_date"].to_numpy(), scored_by=scored_by,
                     low_history=(scored["frequency"] == 0).to_numpy())
    out = out.join(risk_bands(out["churn_probability"], out["contact_id"]))
    out["expected_next_order_date"] = out["expected_next_order_date"].where(out["expected_next_order_date"].notna(),
                                                                            None)
    return out, scored_by


def _day_runs(models: Models, as_of: dt.date, horizons, clv_months: int, monthly_discount: float,
              truth: dict) -> list[dict]:
    """The `model_runs` rows of `as_of`: each model used, from the training day it was trained on."""
    extra = {"bgnbd": {"horizons_days": list(horizons)},
             "gamma_gamma": {"clv_months": clv_months, "monthly_discount": monthly_discount},
             "churn_classifier": {"truth": truth}}
    runs = []
    for model in PREDICT_MODELS:
        row = models.rows[model]
        metrics = {**json.loads(row["metrics"]), "trained_on": models.trained_on.isoformat(),
                   "model_age_days": (as_of - models.trained_on).days, **extra.get(model, {})}
        runs.append({"model": model, "as_of": as_of, "time_unit": "week" if model in ("bgnbd", "gamma_gamma") else "day",
                     "params": row["params"], "log_likelihood": row["log_likelihood"],
                     "metrics": json.dumps(metrics, default=float), "status": row["status"], "message": row["message"]})
    return runs


def run_predictions(engine: sa.Engine, *, as_of: dt.date, model_dir: Path, horizons=(90, 365), clv_months: int = 12,
                    monthly_discount: float = 0.01, bgnbd_maxiter: int = 500, truth_dir: Path | None = None,
                    retrain_days: int = 1, cadence_start: dt.date | None = None, full_refresh: bool = False) -> dict:
    """Write features, predictions and model_runs for `as_of`; return figures, metrics, SVG charts (when trained),
    `training`: whether the models were trained or reused, their training day and age, and `run`: full or
    incremental, why, the contacts computed from their records and the buyers scored (as `predict_builds` logs).

    The models are those of the training day `cadence.training_day(as_of, retrain_days, cadence_start)`
    (every day with the defaults). NumPy's BLAS and scikit-learn's OpenMP run on one thread here: beside
    DuckDB's own threads and other runs on a small machine, their spinning worker threads made the stage
    several times slower (bench/predict.py on a busy 2-core machine: the churn classifier at 100k took
    95 s on 2 threads, 16 s on one).
    """
    if len(horizons) != 2:
        raise ValueError("horizons: two day counts, for expected_purchases_90d and expected_purchases_365d")
    clock = StepClock()
    with ExitStack() as threads:
        threads.enter_context(threadpool_limits(limits=1))
        create_predict_tables(engine)
        with engine.begin() as conn:
            with clock.step("plan"):
                plan = incremental.plan_run(conn, as_of, full_refresh=full_refresh)
                reasons = {} if plan.full else incremental.select_recompute(conn, plan, as_of)
            models, feats = _models(conn, as_of, plan=plan, retrain_days=retrain_days, cadence_start=cadence_start,
                                    full_refresh=full_refresh, model_dir=model_dir, maxiter=bgnbd_maxiter,
                                    threads=threads, clock=clock)
            if _unchanged(conn, as_of, plan, models):
                out, truth = _stored_day(conn, as_of)
                scored_by = out["scored_by"].iloc[0] if len(out) else _scored_by(models)
                day_contacts, recomputed, rescored, written = _day_count(conn, as_of), 0, 0, dict.fromkeys(_WRITTEN, 0)
            else:
                # New models score every buyer: the day table then holds everyone, even on the same day.
                only_recomputed = as_of == plan.previous_as_of and not plan.full and not models.retrained
                with clock.step("features"):
                    written = dict(features=_day_features(conn, as_of, plan, feats, everyone=not only_recomputed))
                reasons = {} if plan.full else reasons
                day_contacts = _day_count(conn, as_of)
                with clock.step("score"):
                    parts = [_scored(batch, models, as_of, horizons, clv_months, monthly_discount)
                             for batch in day_batches(conn, SCORE_BATCH_ROWS, "purchase_count > 0")]
                    rescored = sum(len(p) for p in parts)
                    if only_recomputed:  # the same day's other buyers keep their scores; the day's ranks are redone
                        parts.append(_kept_scores(conn, as_of))
                    scored = (pd.concat(parts, ignore_index=True).sort_values("contact_id", ignore_index=True)
                              if parts else pd.DataFrame(columns=[*_RANKED_INPUTS, *_SCORES, "next_date"]))
                    out, scored_by = _predictions(scored, models, as_of)
                    truth = evaluate_churn(conn, truth_dir, as_of,
                                           out.assign(recency_days=scored["recency_days"].to_numpy()))
                # For backfills and re-runs, replace everything of this as_of in one transaction.
                with clock.step("write"):
                    conn.execute(predictions.delete().where(predictions.c.as_of == as_of))
                    conn.execute(model_runs.delete().where(model_runs.c.as_of == as_of,
                                                           model_runs.c.model.in_(PREDICT_MODELS)))
                    columns = [c.name for c in predictions.columns]
                    insert_arrow(conn, predictions, pa.Table.from_pandas(out[columns], preserve_index=False))
                    day_runs = _day_runs(models, as_of, horizons, clv_months, monthly_discount, truth)
                    conn.execute(model_runs.insert(), day_runs)
                    written.update(predictions=len(out), model_runs=len(day_runs))
                    recomputed = day_contacts if plan.full else incremental.recompute_count(conn)
                    DAY.drop(conn)
            models.outcomes["churn"].metrics["truth"] = truth
            incremental.log_run(conn, as_of, plan, recomputed, rescored, models.trained_on, models.fingerprint)
            incremental.drop_plan_tables(conn)
    run = {"mode": "full" if plan.full else "incremental", "reason": plan.reason, "contacts_recomputed": recomputed,
           "contacts_rescored": rescored, "recomputed_because": reasons, "rows_written": written}
    return {**_result(models, as_of, day_contacts, out, scored_by, truth), "run": run, "step_seconds": clock.steps}


def _day_count(conn, as_of: dt.date) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(features).where(features.c.as_of == as_of)).scalar_one()


def _unchanged(conn, as_of: dt.date, plan: incremental.Plan, models: Models) -> bool:
    """Whether the day's rows already stand as this run would write them: a re-run of the last run's day with
    the same models and no contact to recompute (the ranks are over the same scores)."""
    return (not plan.full and as_of == plan.previous_as_of and not models.retrained
            and models.trained_on == plan.previous_trained_on and not incremental.recompute_count(conn))


def _stored_day(conn, as_of: dt.date) -> tuple[pd.DataFrame, dict]:
    """The day's stored predictions and the churn classifier's judgement against true dropout, as last written."""
    out = read_frame(conn, sa.select(predictions).where(predictions.c.as_of == as_of))
    metrics = conn.execute(sa.select(model_runs.c.metrics).where(
        model_runs.c.as_of == as_of, model_runs.c.model == "churn_classifier")).scalar_one_or_none()
    return out, (json.loads(metrics).get("truth") if metrics else None) or {}


def _day_features(conn, as_of: dt.date, plan: incremental.Plan, feats: pd.DataFrame | None, *,
                  everyone: bool) -> int:
    """Fill the day table with the features at `as_of` of the contacts to score (of every contact when `everyone`)
    and write them to `features`; returns the rows written (only the recomputed contacts' on a same-day run:
    `incremental.select_recompute`).

    A full run computes everyone (the frame a training pass holds, else streamed from SQL) and replaces the day; an incremental one computes the
    recomputed contacts from their records: on a new day it carries the others from the last run's day and replaces
    the day, on the same day it rewrites only the recomputed contacts' rows (the others' rows stand, and are
    carried into the day table unmoved when new models score everyone).
    """
    create_day(conn)
    same_day = not plan.full and as_of == plan.previous_as_of
    if plan.full:
        batches = feature_batches(conn, as_of, SCORE_BATCH_ROWS) if feats is None else (
            feats.iloc[i:i + SCORE_BATCH_ROWS] for i in range(0, len(feats), SCORE_BATCH_ROWS))
        for batch in batches:
            add_to_day(conn, batch)
    else:
        if not same_day or everyone:
            carry_to_day(conn, plan.previous_as_of, as_of, incremental.RECOMPUTE)
        if incremental.recompute_count(conn):
            add_to_day(conn, features_of(conn, as_of, incremental.RECOMPUTE_MAP))
    columns = ", ".join(f'"{c.name}"' for c in features.columns)
    scope = f" AND contact_id IN (SELECT contact_id FROM {incremental.RECOMPUTE})" if same_day else ""
    conn.execute(sa.text(f"DELETE FROM features WHERE as_of = :as_of{scope}"), {"as_of": as_of})
    conn.execute(sa.text(f"INSERT INTO features ({columns}) SELECT {columns} FROM {DAY.name} WHERE 1 = 1{scope}"))
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {DAY.name} WHERE 1 = 1{scope}")).scalar_one()


def _fit_result(models: Models, model: str) -> dict:
    row = models.rows[model]
    metrics = json.loads(row["metrics"])
    return {"params": json.loads(row["params"]), "log_likelihood": row["log_likelihood"],
            "converged": row["status"] == "ok", "used_params": metrics.get("used_params"),
            "used_params_from": metrics.get("used_params_from"), "message": row["message"],
            "seconds": models.fit_seconds.get(model)}


def _result(models: Models, as_of: dt.date, contacts: int, out: pd.DataFrame, scored_by: str,
            truth: dict) -> dict:
    clv = out["predicted_clv"].to_numpy(dtype=float)
    return {
        "as_of": as_of.isoformat(), "contacts_with_features": contacts, "customers_scored": len(out),
        "training": {"retrained": models.retrained, "reason": models.reason,
                     "trained_on": models.trained_on.isoformat(), "model_age_days": (as_of - models.trained_on).days},
        "bgnbd": _fit_result(models, "bgnbd"), "gamma_gamma": _fit_result(models, "gamma_gamma"),
        "classifiers": {k: {"status": o.status, "used": o.used, "message": o.message, "metrics": o.metrics,
                            "model_path": o.model_path} for k, o in models.outcomes.items()},
        "segments": out["rfm_segment"].value_counts().to_dict(),
        "risk_bands": {b: int(n) for b, n in out["risk_band"].value_counts().items()},
        "churn_truth": truth,
        "scored_by": str(scored_by),
        "mean_predicted_clv": float(np.nanmean(clv)) if len(clv) and np.isfinite(clv).any() else None,
        "charts": {k: v for o in models.outcomes.values() for k, v in o.charts.items()},
    }


def evaluation_table(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """One row per model and scorer of `as_of`: status, AUC, log loss, Brier, lift, capture, and the day the
    model was trained on (for the CLI)."""
    runs = read_frame(conn, sa.select(model_runs).where(model_runs.c.as_of == as_of).order_by(model_runs.c.model))
    rows = []
    for run in runs.itertuples():
        metrics = json.loads(run.metrics) if isinstance(run.metrics, str) else {}
        scorers = {k: v for k, v in metrics.items() if isinstance(v, dict) and "roc_auc" in v}
        trained = {"trained_on": metrics.get("trained_on")}
        if not scorers:
            rows.append({"model": run.model, "scorer": "", "status": run.status, "used": "",
                         "log_likelihood": run.log_likelihood, **trained, "message": run.message})
        for name, m in scorers.items():
            rows.append({"model": run.model, "scorer": name, "status": run.status,
                         "used": "yes" if metrics.get("used") == name.removeprefix("baseline_") else "",
                         "n": m.get("n"), "roc_auc": m.get("roc_auc"), "log_loss": m.get("log_loss"),
                         "brier": m.get("brier"), "top_decile_lift": m.get("top_decile_lift"),
                         "top_decile_capture": m.get("top_decile_capture"), **trained, "message": run.message})
        truth = metrics.get("truth") or {}
        for name, auc in (truth.get("auc") or {}).items():   # against the generator's true dropout
            rows.append({"model": run.model, "scorer": f"vs_true_dropout:{name}", "status": truth.get("status"),
                         "used": "", "n": truth.get("matched_buyers"), "roc_auc": auc, "message": run.message})
    return pd.DataFrame(rows)
