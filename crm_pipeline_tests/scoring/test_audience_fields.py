"""Audience rules on the scoring fields: rising on a brand, top engaged, lifecycle stage, preferred channel."""

from __future__ import annotations

import pytest

from crm_pipeline.audiences.config import load_audiences
from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline.audiences.rules import RuleError
from crm_pipeline_tests.profiles.warehouse import AS_OF, days_before
from crm_pipeline_tests.scoring.conftest import score

USER = """
audiences:
  top_quarter:
    scopes: [all]
    rule: {field: engagement_top_percent, "<=": 25}
  buying_again:
    rule: {field: lifecycle_stage, in: [won_back, repeat, loyal]}
"""


@pytest.fixture
def members(wh, tmp_path):
    for age in (0, 1):  # rising from nothing (6 points this month), at alpha only
        wh.email_event("r", "click", days_before(age))
    for age in (30, 35):  # a: 6 points last month at alpha, 1 this month: falling there ...
        wh.email_event("a", "click", days_before(age))
    wh.email_event("a", "open", days_before(0))
    for age in (0, 1):  # ... and rising at beta; across brands 7 against 6 points: steady
        wh.email_event("a", "click", days_before(age), brand="beta")
    for age in (0, 30, 60, 90):  # steady, and the most engaged
        wh.email_event("s", "click", days_before(age))
    for age in range(1, 6):  # a web visitor on 5 days
        wh.web_event("v", "page_view", days_before(age), url="/")
    for i, age in enumerate((10, 200, 300)):
        wh.order("v", f"V{i}", days_before(age), 20.0, channel="web")  # bought again after 190 days: won back
    score(wh)
    user = tmp_path / "audiences.yaml"
    user.write_text(USER, encoding="utf-8")
    materialize_audiences(wh.engine, as_of=AS_OF, audiences_file=user)
    frame = wh.frame("SELECT audience, contact_id FROM audience_members WHERE as_of = :d", d=AS_OF)
    return frame.groupby("audience")["contact_id"].apply(set).to_dict()


def test_score_rising_per_brand_and_across_brands(members):
    assert members["alpha:engagement_rising"] == {"r", "v"}  # v bought 10 days ago
    assert members["beta:engagement_rising"] == {"a"}
    assert members["alpha:engagement_falling"] == {"a"}
    # across brands a's new beta clicks offset the quieter alpha month (7 vs 6 points: steady)
    assert members["engagement_rising"] == {"r", "v"}


def test_top_engaged_and_lifecycle_stage(members):
    assert members["top_quarter"] == {"v"}  # of 4: v (its purchase 10 days ago alone is 7.9 points)
    assert members["lifecycle_won_back"] == {"v"} and members["buying_again"] == {"v"}


def test_one_audience_per_preferred_channel(members):
    # Only v bought (3 web purchase days): opens and clicks without a purchase name no channel.
    assert members["preferred_channel_web"] == {"v"}
    assert "preferred_channel_email" not in members and "preferred_channel_store" not in members
    kinds = {a.name: a.kind for a in load_audiences().audiences}
    assert kinds["preferred_channel_store"] == "predictive" and kinds["engaged_top_5pct"] == "engagement"


def test_a_misspelt_band_or_stage_is_rejected_naming_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text('audiences:\n  x: {rule: {field: engagement_growth_band, "=": rissing}}\n', encoding="utf-8")
    with pytest.raises(RuleError, match=r"audience 'x': rule\.=: unknown engagement_growth_band 'rissing'; "
                                        r"known: rising, steady, falling"):
        load_audiences(path)
