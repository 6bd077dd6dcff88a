"""Tables of the predict stage: features and predictions per contact and as-of date, and one row per model fit.

Every table is partitioned by `as_of`: a run deletes that date's rows and inserts them
again in one transaction, so re-running a date gives identical tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.warehouse.schema import add_missing_columns, metadata

features = sa.Table(
    "features", metadata,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("purchase_count", sa.Integer, nullable=False, comment="purchase days (same-day orders merged)"),
    sa.Column("frequency", sa.Integer, nullable=False, comment="repeat purchases = purchase_count - 1 (0 if none)"),
    sa.Column("recency_days", sa.Integer, comment="days from the last purchase to as_of"),
    sa.Column("monetary", sa.Double, comment="mean value of a purchase day, in the order currency"),
    sa.Column("monetary_repeat", sa.Double, comment="mean value of the repeat purchase days (Gamma-Gamma input)"),
    sa.Column("total_value", sa.Double),
    sa.Column("tenure_days", sa.Integer, comment="days since the first dated record of any kind"),
    sa.Column("t_x_weeks", sa.Double, comment="BG/NBD recency: first to last purchase, weeks"),
    sa.Column("T_weeks", sa.Double, comment="BG/NBD age: first purchase to as_of, weeks"),
    sa.Column("interpurchase_mean_days", sa.Double),
    sa.Column("interpurchase_std_days", sa.Double),
    sa.Column("return_rate", sa.Double, comment="units returned / units bought on purchases"),
    sa.Column("category_count", sa.Integer),
    sa.Column("brand_count", sa.Integer),
    sa.Column("email_open_30d_count", sa.Integer, nullable=False),
    sa.Column("email_open_90d_count", sa.Integer, nullable=False),
    sa.Column("email_click_30d_count", sa.Integer, nullable=False),
    sa.Column("email_click_90d_count", sa.Integer, nullable=False),
    sa.Column("days_since_open", sa.Integer),
    sa.Column("days_since_click", sa.Integer),
    sa.Column("browse_30d_count", sa.Integer, nullable=False),
    sa.Column("browse_90d_count", sa.Integer, nullable=False),
    sa.Column("days_since_browse", sa.Integer),
    sa.Column("subscription_age_days", sa.Integer),
)

predictions = sa.Table(
    "predictions", metadata,
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("rfm_r", sa.Integer), sa.Column("rfm_f", sa.Integer), sa.Column("rfm_m", sa.Integer),
    sa.Column("rfm_segment", sa.String),
    sa.Column("p_alive", sa.Double),
    sa.Column("expected_purchases_90d", sa.Double),
    sa.Column("expected_purchases_365d", sa.Double),
    sa.Column("predicted_clv", sa.Double),
    sa.Column("churn_probability", sa.Double, comment="P(no purchase in the next 90 days)"),
    sa.Column("risk_band", sa.String, comment="high = top 25% of the day's scored buyers by churn_probability, "
                                              "medium = next 35%, low = last 40% (crm_pipeline/predict/risk.py)"),
    sa.Column("risk_percentile", sa.Double, comment="rank by churn_probability among the scored, 1 = most at risk"),
    sa.Column("churn_lift", sa.Double, comment="churn_probability / the day's mean among the scored"),
    sa.Column("p_purchase_30d", sa.Double),
    sa.Column("expected_next_order_date", sa.Date, comment="median wait if still alive; empty beyond a year"),
    sa.Column("scored_by", sa.String, nullable=False, comment="classifier / bgnbd / rfm_only"),
    sa.Column("low_history", sa.Boolean, nullable=False, comment="a single purchase: scores lean on the population"),
)

model_runs = sa.Table(
    "model_runs", metadata,
    sa.Column("model", sa.String, nullable=False, comment="bgnbd / gamma_gamma / churn_classifier / next_purchase_classifier"),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("time_unit", sa.String, nullable=False),
    sa.Column("params", sa.String, comment="JSON of the parameters this run fitted"),
    sa.Column("log_likelihood", sa.Double),
    sa.Column("metrics", sa.String, comment="JSON"),
    sa.Column("status", sa.String, nullable=False, comment="ok / not_converged / skipped"),
    sa.Column("message", sa.String),
)

predict_models = sa.Table(
    "predict_models", metadata,
    sa.Column("model", sa.String, nullable=False, comment="bgnbd / gamma_gamma / churn_classifier / next_purchase_classifier"),
    sa.Column("trained_on", sa.Date, nullable=False, comment="the training day: data up to it trained the model"),
    sa.Column("input_fingerprint", sa.String, nullable=False,
              comment="digest of the staged records up to trained_on and their grouping into contacts"),
    sa.Column("settings_key", sa.String, nullable=False, comment="digest of the model settings it was trained with"),
    sa.Column("status", sa.String, nullable=False, comment="ok / not_converged / skipped"),
    sa.Column("message", sa.String),
    sa.Column("params", sa.String, comment="JSON: fitted and used parameters (BG/NBD, Gamma-Gamma), scorer (classifiers)"),
    sa.Column("log_likelihood", sa.Double),
    sa.Column("metrics", sa.String, comment="JSON: the held-out evaluation computed when training"),
    sa.Column("estimator", sa.String, comment="base64 of the fitted scorer as .npz arrays (predict.portable: "
                                             "trees, calibration; no pickle), classifiers only; text reads back "
                                             "the same on every backend"),
)

# One row per prediction run: its day, how it ran, what it redid, the latest profile build it had followed.
predict_builds = sa.Table(
    "predict_builds", metadata,
    sa.Column("build_number", sa.Integer, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("mode", sa.String, nullable=False, comment="full / incremental"),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("contacts_recomputed", sa.Integer, nullable=False,
              comment="contacts whose features were computed from their records"),
    sa.Column("contacts_rescored", sa.Integer, nullable=False, comment="buyers the models scored"),
    sa.Column("profile_build", sa.Integer, comment="the latest profile build the run had followed"),
    sa.Column("trained_on", sa.Date, nullable=False, comment="the training day of the models it scored with"),
    sa.Column("input_fingerprint", sa.String, nullable=False,
              comment="the training inputs' digest it checked the stored models against"),
)

predict_fingerprint_parts = sa.Table(   # what a training day's digest sums, kept so a drop recomputes only its contacts
    "predict_fingerprint_parts", metadata,
    sa.Column("trained_on", sa.Date, nullable=False),
    sa.Column("contact_id", sa.String, nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False,
              comment="the contact's staged rows that training reads (predict/cadence.py)"),
    sa.Column("s", sa.BigInteger, nullable=False, comment="the sum of their content hashes mod a prime"),
)

PREDICT_TABLES = [features, predictions, model_runs, predict_models, predict_builds, predict_fingerprint_parts]


def create_predict_tables(bind: sa.Engine | sa.Connection) -> None:
    metadata.create_all(bind, tables=PREDICT_TABLES)
    add_missing_columns(bind, _ADDED)


# Columns added after a warehouse may have been built: added (empty for earlier days) when missing.
_ADDED = {"predictions": ("risk_percentile", "churn_lift")}
