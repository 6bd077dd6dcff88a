"""Lifecycle: every stage move, a won-back customer, per brand vs across brands, and moves = day-by-day diffs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crm_pipeline.scoring.config import load_scoring_config
from crm_pipeline.scoring.lifecycle import funnel, stages_on_days, transitions_by_day
from crm_pipeline_tests.profiles.warehouse import AS_OF, ts
from crm_pipeline_tests.scoring.conftest import score

D = dt.date.fromisoformat
CONFIG = load_scoring_config()  # active 90 days, lapsed after 365, loyal from 3 purchase days


def _build(w):
    # L, one brand: the whole ladder down and back up again.
    w.email_event("L", "open", ts("2023-01-01 10:00"))
    for i, day in enumerate(("2023-02-01", "2023-03-01", "2023-04-01", "2025-01-10", "2025-02-10")):
        w.order("L", f"L{i}", ts(f"{day} 12:00"), 40.0)
    w.order("L", "L-same-day", ts("2023-03-01 18:00"), 10.0)  # a second order that day is the same purchase day
    w.order("L", "L-cancel", ts("2024-06-01 12:00"), 10.0, status="cancelled")  # not a purchase
    # M: first seen buying at alpha, lapses there, comes back at beta: won back across brands.
    w.order("M", "M1", ts("2025-01-01 12:00"), 40.0, brand="alpha")
    w.order("M", "M2", ts("2025-05-01 12:00"), 40.0, brand="beta")
    # P: a prospect first seen on as_of.
    w.email_event("P", "open", ts(f"{AS_OF} 08:00"))


@pytest.fixture
def built(wh):
    _build(wh)
    score(wh)
    return wh


def test_every_move_of_a_customer_who_is_won_back(built):
    with built.engine.connect() as conn:
        moves = transitions_by_day(conn, CONFIG, as_of=AS_OF, days=1000, brand="alpha")
    got = [(str(r.day), r.from_stage, r.to_stage) for r in moves.itertuples()]
    expected_l = [
        ("2023-01-01", "new", "prospect"),
        ("2023-02-01", "prospect", "first_time"),
        ("2023-03-01", "first_time", "repeat"),
        ("2023-04-01", "repeat", "loyal"),
        ("2023-07-01", "loyal", "lapsing"),      # 2023-04-01 + 91 days
        ("2024-04-01", "lapsing", "lapsed"),     # 2023-04-01 + 366 days
        ("2025-01-10", "lapsed", "won_back"),
        ("2025-02-10", "won_back", "loyal"),     # the next purchase within 90 days
        ("2025-05-12", "loyal", "lapsing"),      # 2025-02-10 + 91 days
    ]
    expected_m = [("2025-01-01", "new", "first_time"), ("2025-04-02", "first_time", "lapsing")]
    expected_p = [(str(AS_OF), "new", "prospect")]
    assert sorted(got) == sorted(expected_l + expected_m + expected_p)


def test_stages_on_the_day_per_brand_and_across_brands(built):
    stages = built.frame("SELECT contact_id, brand, stage, stage_since_date, purchase_count, last_purchase_date "
                         "FROM lifecycle_stages WHERE as_of = :d", d=AS_OF).set_index(["contact_id", "brand"])
    assert tuple(stages.loc[("L", "")]) == ("lapsing", D("2025-05-12"), 5, D("2025-02-10"))
    # M lapses at alpha and is new at beta, but across brands came back after 120 days: won back
    assert tuple(stages.loc[("M", "")]) == ("won_back", D("2025-05-01"), 2, D("2025-05-01"))
    assert tuple(stages.loc[("M", "alpha")][:2]) == ("lapsing", D("2025-04-02"))
    assert tuple(stages.loc[("M", "beta")][:2]) == ("first_time", D("2025-05-01"))
    assert tuple(stages.loc[("P", "")][:3]) == ("prospect", AS_OF, 0)
    today = built.frame("SELECT brand, from_stage, to_stage, contact_count FROM lifecycle_transitions "
                        "WHERE as_of = :d ORDER BY brand", d=AS_OF)
    assert today.to_dict("records") == [{"brand": "", "from_stage": "new", "to_stage": "prospect", "contact_count": 1},
                                        {"brand": "alpha", "from_stage": "new", "to_stage": "prospect",
                                         "contact_count": 1}]


def test_lapsed_and_won_back_from_lapsing(wh):
    wh.order("X", "X1", ts("2024-01-01 12:00"), 10.0)
    wh.order("X", "X2", ts("2024-04-15 12:00"), 10.0)  # 105 days later: back from lapsing
    wh.order("Y", "Y1", ts("2024-01-01 12:00"), 10.0)  # one purchase, then nothing: lapsed
    score(wh)
    with wh.engine.connect() as conn:
        moves = transitions_by_day(conn, CONFIG, as_of=AS_OF, days=1000, brand="")
    got = {(str(r.day), r.from_stage, r.to_stage, r.contact_count) for r in moves.itertuples()}
    assert got == {("2024-01-01", "new", "first_time", 2), ("2024-04-01", "first_time", "lapsing", 2),
                   ("2024-04-15", "lapsing", "won_back", 1), ("2024-07-15", "won_back", "lapsing", 1),
                   ("2025-01-01", "lapsing", "lapsed", 1), ("2025-04-16", "lapsing", "lapsed", 1)}


def test_moves_equal_the_day_by_day_differences_of_stages(built):
    """The moves, derived from purchase events, are exactly what a date spine of daily stages shows."""
    start = D("2024-12-20")
    days = [start + dt.timedelta(days=i) for i in range((AS_OF - start).days + 1)]
    with built.engine.connect() as conn:
        daily = stages_on_days(conn, CONFIG, days)
        moves = transitions_by_day(conn, CONFIG, as_of=AS_OF, days=len(days) - 1)
    wide = daily.pivot_table(index=["contact_id", "brand"], columns="day", values="stage", aggfunc="first")
    diffs = []
    for before, after in zip(days, days[1:]):
        prev = wide[before].fillna("new")
        changed = wide[after].notna() & (prev != wide[after])
        for (contact, brand), to in wide.loc[changed, after].items():
            diffs.append((after, brand, prev[(contact, brand)], to))
    spine = pd.DataFrame(diffs, columns=["day", "brand", "from_stage", "to_stage"]) \
        .value_counts().rename("contact_count").reset_index()
    key = ["day", "brand", "from_stage", "to_stage"]
    assert len(spine) >= 8
    pd.testing.assert_frame_equal(spine.sort_values(key, ignore_index=True),
                                  moves.sort_values(key, ignore_index=True)[spine.columns], check_dtype=False)


@pytest.mark.parametrize("from_aggregates", [False, True], ids=["timeline", "scoring_daily"])
def test_funnel_over_the_last_days(built, from_aggregates):
    with built.engine.connect() as conn:
        across = funnel(conn, CONFIG, as_of=AS_OF, days=90, from_aggregates=from_aggregates)
        beta = funnel(conn, CONFIG, as_of=AS_OF, days=90, brand="beta", from_aggregates=from_aggregates)
    assert across.to_dict("records") == [
        {"from_stage": "new", "to_stage": "prospect", "contacts": 1},
        {"from_stage": "first_time", "to_stage": "lapsing", "contacts": 1},
        {"from_stage": "loyal", "to_stage": "lapsing", "contacts": 1},
        {"from_stage": "lapsing", "to_stage": "won_back", "contacts": 1},
    ]
    assert beta.to_dict("records") == [{"from_stage": "new", "to_stage": "first_time", "contacts": 1}]
    if from_aggregates:  # only the contacts with a stage since inside the window are read: the same moves
        with built.engine.connect() as conn:  # windows starting on the day before / of L's and M's last moves
            for days, brand in [(1, None), (49, None), (50, None), (60, None), (61, None), (1000, None),
                                (60, "beta"), (61, "beta"), (1000, "alpha")]:
                pd.testing.assert_frame_equal(
                    funnel(conn, CONFIG, as_of=AS_OF, days=days, brand=brand, from_aggregates=True),
                    funnel(conn, CONFIG, as_of=AS_OF, days=days, brand=brand), obj=f"{days} days, {brand}")
