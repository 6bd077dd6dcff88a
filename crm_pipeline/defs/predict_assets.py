"""Dagster layer for predictions: features, predictions and model_runs, one partition per as-of day."""

import json

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from crm_pipeline.defs.ingest_assets import KINDS, OWNERS
from crm_pipeline.defs.partitions import DAILY
from crm_pipeline.defs.resources import CrmSettingsResource, WarehouseResource, transient_warehouse_errors_retried
from crm_pipeline.defs.run_tags import is_full_refresh
from crm_pipeline.markdown import svg_image, to_markdown

GROUP = "predict"


def _json(value) -> dict:
    """JSON-safe (NaN -> null) for Dagster metadata."""
    return json.loads(json.dumps(value, default=float).replace("NaN", "null"))
# The timeline too: a run follows the profile builds (`profile_changes`, `contact_daily`) to know which contacts
# new data touched (crm_pipeline/predict/incremental.py).
DEPS = ["identity_map", "stg_orders", "stg_order_items", "stg_products", "stg_email_events", "stg_web_events",
        "stg_subscribers", "timeline"]

SPECS = [
    dg.AssetSpec("features", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=DEPS, partitions_def=DAILY,
                 description="A table of per-contact features as of the day (recency, frequency, monetary, tenure, "
                             "engagement, browsing), computed only from data up to that day."),
    dg.AssetSpec("predictions", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=["features"],
                 partitions_def=DAILY,
                 description="A table of per-contact predictions as of the day: RFM scores and segment, P(alive), "
                             "expected purchases, CLV, churn probability and risk band (high = top 25% of the "
                             "day's scored buyers by churn probability, medium = next 35%, low = last 40%), "
                             "probability of buying in 30 days."),
    dg.AssetSpec("model_runs", group_name=GROUP, owners=OWNERS, kinds={"python", "scikit-learn"},
                 deps=["features"], partitions_def=DAILY,
                 description="A table of the models each day scored with: parameters, log-likelihood, held-out "
                             "metrics, status, training day and age. The models themselves are trained every "
                             "`predict_retrain_days` on the complete days before their training day (a drop of "
                             "that day's records is scored, not trained on) and stored in `predict_models`."),
]


# Before the scoring stage when both are ready: scoring clears the profile builds' change log once it has read it,
# and a prediction run that finds it cleared recomputes every contact.
@dg.multi_asset(specs=SPECS, name="predict_customers", partitions_def=DAILY, op_tags={"dagster/priority": "1"},
                check_specs=[
    dg.AssetCheckSpec("churn_model_beats_recency", asset="model_runs",
                      description="The churn classifier's held-out AUC is at least the recency baseline's; "
                                  "when it is not, the baseline scores instead and this check says so."),
])
def predict_customers(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      crm_settings: CrmSettingsResource):
    """RFM, BG/NBD + Gamma-Gamma CLV, and the churn / next-purchase classifiers for the partition's day, with the
    models of its training day (trained now when missing or stale, else read back)."""
    from crm_pipeline.predict.run import evaluation_table, run_predictions  # scikit-learn only in runs that fit

    settings = crm_settings.load()
    as_of = crm_settings.as_of_date(context.partition_key)
    with transient_warehouse_errors_retried(context):
        result = run_predictions(warehouse.engine, as_of=as_of, model_dir=settings.home_dir / "models",
                                 truth_dir=settings.truth_path, retrain_days=settings.predict_retrain_days,
                                 cadence_start=settings.partition_start_date, full_refresh=is_full_refresh(context))
    training = result["training"]
    charts_dir = settings.home_dir / "charts" / training["trained_on"]   # drawn when the models were trained
    charts_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for name, svg in result.get("charts", {}).items():
        (charts_dir / name).write_bytes(svg)
        images.append(svg_image(svg, name))
    with warehouse.engine.connect() as conn:
        evaluation = evaluation_table(conn, as_of)
        fits = conn.execute(sa.text("SELECT COUNT(*) FROM model_runs WHERE as_of = :d"), {"d": as_of}).scalar_one()
    churn = result["classifiers"].get("churn", {})
    run = result["run"]
    yield dg.MaterializeResult(asset_key="features", metadata={
        "dagster/row_count": result["contacts_with_features"], "mode": run["mode"], "mode_reason": run["reason"],
        "contacts_recomputed": run["contacts_recomputed"],
        "recomputed_because": dg.MetadataValue.json(run["recomputed_because"])})
    model = {"retrained": training["retrained"], "training_reason": training["reason"],
             "trained_on": training["trained_on"], "model_age_days": training["model_age_days"]}
    yield dg.MaterializeResult(asset_key="predictions", metadata={
        "dagster/row_count": result["customers_scored"], "scored_by": result["scored_by"], **model,
        "mode": run["mode"], "contacts_rescored": run["contacts_rescored"],
        # rows of features, predictions and model_runs: none on a re-run of the day with nothing new
        "rows_written": dg.MetadataValue.json(run["rows_written"]),
        "seconds": dg.MetadataValue.json(result["step_seconds"]),   # where the stage's time went, per step
        "mean_predicted_clv": result["mean_predicted_clv"],
        "risk_bands": dg.MetadataValue.json(result["risk_bands"]),
        "segments": dg.MetadataValue.md(to_markdown(pd.Series(result["segments"], name="contacts")
                                                    .rename_axis("segment").reset_index())),
    })
    yield dg.MaterializeResult(asset_key="model_runs", metadata={
        "dagster/row_count": int(fits), **model,
        "evaluation": dg.MetadataValue.md(to_markdown(evaluation)),
        "bgnbd": dg.MetadataValue.json(json.loads(json.dumps(result["bgnbd"], default=float))),
        "churn_vs_true_dropout": dg.MetadataValue.json(_json(result["churn_truth"])),
        "charts": dg.MetadataValue.md("\n\n".join(images) or (
            f"_models trained on {training['trained_on']}: charts in the folder below_" if not training["retrained"]
            else "_no classifier this run_")),
        "charts_folder": dg.MetadataValue.path(str(charts_dir)),
    })
    metrics = churn.get("metrics") or {}
    auc = (metrics.get("classifier") or {}).get("roc_auc")
    recency = (metrics.get("baseline_recency") or {}).get("roc_auc")
    comparable = churn.get("status") == "ok" and all(v is not None and v == v for v in (auc, recency))   # v == v: not NaN
    passed = not comparable or auc >= recency
    yield dg.AssetCheckResult(
        check_name="churn_model_beats_recency", asset_key="model_runs", passed=bool(passed),
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"classifier AUC {auc:.3f} < recency baseline {recency:.3f}; the baseline scores"
                     if not passed else churn.get("message")),
        metadata={"classifier_auc": auc, "recency_auc": recency, "status": churn.get("status", "skipped")},
    )
