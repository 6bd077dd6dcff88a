"""The timeline a service agent scrolls, and `crm-pipeline profile --email X`: finding and printing a person."""

from __future__ import annotations

import pytest

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.profiles.lookup import find_contact, render_profile
from crm_pipeline.profiles.timeline import latest_timeline
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before


@pytest.fixture
def wh(engine) -> Warehouse:
    w = Warehouse(engine)
    w.product("A-000123", 89.0, "Women > Shoes > Boots", "Leather Boots")
    w.customer("K1", "C1", first_name="Jane", last_name="Doe", email="jane.doe@gmail.com", phone="+14152340001",
               city="Springfield", country="US", updated_at=days_before(300))
    w.subscriber("K1", "S1", "jane.doe@gmail.com", "unsubscribed", source="popup",
                 subscribed_at=days_before(200), unsubscribed_at=days_before(2))
    w.order("K1", "O-123", days_before(20, "10:00"), 79.9, lines=[("A-000123", 1, 79.9)])
    w.order("K1", "O-124", days_before(10, "10:00"), 89.0, status="partially_refunded",
            updated_at=days_before(8, "09:00"), lines=[("A-000123", 2, 89.0), ("A-000123", -1, 89.0)])
    w.email_event("K1", "send", days_before(6, "08:00"), campaign_id="CP-7")
    w.email_event("K1", "open", days_before(6, "09:00"), campaign_id="CP-7")
    w.email_event("K1", "click", days_before(6, "09:01"), campaign_id="CP-7", url="https://shop.example/boots")
    w.web_event("K1", "product_view", days_before(6, "09:02"), sku="A-000123", url="https://shop.example/p/123")
    w.web_event("K1", "add_to_cart", days_before(6, "09:03"), sku="A-000123")
    w.web_event("K1", "page_view", days_before(-1), url="https://shop.example/")  # after as_of
    w.customer("K2", "C2", first_name="Bo", email="bo@x.com", updated_at=days_before(5))
    build_profiles(w.engine, as_of=AS_OF)
    return w


def test_timeline_lists_every_interaction_in_time_order_with_readable_details(wh):
    t = wh.frame("SELECT * FROM timeline WHERE contact_id = 'K1' ORDER BY event_number")
    assert list(t.event_number) == list(range(1, len(t) + 1))
    assert t.occurred_at.is_monotonic_increasing
    assert list(zip(t.event_type, t.detail)) == [
        ("subscribe", "subscribed jane.doe@gmail.com via popup"),
        ("order", "order O-123 delivered 79.90 USD"),
        ("order", "order O-124 partially_refunded 89.00 USD"),
        ("return", "returned 1 x A-000123 Leather Boots (order O-124)"),
        ("email_send", "sent campaign CP-7"),
        ("email_open", "opened campaign CP-7"),
        ("email_click", "clicked https://shop.example/boots"),
        ("product_view", "viewed A-000123 Leather Boots"),
        ("add_to_cart", "added A-000123 Leather Boots to cart"),
        ("unsubscribe", "unsubscribed jane.doe@gmail.com"),
    ]
    ret = t[t.event_type == "return"].iloc[0]
    assert (ret.source_entity, ret.source_key, ret.occurred_at) == ("order_items", "O-124:2", days_before(8, "09:00"))
    assert set(t.as_of) == {AS_OF}


def test_latest_timeline_is_newest_first_and_limited(wh):
    with wh.engine.connect() as conn:
        latest = latest_timeline(conn, "K1", limit=3)
    assert list(latest.event_type) == ["unsubscribe", "add_to_cart", "product_view"]
    with wh.engine.connect() as conn:
        assert latest_timeline(conn, "nobody").empty


@pytest.mark.parametrize("query", [{"email": "jane.doe@gmail.com"}, {"email": "  Jane.Doe@GMAIL.com "},
                                   {"email": "janedoe+news@googlemail.com"}, {"phone": "(415) 234-0001"},
                                   {"contact_id": "K1"}])
def test_find_contact_by_standardized_email_phone_or_id(wh, query):
    with wh.engine.connect() as conn:
        assert find_contact(conn, **query) == "K1"


def test_find_contact_returns_none_for_a_stranger(wh):
    with wh.engine.connect() as conn:
        assert find_contact(conn, email="stranger@x.com") is None
        assert find_contact(conn, contact_id="K404") is None
        assert find_contact(conn, email="not an email") is None


def test_render_profile_shows_golden_fields_figures_consent_and_latest_entries(wh):
    with wh.engine.connect() as conn:
        text = render_profile(conn, find_contact(conn, email="jane.doe@gmail.com"), limit=4)
    assert text.startswith("Jane Doe  (contact K1, as of 2025-06-30)")
    assert "jane.doe@gmail.com" in text and "+14152340001" in text and "Springfield, US" in text
    assert "orders 2  revenue 168.90 USD" in text
    assert "return rate 33.3%" in text
    assert "subscription unsubscribed" in text and "email consent no" in text
    assert "Latest 4 interactions" in text
    body = text.split("Latest 4 interactions")[1]
    assert "unsubscribed jane.doe@gmail.com" in body and "added A-000123 Leather Boots to cart" in body
    assert "order O-123" not in body  # older than the latest four


def test_render_profile_of_an_unknown_contact_says_so(wh):
    with wh.engine.connect() as conn:
        assert render_profile(conn, "K404").startswith("No profile for contact K404")
