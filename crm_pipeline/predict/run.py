"""The predict stage's entry point: features, RFM, BG/NBD + Gamma-Gamma CLV and the classifiers for one as-of date.

`run_predictions` replaces the `features`, `predictions` and `model_runs` rows of `as_of`
(delete-then-insert, one transaction). A BG/NBD or Gamma-Gamma fit that does not converge
is recorded as `not_converged` and the latest good parameters from `model_runs` (as_of <=
this date) are used instead; without any, those columns stay empty. Risk bands are shares of the
day's scored buyers (`risk`); with the generator's truth at hand the churn score is also judged
against true dropout (`truth`), in the churn classifier's `model_runs` metrics.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from threadpoolctl import threadpool_limits

from crm_pipeline.predict import bgnbd, classifier, gamma_gamma, rfm
from crm_pipeline.predict.risk import risk_bands
from crm_pipeline.predict.truth import evaluate_churn
from crm_pipeline.predict.features import compute_features, first_purchase_after, store_features
from crm_pipeline.profiles.sql import day_number
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.predict_schema import create_predict_tables, model_runs, predictions

CHURN_DAYS = 90
PREDICT_MODELS = ("bgnbd", "gamma_gamma", "churn_classifier", "next_purchase_classifier")


def _previous_params(conn: sa.Connection, model: str, as_of: dt.date) -> tuple[dict | None, str | None]:
    row = conn.execute(sa.select(model_runs.c.params, model_runs.c.as_of)
                       .where(model_runs.c.model == model, model_runs.c.status == "ok", model_runs.c.as_of <= as_of)
                       .order_by(model_runs.c.as_of.desc()).limit(1)).first()
    return (json.loads(row.params), row.as_of.isoformat()) if row else (None, None)


def _fit_row(model: str, as_of: dt.date, fit, used: dict | None, used_from: str | None, extra: dict) -> dict:
    status = "ok" if fit.converged else "not_converged"
    message = fit.message if fit.converged else (
        f"{fit.message}; using parameters from the run of {used_from}" if used else f"{fit.message}; no good parameters yet")
    metrics = {"n": fit.n, "iterations": fit.iterations, "seconds": round(fit.seconds, 3), "used_params": used,
               "used_params_from": used_from, **extra}
    ll = fit.log_likelihood if np.isfinite(fit.log_likelihood) else None
    return {"model": model, "as_of": as_of, "time_unit": "week", "params": json.dumps(fit.params), "log_likelihood": ll,
            "metrics": json.dumps(metrics), "status": status, "message": message}


def fit_with_fallback(conn, model: str, as_of: dt.date, fit) -> tuple[dict | None, str | None]:
    """The parameters to use: this fit's if it converged, else the latest good ones before the delete."""
    if fit.converged:
        return fit.params, as_of.isoformat()
    return _previous_params(conn, model, as_of)


def _bgnbd_at(frame: pd.DataFrame, maxiter: int = 500):
    buyers = frame[frame["purchase_count"] > 0]
    return bgnbd.fit(buyers["frequency"], buyers["t_x_weeks"], buyers["T_weeks"], maxiter=maxiter)


def _plan(conn, as_of: dt.date) -> tuple[dict, int, str | None]:
    """Evaluation and training cutoffs per task, the training sample step, or why there is too little history."""
    first = conn.execute(sa.text("SELECT MIN(ordered_at) FROM stg_orders")).scalar()
    history_days = 0 if first is None else day_number(as_of) - day_number(first.date())
    reason = classifier.too_little_history(history_days, CHURN_DAYS)
    if reason:
        return {}, 1, reason
    customers = conn.execute(sa.text("SELECT COUNT(DISTINCT contact_id) FROM identity_map WHERE entity = 'orders'"))
    plan = {t.name: classifier.cutoffs(t, as_of) for t in classifier.TASKS}
    return plan, classifier.sample_every(int(customers.scalar() or 0)), None


def _classifiers(conn, as_of: dt.date, scoring: pd.DataFrame, bg_params: dict | None, model_dir: Path,
                 plan: dict, windows: pd.DataFrame, every: int, reason: str | None, maxiter: int = 500) -> dict:
    """Both classifier tasks on the training/evaluation windows, or the reason they were skipped.

    BG/NBD is refitted at each cutoff on that cutoff's data only (no look-ahead). A cutoff whose
    fit does not converge gets no BG/NBD columns: the classifier trains without them and the
    BG/NBD baseline is reported as unable to score there, never crashed on.
    """
    reason = reason or classifier.too_few_buyers(len(scoring))
    if reason:
        return {t.name: classifier.TaskOutcome(t.name, "skipped", "none", reason) for t in classifier.TASKS}
    first_after = first_purchase_after(conn, sorted(set(windows["as_of"])), as_of)
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
        score = classifier.add_model_columns(scoring, bg_params, task.label_days)
        meta = {"train_cutoffs": [c.isoformat() for c in train_at], "eval_cutoff": evaluate_at.isoformat(),
                "label_days": task.label_days, "sample_every": every}
        outcomes[task.name] = classifier.run_task(
            task, train, evaluate, score, y_train=classifier.labels(train, first_after, task),
            y_eval=classifier.labels(evaluate, first_after, task), model_dir=model_dir, as_of=as_of, windows=meta)
    return outcomes


def run_predictions(engine: sa.Engine, *, as_of: dt.date, model_dir: Path, horizons=(90, 365), clv_months: int = 12,
                    monthly_discount: float = 0.01, bgnbd_maxiter: int = 500, truth_dir: Path | None = None) -> dict:
    """Write features, predictions and model_runs for `as_of`; return figures, metrics and PNG charts.

    NumPy's BLAS and scikit-learn's OpenMP run on one thread here: beside DuckDB's own threads
    and other runs on a small machine, their spinning worker threads made the stage several
    times slower (bench/predict.py on a busy 2-core machine: the churn classifier at 100k took
    95 s on 2 threads, 16 s on one).
    """
    with threadpool_limits(limits=1):
        return _run(engine, as_of, model_dir, horizons, clv_months, monthly_discount, bgnbd_maxiter, truth_dir)


def _run(engine, as_of, model_dir, horizons, clv_months, monthly_discount, bgnbd_maxiter, truth_dir) -> dict:
    if len(horizons) != 2:
        raise ValueError("horizons: two day counts, for expected_purchases_90d and expected_purchases_365d")
    create_predict_tables(engine)
    with engine.begin() as conn:
        plan, every, reason = _plan(conn, as_of)
        training = sorted({c for evaluate_at, train_at in plan.values() for c in (evaluate_at, *train_at)})
        # One pass: every contact at as_of, sampled buyers at the classifier's cutoffs.
        frame = compute_features(conn, as_of, training=training, every=every)
        feats = frame[frame["as_of"] == as_of].reset_index(drop=True)
        windows = frame[frame["as_of"] != as_of].reset_index(drop=True)
        store_features(conn, as_of, feats)
        n_features = len(feats)
        buyers = feats[feats["purchase_count"] > 0].reset_index(drop=True)
        x, t_x, T = (buyers[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))

        bg_fit = bgnbd.fit(x, t_x, T, maxiter=bgnbd_maxiter)
        bg_params, bg_from = fit_with_fallback(conn, "bgnbd", as_of, bg_fit)
        gg_fit = gamma_gamma.fit(buyers["frequency"], buyers["monetary_repeat"])
        gg_params, gg_from = fit_with_fallback(conn, "gamma_gamma", as_of, gg_fit)
        outcomes = _classifiers(conn, as_of, buyers, bg_params, model_dir, plan, windows, every, reason,
                                bgnbd_maxiter)

        out = rfm.score(buyers)
        out.insert(0, "as_of", as_of)
        n = len(buyers)
        nan = np.full(n, np.nan)
        if bg_params:
            alive = bgnbd.p_alive(bg_params, x, t_x, T)
            e1, e2 = (bgnbd.expected_purchases(bg_params, x, t_x, T, h / 7.0) for h in horizons)
            churn = bgnbd.p_no_purchase(bg_params, x, t_x, T, CHURN_DAYS / 7.0)
            p30 = 1.0 - bgnbd.p_no_purchase(bg_params, x, t_x, T, 30 / 7.0)
            wait_days = bgnbd.median_wait_if_alive(bg_params, x, T) * 7.0
            scored_by = "bgnbd"
        else:
            alive = e1 = e2 = churn = p30 = wait_days = nan
            scored_by = "rfm_only"
        clv = (gamma_gamma.clv(bg_params, gg_params, x, t_x, T, buyers["monetary_repeat"].to_numpy(dtype=float),
                               months=clv_months, monthly_discount=monthly_discount)
               if bg_params and gg_params else nan)
        churn_outcome, next_outcome = outcomes["churn"], outcomes["next_purchase"]
        if churn_outcome.status == "ok":
            churn = churn_outcome.probabilities
            scored_by = {"classifier": "classifier", "bgnbd_expected_purchases": "bgnbd",
                         "recency": "rfm_only"}[churn_outcome.used]
        if next_outcome.status == "ok":
            p30 = next_outcome.probabilities
        as_of_ts = pd.Timestamp(as_of)
        next_date = pd.Series(as_of_ts + pd.to_timedelta(np.where(wait_days <= 365, np.ceil(wait_days), np.nan),
                                                         unit="D")).dt.date
        out = out.assign(p_alive=alive, expected_purchases_90d=e1, expected_purchases_365d=e2, predicted_clv=clv,
                         churn_probability=churn, p_purchase_30d=p30, expected_next_order_date=next_date.to_numpy(),
                         scored_by=scored_by, low_history=(buyers["frequency"] == 0).to_numpy())
        out = out.join(risk_bands(out["churn_probability"], out["contact_id"]))
        out["expected_next_order_date"] = out["expected_next_order_date"].where(out["expected_next_order_date"].notna(),
                                                                                None)

        runs = [
            _fit_row("bgnbd", as_of, bg_fit, bg_params, bg_from, {"horizons_days": list(horizons)}),
            _fit_row("gamma_gamma", as_of, gg_fit, gg_params, gg_from,
                     {"clv_months": clv_months, "monthly_discount": monthly_discount}),
        ]
        truth = evaluate_churn(conn, truth_dir, as_of, out.assign(recency_days=buyers["recency_days"].to_numpy()))
        outcomes["churn"].metrics["truth"] = truth
        for outcome in outcomes.values():
            runs.append({"model": f"{outcome.task}_classifier", "as_of": as_of, "time_unit": "day", "params":
                         json.dumps({"model_path": outcome.model_path, "used": outcome.used}), "log_likelihood": None,
                         "metrics": json.dumps(outcome.metrics, default=float), "status": outcome.status,
                         "message": outcome.message})
        # For backfills and re-runs, replace everything of this as_of in one transaction.
        conn.execute(predictions.delete().where(predictions.c.as_of == as_of))
        conn.execute(model_runs.delete().where(model_runs.c.as_of == as_of, model_runs.c.model.in_(PREDICT_MODELS)))
        columns = [c.name for c in predictions.columns]
        insert_arrow(conn, predictions, pa.Table.from_pandas(out[columns], preserve_index=False))
        conn.execute(model_runs.insert(), runs)

    charts = {k: v for o in outcomes.values() for k, v in o.charts.items()}
    return {
        "as_of": as_of.isoformat(), "contacts_with_features": int(n_features), "customers_scored": int(n),
        "bgnbd": {"params": bg_fit.params, "log_likelihood": bg_fit.log_likelihood, "converged": bg_fit.converged,
                  "used_params": bg_params, "used_params_from": bg_from, "message": bg_fit.message},
        "gamma_gamma": {"params": gg_fit.params, "log_likelihood": gg_fit.log_likelihood,
                        "converged": gg_fit.converged, "used_params": gg_params, "used_params_from": gg_from,
                        "message": gg_fit.message},
        "classifiers": {k: {"status": o.status, "used": o.used, "message": o.message, "metrics": o.metrics,
                            "model_path": o.model_path} for k, o in outcomes.items()},
        "segments": out["rfm_segment"].value_counts().to_dict(),
        "risk_bands": {b: int(n) for b, n in out["risk_band"].value_counts().items()},
        "churn_truth": truth,
        "scored_by": str(scored_by),
        "mean_predicted_clv": float(np.nanmean(clv)) if n and np.isfinite(clv).any() else None,
        "charts": charts,
    }


def evaluation_table(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """One row per model and scorer of `as_of`: status, AUC, log loss, Brier, lift, capture (for the CLI)."""
    runs = read_frame(conn, sa.select(model_runs).where(model_runs.c.as_of == as_of).order_by(model_runs.c.model))
    rows = []
    for run in runs.itertuples():
        metrics = json.loads(run.metrics) if isinstance(run.metrics, str) else {}
        scorers = {k: v for k, v in metrics.items() if isinstance(v, dict) and "roc_auc" in v}
        if not scorers:
            rows.append({"model": run.model, "scorer": "", "status": run.status, "used": "",
                         "log_likelihood": run.log_likelihood, "message": run.message})
        for name, m in scorers.items():
            rows.append({"model": run.model, "scorer": name, "status": run.status,
                         "used": "yes" if metrics.get("used") == name.removeprefix("baseline_") else "",
                         "n": m.get("n"), "roc_auc": m.get("roc_auc"), "log_loss": m.get("log_loss"),
                         "brier": m.get("brier"), "top_decile_lift": m.get("top_decile_lift"),
                         "top_decile_capture": m.get("top_decile_capture"), "message": run.message})
        truth = metrics.get("truth") or {}
        for name, auc in (truth.get("auc") or {}).items():   # against the generator's true dropout
            rows.append({"model": run.model, "scorer": f"vs_true_dropout:{name}", "status": truth.get("status"),
                         "used": "", "n": truth.get("matched_buyers"), "roc_auc": auc, "message": run.message})
    return pd.DataFrame(rows)
