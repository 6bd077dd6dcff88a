"""Scores a marketer can act on, on the generator's default data: bands and channels that split the
population, growth that means activity, a row for every contact, and channels that match the truth."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.scoring.run import run_scoring
from crm_pipeline_tests.conftest import copy_warehouse

END = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def scored(tmp_path_factory, resolved_2000):
    """The session's 2,000 generated people to END, staged and resolved (a copy), profiled and scored."""
    source, generated = resolved_2000
    engine = copy_warehouse(source, tmp_path_factory.mktemp("scored"))
    build_profiles(engine, as_of=END)
    result = run_scoring(engine, as_of=END, truth_dir=generated / "truth")
    yield engine, result
    engine.dispose()


def _frame(engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(sql), conn, params={"d": END})


def test_no_channel_takes_over_the_contacts_with_evidence_and_every_order_channel_is_chosen(scored, capsys):
    engine, result = scored
    chosen = _frame(engine, "SELECT preferred_channel, evidence_count, reason FROM channel_preferences "
                            "WHERE as_of = :d AND brand = ''")
    # Contacts with evidence: those whose evidence decided a channel (enough conversions, no tie).
    decided = chosen[chosen["preferred_channel"] != "unknown"]
    shares = decided["preferred_channel"].value_counts(normalize=True)
    with capsys.disabled():
        print(f"\npreferred channel among {len(decided)} contacts with a decided channel: "
              + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    assert len(decided) > 100 and shares.max() <= 0.7, shares
    in_orders = set(_frame(engine, "SELECT DISTINCT channel FROM stg_orders WHERE channel IS NOT NULL")["channel"])
    assert in_orders <= set(chosen["preferred_channel"]), (in_orders, chosen["preferred_channel"].value_counts())
    # `unknown` is always explained, and a choice always rests on enough conversions.
    unknown = chosen["preferred_channel"] == "unknown"
    assert chosen.loc[unknown, "reason"].notna().all() and chosen.loc[~unknown, "reason"].isna().all()
    assert (chosen.loc[~unknown, "evidence_count"] >= 3).all()


def test_the_chosen_channel_matches_the_true_one_where_the_evidence_is_sufficient(scored):
    _, result = scored
    truth = result["channel_vs_truth"]
    assert truth["status"] == "ok" and truth["contacts_decided"] > 100
    assert truth["accuracy"] >= 0.8, truth


def test_falling_always_means_activity_now_and_less_than_before(scored):
    engine, result = scored
    rows = _frame(engine, "SELECT growth_band, activity_points, previous_activity_points FROM engagement_scores "
                          "WHERE as_of = :d")
    falling = rows[rows["growth_band"] == "falling"]
    assert len(falling) > 0
    assert not ((falling["activity_points"] == 0) & (falling["previous_activity_points"] == 0)).any()
    assert (falling["activity_points"] > 0).all()
    assert (falling["activity_points"] < falling["previous_activity_points"]).all()
    assert (rows.loc[rows["growth_band"] == "dormant", "activity_points"] == 0).all()
    bands = result["growth_bands"]
    assert bands["falling"] < 0.5 * sum(bands.values())


def test_every_contact_has_a_stage_or_unknown_with_a_reason(scored):
    engine, result = scored
    missing = _frame(engine, """
        SELECT c.contact_id FROM contacts c
        LEFT JOIN lifecycle_stages l ON l.contact_id = c.contact_id AND l.as_of = :d AND l.brand = ''
        WHERE l.stage IS NULL OR (l.stage = 'unknown' AND l.reason IS NULL)""")
    assert missing.empty, missing.head()
    profiles = _frame(engine, "SELECT COUNT(*) AS n, COUNT(lifecycle_stage) AS staged, "
                              "COUNT(engagement_growth_band) AS banded, COUNT(preferred_channel) AS channelled "
                              "FROM profile_360").iloc[0]
    assert profiles["n"] == profiles["staged"] == profiles["banded"] == profiles["channelled"]
    assert result["lifecycle_stages"]["unknown"] == sum(result["unscored_reasons"].values()) > 0
