"""Preferred channel: the Dirichlet posterior with a population prior, with and without history."""

from __future__ import annotations

import pytest

from crm_pipeline.scoring.config import build_config, default_raw
from crm_pipeline.settings import merge_override
from crm_pipeline_tests.profiles.warehouse import AS_OF, days_before
from crm_pipeline_tests.scoring.conftest import score


def _build(w):
    for day in (1, 2, 3, 4, 5):  # e: opens on 5 days (and a click on one of them: still 5 days)
        w.email_event("e", "open", days_before(day))
    w.email_event("e", "click", days_before(1, "18:00"))
    for day, at in ((1, "10:00"), (1, "11:00"), (2, "10:00"), (3, "10:00")):  # w: web on 3 days
        w.web_event("w", "page_view", days_before(day, at), url="/")
    for i, day in enumerate((10, 20, 30, 40, 50, 60)):  # st: 6 store purchase days
        w.order("st", f"S{i}", days_before(day), 30.0, channel="store")
    w.order("st", "S-old", days_before(400), 30.0, channel="store")  # outside the 365-day lookback
    w.order("st", "S-web", days_before(15), 30.0, channel="web")  # a web order is not a store visit
    w.email_event("n", "send", days_before(3))  # n: known, no response at all


@pytest.fixture
def channels(wh):
    _build(wh)
    score(wh)
    return wh.frame("SELECT * FROM channel_preferences WHERE as_of = :d AND brand = ''", d=AS_OF) \
        .set_index("contact_id")


# Population: email 5 (e), web 3 (w), store 6 (st) -> shares 5/14, 3/14, 6/14; prior strength 4.
SHARE = {"email": 5 / 14, "web": 3 / 14, "store": 6 / 14}


def _posterior(counts: dict[str, int], strength: float = 4) -> dict[str, float]:
    total = sum(counts.values())
    return {c: (counts.get(c, 0) + strength * SHARE[c]) / (total + strength) for c in SHARE}


def test_without_history_the_population_favourite_wins(channels):
    n = channels.loc["n"]
    assert n.preferred_channel == "store"
    assert n.preferred_channel_probability == pytest.approx(6 / 14)
    assert (n.p_email, n.p_web, n.p_store) == (pytest.approx(5 / 14), pytest.approx(3 / 14), pytest.approx(6 / 14))
    assert (n.evidence_count, bool(n.low_evidence)) == (0, True)


def test_with_history_the_posterior_leans_on_the_contacts_own_responses(channels):
    for contact, counts, expected in (("e", {"email": 5}, "email"), ("w", {"web": 3}, "web"),
                                      ("st", {"store": 6}, "store")):
        row = channels.loc[contact]
        p = _posterior(counts)
        assert row.preferred_channel == expected, contact
        assert row.preferred_channel_probability == pytest.approx(p[expected])
        assert (row.p_email, row.p_web, row.p_store) == (pytest.approx(p["email"]), pytest.approx(p["web"]),
                                                          pytest.approx(p["store"]))
    e = channels.loc["e"]
    assert e.preferred_channel_probability == pytest.approx((5 + 4 * 5 / 14) / 9)
    # the evidence is stored beside the choice
    assert tuple(channels.loc["e", ["email_response_count", "web_visit_count", "store_visit_count"]]) == (5, 0, 0)
    assert tuple(channels.loc["w", ["email_response_count", "web_visit_count", "store_visit_count"]]) == (0, 3, 0)
    assert tuple(channels.loc["st", ["evidence_count", "store_visit_count"]]) == (6, 6)
    assert not bool(channels.loc["w", "low_evidence"])


def test_a_little_history_moves_a_contact_only_part_of_the_way(wh):
    _build(wh)
    wh.email_event("few", "open", days_before(2))  # one open: 1 response against a prior of 4
    score(wh)
    row = wh.one("SELECT * FROM channel_preferences WHERE contact_id = 'few' AND brand = ''")
    share = {"email": 6 / 15, "web": 3 / 15, "store": 6 / 15}  # the population now has 6 email responses
    assert row["p_email"] == pytest.approx((1 + 4 * share["email"]) / 5)
    assert row["p_store"] == pytest.approx((0 + 4 * share["store"]) / 5)
    assert row["preferred_channel"] == "email" and row["low_evidence"]


def test_channels_and_prior_strength_come_from_the_config(wh):
    _build(wh)
    config = build_config(merge_override(default_raw(), {"channel": {"channels": ["email", "web"], "prior_strength": 0}}, "scoring"))
    score(wh, config=config)
    rows = wh.frame("SELECT * FROM channel_preferences WHERE brand = ''").set_index("contact_id")
    assert rows.loc["w", "p_web"] == pytest.approx(1.0) and rows["p_store"].isna().all()
    assert rows.loc["st", "preferred_channel"] == "email"  # store is not a channel here; no evidence: prior shares
    assert rows.loc["st", "p_email"] == pytest.approx(5 / 8)
