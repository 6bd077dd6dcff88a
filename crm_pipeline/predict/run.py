"""The predict stage's entry point: features, RFM, BG/NBD + Gamma-Gamma CLV and the classifiers for one as-of date.

`run_predictions` replaces the `features`, `predictions` and `model_runs` rows of `as_of`
(delete-then-insert, one transaction). A BG/NBD or Gamma-Gamma fit that does not converge
is recorded as `not_converged` and the latest good parameters from `model_runs` (as_of <=
this date) are used instead; without any, those columns stay empty.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.predict import bgnbd, classifier, gamma_gamma, rfm
from crm_pipeline.predict.features import (compute_features, day_number, purchase_days_between, read_features,
                                           write_features)
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.predict_schema import create_predict_tables, model_runs, predictions

CHURN_DAYS = 90
RISK_BANDS = ((0.3, "low"), (0.6, "medium"), (1.01, "high"))


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


def _bgnbd_at(frame: pd.DataFrame):
    buyers = frame[frame["purchase_count"] > 0]
    return bgnbd.fit(buyers["frequency"], buyers["t_x_weeks"], buyers["T_weeks"])


def _classifiers(conn, as_of: dt.date, scoring: pd.DataFrame, bg_params: dict | None, model_dir: Path) -> dict:
    """Both classifier tasks, or the reason they were skipped."""
    history = conn.execute(sa.text("SELECT MIN(ordered_at) FROM stg_orders")).scalar()
    history_days = 0 if history is None else day_number(as_of) - day_number(history.date())
    reason = classifier.small_data_reason(int((scoring["purchase_count"] > 0).sum()), history_days, CHURN_DAYS)
    if reason:
        return {t.name: classifier.TaskOutcome(t.name, "skipped", "none", reason) for t in (classifier.CHURN,
                                                                                         classifier.NEXT_PURCHASE)}
    c1, c2 = as_of - dt.timedelta(days=2 * CHURN_DAYS), as_of - dt.timedelta(days=CHURN_DAYS)
    frames = {}
    for cutoff in (c1, c2):
        feats = compute_features(conn, cutoff)
        feats = feats[feats["purchase_count"] > 0].reset_index(drop=True)
        fit = _bgnbd_at(feats)
        frames[cutoff] = (feats, fit.params if fit.converged else bg_params)
    outcomes = {}
    for task in (classifier.CHURN, classifier.NEXT_PURCHASE):
        prepared = {c: classifier.add_bgnbd_columns(f, p, task.label_days) for c, (f, p) in frames.items()}
        y = {c: classifier.labels(prepared[c], purchase_days_between(conn, c, c + dt.timedelta(days=task.label_days)),
                                  c, task) for c in (c1, c2)}
        score = classifier.add_bgnbd_columns(scoring, bg_params, task.label_days)
        windows = {"train_cutoff": c1.isoformat(), "eval_cutoff": c2.isoformat(), "label_days": task.label_days}
        outcomes[task.name] = classifier.run_task(task, prepared[c1], prepared[c2], score, y_train=y[c1],
                                                  y_eval=y[c2], model_dir=model_dir, as_of=as_of, windows=windows)
    return outcomes


def run_predictions(engine: sa.Engine, *, as_of: dt.date, model_dir: Path, horizons=(90, 365), clv_months: int = 12,
                    monthly_discount: float = 0.01, bgnbd_maxiter: int = 500) -> dict:
    """Write features, predictions and model_runs for `as_of`; return figures, metrics and PNG charts."""
    if len(horizons) != 2:
        raise ValueError("horizons: two day counts, for expected_purchases_90d and expected_purchases_365d")
    create_predict_tables(engine)
    with engine.begin() as conn:
        write_features(conn, as_of)
        feats = read_features(conn, as_of)
        n_features = len(feats)
        buyers = feats[feats["purchase_count"] > 0].reset_index(drop=True)
        x, t_x, T = (buyers[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))

        bg_fit = bgnbd.fit(x, t_x, T, maxiter=bgnbd_maxiter)
        bg_params, bg_from = fit_with_fallback(conn, "bgnbd", as_of, bg_fit)
        gg_fit = gamma_gamma.fit(buyers["frequency"], buyers["monetary_repeat"])
        gg_params, gg_from = fit_with_fallback(conn, "gamma_gamma", as_of, gg_fit)
        outcomes = _classifiers(conn, as_of, buyers, bg_params, model_dir)

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
            scored_by = {"classifier": "classifier", "bgnbd": "bgnbd", "recency": "rfm_only"}[churn_outcome.used]
        if next_outcome.status == "ok":
            p30 = next_outcome.probabilities
        as_of_ts = pd.Timestamp(as_of)
        next_date = pd.Series(as_of_ts + pd.to_timedelta(np.where(wait_days <= 365, np.ceil(wait_days), np.nan),
                                                         unit="D")).dt.date
        out = out.assign(p_alive=alive, expected_purchases_90d=e1, expected_purchases_365d=e2, predicted_clv=clv,
                         churn_probability=churn, p_purchase_30d=p30, expected_next_order_date=next_date.to_numpy(),
                         scored_by=scored_by, low_history=(buyers["frequency"] == 0).to_numpy())
        band = np.select([out["churn_probability"] < limit for limit, _ in RISK_BANDS], [b for _, b in RISK_BANDS],
                         default=None)
        out["risk_band"] = np.where(out["churn_probability"].isna(), None, band)
        out["expected_next_order_date"] = out["expected_next_order_date"].where(out["expected_next_order_date"].notna(),
                                                                                None)

        runs = [
            _fit_row("bgnbd", as_of, bg_fit, bg_params, bg_from, {"horizons_days": list(horizons)}),
            _fit_row("gamma_gamma", as_of, gg_fit, gg_params, gg_from,
                     {"clv_months": clv_months, "monthly_discount": monthly_discount}),
        ]
        for outcome in outcomes.values():
            runs.append({"model": f"{outcome.task}_classifier", "as_of": as_of, "time_unit": "day", "params":
                         json.dumps({"model_path": outcome.model_path, "used": outcome.used}), "log_likelihood": None,
                         "metrics": json.dumps(outcome.metrics, default=float), "status": outcome.status,
                         "message": outcome.message})
        # For backfills and re-runs, replace everything of this as_of in one transaction.
        conn.execute(predictions.delete().where(predictions.c.as_of == as_of))
        conn.execute(model_runs.delete().where(model_runs.c.as_of == as_of))
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
    return pd.DataFrame(rows)
