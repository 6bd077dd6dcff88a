"""profile_360 and profile_360_brand on hand-built records: the figures a marketer reads and trusts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before, ts


@pytest.fixture
def wh(engine) -> Warehouse:
    return Warehouse(engine)


def brand_row(wh: Warehouse, contact: str, brand: str) -> dict:
    return wh.one("SELECT * FROM profile_360_brand WHERE contact_id = :c AND brand = :b", c=contact, b=brand)


def overall(wh: Warehouse, contact: str) -> dict:
    return wh.one("SELECT * FROM profile_360 WHERE contact_id = :c", c=contact)


def shop(wh: Warehouse) -> None:
    """K1 buys in two brands; one cancelled and one fully refunded order must not count."""
    for sku, price, category in [("A1", 10.0, "Women > Shoes > Boots"), ("A2", 50.0, "Men > Shirts"),
                                 ("A3", 100.0, "Men > Coats")]:
        wh.product(sku, price, category)
    wh.product("B1", 30.0, "Home > Kitchen", brand="beta")
    wh.order("K1", "O1", days_before(40), 100.0, lines=[("A1", 3, 10.0), ("A3", 1, 70.0)])
    wh.order("K1", "O2", days_before(10), 60.0, status="partially_refunded", updated_at=days_before(5),
             lines=[("A2", 1, 50.0), ("A1", 1, 10.0), ("A1", -1, 10.0)])
    wh.order("K1", "O3", days_before(3), 500.0, status="cancelled", lines=[("A3", 5, 100.0)])
    wh.order("K1", "O4", days_before(2), 80.0, status="refunded", lines=[("A2", 2, 40.0)])
    wh.order("K1", "O5", days_before(400), 30.0, brand="beta", currency="EUR", lines=[("B1", 1, 30.0)])


def test_order_figures_per_brand_exclude_cancelled_and_refunded_orders(wh):
    shop(wh)
    build_profiles(wh.engine, as_of=AS_OF)
    alpha = brand_row(wh, "K1", "alpha")
    assert alpha["order_count"] == 2
    assert alpha["revenue"] == pytest.approx(160.0)
    assert alpha["average_order_value"] == pytest.approx(80.0)
    assert alpha["currencies"] == "USD"
    assert alpha["first_order_date"] == AS_OF - dt.timedelta(days=40)
    assert alpha["last_order_date"] == AS_OF - dt.timedelta(days=10)
    # 3 + 1 + 1 + 1 units bought on purchases, one returned on the partially refunded order
    assert (alpha["purchased_unit_count"], alpha["returned_unit_count"]) == (6, 1)
    assert alpha["return_rate"] == pytest.approx(1 / 6)
    beta = brand_row(wh, "K1", "beta")
    assert (beta["order_count"], beta["revenue"], beta["currencies"]) == (1, pytest.approx(30.0), "EUR")
    assert beta["return_rate"] == 0.0


def test_overall_figures_span_brands_without_fx_conversion(wh):
    shop(wh)
    build_profiles(wh.engine, as_of=AS_OF)
    p = overall(wh, "K1")
    assert (p["brands"], p["brand_count"]) == ("alpha,beta", 2)
    assert p["order_count"] == 3
    assert p["revenue"] == pytest.approx(190.0)  # 160 USD + 30 EUR, summed as they are
    assert p["currencies"] == "EUR,USD"
    assert p["average_order_value"] == pytest.approx(190.0 / 3)
    assert p["first_order_date"] == AS_OF - dt.timedelta(days=400)
    assert p["last_order_date"] == AS_OF - dt.timedelta(days=10)
    assert p["return_rate"] == pytest.approx(1 / 7)


def test_top_categories_and_price_band(wh):
    shop(wh)
    wh.web_event("K1", "product_view", days_before(1), sku="A2")
    wh.web_event("K1", "add_to_cart", days_before(1), sku="A3")
    wh.web_event("K1", "product_view", days_before(1), sku="A1")
    wh.web_event("K1", "page_view", days_before(1), url="https://shop/")
    build_profiles(wh.engine, as_of=AS_OF)
    alpha = brand_row(wh, "K1", "alpha")
    assert alpha["top_category_bought"] == "Women"      # 4 units of A1 against 1 + 1 of Men
    assert alpha["price_band_bought"] == "low"          # A1 is in the cheapest tercile
    assert alpha["top_category_browsed"] == "Men"       # 2 product events against 1
    assert brand_row(wh, "K1", "beta")["top_category_bought"] == "Home"
    assert overall(wh, "K1")["top_category_bought"] == "Women"


def test_engagement_windows_count_as_of_and_the_days_before_it(wh):
    for days in (0, 29, 30, 89, 90, 364, 365):
        wh.email_event("K1", "open", days_before(days))
    wh.email_event("K1", "open", ts(f"{AS_OF} 23:59:59"))
    wh.email_event("K1", "open", ts(f"{AS_OF + dt.timedelta(days=1)} 00:00"))  # after as_of
    wh.email_event("K1", "click", days_before(31))
    wh.email_event("K1", "send", days_before(1))
    build_profiles(wh.engine, as_of=AS_OF)
    p = brand_row(wh, "K1", "alpha")
    assert (p["email_open_30d_count"], p["email_open_90d_count"], p["email_open_365d_count"]) == (3, 5, 7)
    assert (p["email_click_30d_count"], p["email_click_90d_count"], p["email_click_365d_count"]) == (0, 1, 1)
    assert overall(wh, "K1")["email_open_365d_count"] == 7


def test_last_open_click_and_browse(wh):
    wh.email_event("K1", "open", days_before(5))
    wh.email_event("K1", "open", days_before(2))
    wh.email_event("K1", "click", days_before(4), url="https://shop/a")
    wh.web_event("K1", "page_view", days_before(7), brand="beta")
    wh.web_event("K1", "search", days_before(1), brand="beta", url="https://beta/search?q=boots")
    wh.web_event("K1", "page_view", days_before(-1), brand="beta")  # the day after as_of
    build_profiles(wh.engine, as_of=AS_OF)
    alpha, beta, p = brand_row(wh, "K1", "alpha"), brand_row(wh, "K1", "beta"), overall(wh, "K1")
    assert alpha["last_open_at"] == days_before(2)
    assert alpha["last_click_at"] == days_before(4)
    assert pd.isna(alpha["last_browse_at"])
    assert beta["last_browse_at"] == days_before(1)
    assert (p["last_open_at"], p["last_browse_at"]) == (days_before(2), days_before(1))


def consent(wh: Warehouse, contact: str, brand: str = "alpha") -> bool:
    return bool(brand_row(wh, contact, brand)["email_consent"])


def test_consent_follows_the_latest_subscribe_and_opt_outs_after_it(wh):
    # K1: subscribed, then unsubscribed by an email event -> no consent
    wh.subscriber("K1", "S1", "k1@x.com", "subscribed", subscribed_at=days_before(100))
    wh.email_event("K1", "unsubscribe", days_before(50))
    # K2: unsubscribed, then subscribed again (a newer subscribe) -> consent
    wh.subscriber("K2", "S2", "k2@x.com", "subscribed", subscribed_at=days_before(20), updated_at=days_before(20))
    wh.email_event("K2", "unsubscribe", days_before(50))
    # K3: a complaint and a bounce count as opting out too; a purchase the same day does not opt back in
    wh.subscriber("K3", "S3", "k3@x.com", "subscribed", subscribed_at=days_before(100))
    wh.email_event("K3", "complaint", days_before(1, "09:00"))
    wh.order("K3", "O9", days_before(1, "10:00"), 20.0)
    # K4: the list itself says unsubscribed
    wh.subscriber("K4", "S4", "k4@x.com", "unsubscribed", subscribed_at=days_before(100),
                  unsubscribed_at=days_before(10))
    # K5: subscribed to alpha, opted out of beta only
    wh.subscriber("K5", "S5", "k5@x.com", "subscribed", subscribed_at=days_before(100))
    wh.subscriber("K5", "S6", "k5@x.com", "subscribed", brand="beta", subscribed_at=days_before(100))
    wh.email_event("K5", "bounce", days_before(3), brand="beta")
    build_profiles(wh.engine, as_of=AS_OF)
    assert [consent(wh, k) for k in ("K1", "K2", "K3", "K4")] == [False, True, False, False]
    assert (consent(wh, "K5", "alpha"), consent(wh, "K5", "beta")) == (True, False)
    assert brand_row(wh, "K4", "alpha")["subscription_status"] == "unsubscribed"
    assert brand_row(wh, "K2", "alpha")["subscribed_date"] == AS_OF - dt.timedelta(days=20)
    k5 = overall(wh, "K5")
    assert (k5["subscribed_brands"], k5["email_consent_brands"], k5["email_consent"]) == ("alpha,beta", "alpha", True)
    assert overall(wh, "K1")["email_consent"] == False  # noqa: E712 (a numpy bool)


def test_subscription_is_read_as_it_stood_on_as_of(wh):
    # unsubscribed the day after as_of: on as_of the person was still subscribed
    wh.subscriber("K1", "S1", "k1@x.com", "unsubscribed", subscribed_at=days_before(30),
                  unsubscribed_at=days_before(-1), updated_at=days_before(-1))
    # subscribed only after as_of: not on the list yet
    wh.subscriber("K2", "S2", "k2@x.com", "subscribed", subscribed_at=days_before(-2), updated_at=days_before(-2))
    wh.customer("K2", "C2", updated_at=days_before(300))
    build_profiles(wh.engine, as_of=AS_OF)
    k1 = brand_row(wh, "K1", "alpha")
    assert (k1["subscription_status"], bool(k1["email_consent"])) == ("subscribed", True)
    assert pd.isna(brand_row(wh, "K2", "alpha")["subscription_status"])


def tables(wh: Warehouse) -> dict[str, pd.DataFrame]:
    order = {"golden_records": "contact_id, field", "profile_360": "contact_id",
             "profile_360_brand": "contact_id, brand", "timeline": "contact_id, event_number"}
    return {t: wh.frame(f"SELECT * FROM {t} ORDER BY {o}") for t, o in order.items()}


def test_nothing_after_as_of_changes_the_profile(wh):
    shop(wh)
    wh.customer("K1", "C1", first_name="Ann", email="ann@x.com", updated_at=days_before(30))
    wh.subscriber("K1", "S1", "ann@x.com", "subscribed", subscribed_at=days_before(60))
    build_profiles(wh.engine, as_of=AS_OF)
    before = tables(wh)
    after_day = days_before(-1, "08:00")
    wh.order("K1", "O-next", after_day, 999.0, lines=[("A3", 9, 100.0)])
    wh.email_event("K1", "unsubscribe", after_day)
    wh.email_event("K1", "open", after_day)
    wh.web_event("K1", "product_view", after_day, sku="A2")
    wh.customer("K1", "C9", first_name="Later", email="later@x.com", updated_at=after_day)
    wh.customer("K7", "C7", first_name="New", updated_at=after_day)  # a person who appears later
    build_profiles(wh.engine, as_of=AS_OF)
    for name, frame in tables(wh).items():
        pd.testing.assert_frame_equal(frame, before[name], obj=name)


def test_a_rerun_gives_identical_tables(wh):
    shop(wh)
    wh.customer("K1", "C1", first_name="Ann", last_name="Lee", email="ann@x.com", updated_at=days_before(30))
    wh.subscriber("K2", "S2", "bo@x.com", "subscribed", subscribed_at=days_before(60), first_name="Bo")
    wh.email_event("K2", "open", days_before(3))
    first = build_profiles(wh.engine, as_of=AS_OF)
    before = tables(wh)
    second = build_profiles(wh.engine, as_of=AS_OF)
    for name, frame in tables(wh).items():
        pd.testing.assert_frame_equal(frame, before[name], obj=name)
    sizes = ("contacts_profiled", "contact_brand_rows", "golden_values", "timeline_rows")
    assert {k: first[k] for k in sizes} == {k: second[k] for k in sizes}
    assert first["contacts_profiled"] == 2 and len(before["profile_360_brand"]) == 3
    # nothing changed and the day did not move: the rerun recomputes no contact
    assert (first["mode"], second["mode"], second["contacts_recomputed"]) == ("full", "incremental", 0)
