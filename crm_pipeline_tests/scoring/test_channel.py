"""Preferred channel: the channel with the most conversions, or `unknown` with the evidence and the reason."""

from __future__ import annotations

import pytest

from crm_pipeline.scoring.config import build_config, default_raw
from crm_pipeline.settings import merge_override
from crm_pipeline_tests.profiles.warehouse import AS_OF, days_before
from crm_pipeline_tests.scoring.conftest import score


def _build(w):
    for i, day in enumerate((10, 20, 30, 40, 50, 60)):  # st: 6 store purchase days and one web order
        w.order("st", f"S{i}", days_before(day), 30.0, channel="store")
    w.order("st", "S-old", days_before(400), 30.0, channel="store")  # outside the 365-day lookback
    w.order("st", "S-web", days_before(15), 30.0, channel="web")
    for i, day in enumerate((5, 6, 7)):                   # ap: 3 app purchase days (two orders on one of them)
        w.order("ap", f"A{i}", days_before(day), 20.0, channel="app")
    w.order("ap", "A-twice", days_before(7, "18:00"), 20.0, channel="app")
    for i, day in enumerate((3, 13, 23)):                 # em: 3 web orders, each a day after an email click
        w.email_event("em", "click", days_before(day + 1, "20:00"))
        w.order("em", f"E{i}", days_before(day), 25.0, channel="web")
    for day in range(1, 30):                              # br: browses daily, opens emails, never buys
        w.web_event("br", "page_view", days_before(day), url="/")
        w.email_event("br", "open", days_before(day))
    w.order("one", "O1", days_before(4), 50.0, channel="web")   # one: a single web order
    for i, (day, channel) in enumerate(((2, "web"), (3, "web"), (4, "marketplace"), (5, "marketplace"))):
        w.order("tie", f"T{i}", days_before(day), 10.0, channel=channel)   # tie: 2 web, 2 marketplace
    w.order("cx", "C1", days_before(4), 50.0, channel="store", status="cancelled")   # cx: a cancelled order only


@pytest.fixture
def channels(wh):
    _build(wh)
    score(wh)
    return wh.frame("SELECT * FROM channel_preferences WHERE as_of = :d AND brand = ''", d=AS_OF) \
        .set_index("contact_id")


def test_the_channel_with_most_conversions_wins_with_its_share(channels):
    st = channels.loc["st"]
    assert (st.preferred_channel, st.store_conversion_count, st.web_conversion_count) == ("store", 6, 1)
    assert (st.evidence_count, st.preferred_channel_share) == (7, pytest.approx(6 / 7))
    ap = channels.loc["ap"]      # purchase days, not orders: two app orders on one day are one conversion
    assert (ap.preferred_channel, ap.app_conversion_count, ap.evidence_count) == ("app", 3, 3)


def test_a_purchase_after_an_email_click_counts_for_email(channels):
    em = channels.loc["em"]
    assert (em.preferred_channel, em.email_conversion_count, em.web_conversion_count) == ("email", 3, 0)


def test_thin_evidence_no_conversions_or_a_tie_is_unknown_with_the_reason(channels):
    expected = {"one": ("thin_evidence", 1), "br": ("no_conversions", 0), "tie": ("tie", 4)}
    for contact, (reason, evidence) in expected.items():
        row = channels.loc[contact]
        assert (row.preferred_channel, row.reason, row.evidence_count) == ("unknown", reason, evidence), contact
        assert row.preferred_channel_share != row.preferred_channel_share   # NaN: no share without a choice
    # Browsing and opens are not conversions: the daily browser is not called `web`.
    assert channels.loc["br", "web_conversion_count"] == 0
    # A contact with only a cancelled order has nothing to score at all: unknown, and why.
    assert (channels.loc["cx", "preferred_channel"], channels.loc["cx", "reason"]) == \
        ("unknown", "only_cancelled_or_refunded_orders")
    assert channels.loc[["st", "ap", "em"], "reason"].isna().all()


def test_channels_attribution_and_evidence_come_from_the_config(wh):
    _build(wh)
    config = build_config(merge_override(default_raw(), {"channel": {
        "channels": ["web", "store"], "min_evidence": 1}}, "scoring"))
    score(wh, config=config)
    rows = wh.frame("SELECT * FROM channel_preferences WHERE brand = ''").set_index("contact_id")
    assert rows.loc["one", "preferred_channel"] == "web"              # one conversion is enough now
    assert rows.loc["em", "preferred_channel"] == "web"               # no email attribution without email
    assert rows.loc["ap", ["preferred_channel", "reason"]].tolist() == ["unknown", "no_conversions"]
