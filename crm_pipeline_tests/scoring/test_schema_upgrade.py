"""A warehouse built by an earlier version gets today's scoring and prediction tables on the next run."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.predict_schema import create_predict_tables, predictions
from crm_pipeline.warehouse.scoring_schema import channel_preferences, create_scoring_tables


def _columns(conn, table: str) -> list[str]:
    return list(conn.execute(sa.text(f"SELECT * FROM {table} WHERE 1 = 0")).keys())


def test_old_scoring_and_prediction_tables_are_brought_up_to_date(tmp_path):
    engine = make_engine(f"duckdb:///{tmp_path / 'old.duckdb'}")
    with engine.begin() as conn:   # the shapes an earlier version left behind
        conn.execute(sa.text("CREATE TABLE channel_preferences (as_of DATE, contact_id VARCHAR, brand VARCHAR, "
                             "preferred_channel VARCHAR, p_email DOUBLE, low_evidence BOOLEAN)"))
        conn.execute(sa.text("INSERT INTO channel_preferences VALUES ('2025-06-30', 'c1', '', 'web', 0.2, true)"))
        conn.execute(sa.text("CREATE TABLE predictions (as_of DATE, contact_id VARCHAR, rfm_r INTEGER, "
                             "rfm_f INTEGER, rfm_m INTEGER, rfm_segment VARCHAR, p_alive DOUBLE, "
                             "expected_purchases_90d DOUBLE, expected_purchases_365d DOUBLE, predicted_clv DOUBLE, "
                             "churn_probability DOUBLE, risk_band VARCHAR, p_purchase_30d DOUBLE, "
                             "expected_next_order_date DATE, scored_by VARCHAR, low_history BOOLEAN)"))
        conn.execute(sa.text("INSERT INTO predictions (as_of, contact_id, churn_probability, risk_band, scored_by, "
                             "low_history) VALUES ('2025-06-30', 'c1', 0.7, 'high', 'bgnbd', false)"))
    create_scoring_tables(engine)
    create_predict_tables(engine)
    create_scoring_tables(engine)   # a second run changes nothing
    with engine.connect() as conn:
        assert _columns(conn, "channel_preferences") == [c.name for c in channel_preferences.columns]
        assert conn.execute(sa.text("SELECT COUNT(*) FROM channel_preferences")).scalar_one() == 0   # derived: rebuilt
        # added at the end (inserts name their columns, so the order does not matter)
        assert sorted(_columns(conn, "predictions")) == sorted(c.name for c in predictions.columns)
        kept = conn.execute(sa.text("SELECT as_of, risk_band, risk_percentile FROM predictions")).one()
    assert kept == (dt.date(2025, 6, 30), "high", None)   # past predictions kept, new columns empty for them
    engine.dispose()
