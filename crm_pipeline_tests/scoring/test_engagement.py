"""Engagement score: points and decay on hand-built timelines (exact values), growth bands, ranks, as_of cut."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crm_pipeline.scoring.config import build_config, default_raw
from crm_pipeline.settings import merge_override
from crm_pipeline_tests.profiles.warehouse import AS_OF, days_before, ts
from crm_pipeline_tests.scoring.conftest import score


def decayed(events: list[tuple[float, int]], lag: int = 0, half_life: float = 30) -> float:
    """The definition, spelled out: points * 0.5 ** (age / half_life) as of `lag` days before as_of."""
    return sum(p * 0.5 ** ((age - lag) / half_life) for p, age in events if age >= lag)


def _build(w):
    # a: falling. open today 1, click 30 days ago 3 -> 1.5, product view 60 days ago 2 -> 0.5,
    #    purchase 90 days ago 10 -> 1.25; a cancelled order earns nothing; and an open at brand beta 7 days ago.
    w.email_event("a", "open", days_before(0))
    w.email_event("a", "click", days_before(30))
    w.web_event("a", "product_view", days_before(60))
    w.order("a", "A1", days_before(90), 50.0)
    w.order("a", "A2", days_before(10), 50.0, status="cancelled")
    w.email_event("a", "open", days_before(7), brand="beta")
    # r: rising from nothing. s: a click every 30 days: steady. b: an unsubscribe today.
    w.email_event("r", "click", days_before(0))
    for age in (0, 30, 60, 90):
        w.email_event("s", "click", days_before(age))
    w.email_event("b", "unsubscribe", days_before(0))


@pytest.fixture
def scores(wh):
    _build(wh)
    score(wh)
    frame = wh.frame("SELECT * FROM engagement_scores WHERE as_of = :d", d=AS_OF)
    return frame.set_index(["contact_id", "brand"])


def test_points_decay_by_half_life_exactly(scores):
    a = scores.loc[("a", "alpha")]
    assert a["score"] == pytest.approx(1 + 1.5 + 0.5 + 1.25)  # 4.25: the cancelled order earns nothing
    assert a["interaction_count"] == 4
    assert a["score_30d_ago"] == pytest.approx(3 + 1 + 2.5)  # as of 30 days earlier: today's open not yet there
    assert a["score_7d_ago"] == pytest.approx(decayed([(3, 30), (2, 60), (10, 90)], lag=7))
    assert a["change_30d"] == pytest.approx(4.25 - 6.5)
    assert scores.loc[("a", "beta"), "score"] == pytest.approx(0.5 ** (7 / 30))
    overall = scores.loc[("a", "")]
    assert overall["score"] == pytest.approx(4.25 + 0.5 ** (7 / 30))  # across brands: the sum of the brands
    assert overall["first_interaction_date"] == AS_OF - dt.timedelta(days=90)
    assert overall["last_interaction_date"] == AS_OF
    assert scores.loc[("s", ""), "score"] == pytest.approx(3 * (1 + 0.5 + 0.25 + 0.125))  # 5.625
    assert scores.loc[("b", ""), "score"] == pytest.approx(-10)


def test_growth_bands_compare_activity_in_two_equal_windows(scores):
    """Activity = positive points, undecayed, in the last 30 days (W) and the 30 before (P)."""
    bands = scores.xs("", level="brand")["growth_band"].to_dict()
    # a: W = open 1 + beta open 1, P = click 3 -> -33% on 5 points: falling. r: 3 points only: too little to
    # call. s: a click in each window: steady. b: only an unsubscribe (negative points): no activity, dormant.
    assert bands == {"a": "falling", "r": "steady", "s": "steady", "b": "dormant"}
    a = scores.loc[("a", "")]
    assert (a["activity_points"], a["previous_activity_points"]) == (2, 3)
    assert a["growth_rate"] == pytest.approx((2 - 3) / 3)
    # On brand alpha alone a is below the minimum volume (1 + 3 < 5 points): steady, though its rate is -67%.
    assert scores.loc[("a", "alpha"), "growth_rate"] == pytest.approx((1 - 3) / 3)
    assert scores.loc[("a", "alpha"), "growth_band"] == "steady"
    assert scores.loc[("r", ""), "growth_rate"] == pytest.approx(3.0)  # from nothing: against min_base_points = 1
    assert scores.loc[("s", ""), "growth_rate"] == pytest.approx(0.0)
    assert pd.isna(scores.loc[("b", ""), "growth_rate"])


def test_no_activity_now_is_dormant_never_falling(wh):
    """A decaying score is not a fall: no activity in the current window is dormant, whatever came before."""
    for age in (35, 40, 45):                       # q: busy in the previous window only
        wh.web_event("q", "add_to_cart", days_before(age))
    wh.order("old", "O1", days_before(200), 40.0)  # old: nothing in either window
    for age in (1, 2):                             # u: 6 points now, nothing before: rising
        wh.email_event("u", "click", days_before(age))
    wh.email_event("f", "click", days_before(3))   # f: 3 points now against 15 before: falling
    for age in (40, 50, 55):
        wh.web_event("f", "add_to_cart", days_before(age))
    score(wh)
    rows = wh.frame("SELECT contact_id, growth_band, activity_points, previous_activity_points "
                    "FROM engagement_scores WHERE as_of = :d AND brand = ''", d=AS_OF).set_index("contact_id")
    assert rows["growth_band"].to_dict() == {"q": "dormant", "old": "dormant", "u": "rising", "f": "falling"}
    assert tuple(rows.loc["q", ["activity_points", "previous_activity_points"]]) == (0, 15)


def test_top_percent_ranks_contacts_highest_first(scores):
    top = scores.xs("", level="brand")["top_percent"].to_dict()
    assert top == {"s": 25.0, "a": 50.0, "r": 75.0, "b": 100.0}


def test_points_half_life_and_band_window_come_from_the_config(wh):
    _build(wh)
    config = build_config(merge_override(default_raw(), {"engagement": {
        "points": {"email_click": 10}, "half_life_days": 10, "growth": {"band_window_days": 7}}}, "scoring"))
    score(wh, config=config)
    row = wh.one("SELECT score, growth_rate, activity_points, previous_activity_points FROM engagement_scores "
                 "WHERE contact_id = 's' AND brand = ''")
    events = [(10, 0), (10, 30), (10, 60), (10, 90)]
    assert row["score"] == pytest.approx(decayed(events, half_life=10))
    # 7-day windows: the click today is in the current one, none in days 7..13 before it.
    assert (row["activity_points"], row["previous_activity_points"]) == (10, 0)
    assert row["growth_rate"] == pytest.approx(10.0)


def test_no_interaction_after_as_of_counts(wh):
    """Scores for a day are the same whether or not later interactions exist (and the timeline has them)."""
    _build(wh)
    score(wh)
    tables = ("engagement_scores", "channel_preferences", "contact_preferences",
              "lifecycle_stages", "lifecycle_transitions")

    def snapshot():
        return {t: wh.frame(f"SELECT * FROM {t} WHERE as_of = :d", d=AS_OF)
                .sort_values(list(wh.frame(f"SELECT * FROM {t} WHERE 1 = 0").columns), ignore_index=True)
                for t in tables}

    before = snapshot()
    late = AS_OF + dt.timedelta(days=1)
    wh.email_event("a", "click", ts(f"{late} 00:00"))  # midnight UTC after as_of belongs to the next day
    wh.order("r", "R-LATE", ts(f"{late} 08:00"), 20.0, channel="store")
    wh.web_event("s", "product_view", ts(f"{late} 09:00"))
    wh.email_event("newcomer", "open", ts(f"{late} 10:00"))
    score(wh, as_of=AS_OF, profile_as_of=AS_OF + dt.timedelta(days=5))
    after = snapshot()
    assert wh.one("SELECT COUNT(*) AS n FROM timeline WHERE occurred_at >= :t", t=ts(f"{late} 00:00"))["n"] == 4
    for table in tables:
        pd.testing.assert_frame_equal(before[table], after[table], obj=table)


def test_a_rerun_of_the_day_rewrites_the_same_rows(wh):
    _build(wh)
    score(wh)
    first = wh.frame("SELECT * FROM engagement_scores ORDER BY contact_id, brand")
    score(wh)
    pd.testing.assert_frame_equal(first, wh.frame("SELECT * FROM engagement_scores ORDER BY contact_id, brand"))


def test_profile_360_shows_the_score_band_and_stage(wh):
    from crm_pipeline.profiles.lookup import render_profile

    _build(wh)
    score(wh)
    row = wh.one("SELECT engagement_score, engagement_growth_band, engagement_top_percent, lifecycle_stage, "
                 "preferred_channel FROM profile_360 WHERE contact_id = 'a'")
    assert row["engagement_score"] == pytest.approx(4.25 + 0.5 ** (7 / 30))
    assert (row["engagement_growth_band"], row["engagement_top_percent"]) == ("falling", 50.0)
    # one purchase (90 days ago, no click before it): too little evidence to name a channel
    assert row["lifecycle_stage"] == "first_time" and row["preferred_channel"] == "unknown"
    brand = wh.one("SELECT engagement_score FROM profile_360_brand WHERE contact_id = 'a' AND brand = 'beta'")
    assert brand["engagement_score"] == pytest.approx(0.5 ** (7 / 30))
    with wh.engine.connect() as conn:
        text = render_profile(conn, "a")
    assert "engagement score 5.1 (falling; " in text and "lifecycle first_time  preferred channel unknown" in text
