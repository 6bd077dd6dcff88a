"""The scoring SQL is portable: the hand-built scenarios give the same rows on PostgreSQL as on DuckDB."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_pipeline.scoring.config import load_scoring_config
from crm_pipeline.scoring.lifecycle import funnel
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse
from crm_pipeline_tests.scoring import test_channel, test_engagement, test_lifecycle, test_preferences
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the session's server)
from crm_pipeline_tests.scoring.conftest import score

TABLES = ("engagement_scores", "contact_preferences", "channel_preferences",
          "lifecycle_stages", "lifecycle_transitions")


@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    """A database of its own on the session's throwaway server."""
    return postgres_server.create_database("crm_scoring")


def _scored(url: str) -> dict[str, pd.DataFrame]:
    engine = make_engine(url)
    try:
        w = Warehouse(engine)
        for module in (test_engagement, test_channel, test_lifecycle, test_preferences):
            module._build(w)  # disjoint contacts, orders and skus: one warehouse holds all four scenarios
        score(w)
        out = {t: _canonical(w.frame(f"SELECT * FROM {t}")) for t in TABLES}
        out["profile_360"] = _canonical(w.frame(
            "SELECT contact_id, engagement_score, engagement_change_7d, engagement_change_30d, engagement_growth_band,"
            " engagement_top_percent, preferred_channel, lifecycle_stage FROM profile_360"))
        with engine.connect() as conn:
            out["funnel"] = _canonical(funnel(conn, load_scoring_config(), as_of=AS_OF, days=400))
    finally:
        engine.dispose()
    return out


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    def text(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (bool, np.bool_)):
            return str(int(value))
        if isinstance(value, (int, float, np.integer, np.floating)):
            return f"{float(value):.9f}"
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    out = frame.astype(object).map(text)
    return out.sort_values(list(out.columns), ignore_index=True)


def test_postgres_scores_like_duckdb(tmp_path, postgres_url):
    duck = _scored(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    pg = _scored(postgres_url)
    for name, frame in duck.items():
        assert len(frame) > 0, name
        pd.testing.assert_frame_equal(frame, pg[name], obj=name)
