"""Preferences on hand-built purchase and browse histories: top values with shares, channel, email times, discount."""

from __future__ import annotations

import pytest

from crm_pipeline_tests.profiles.warehouse import AS_OF, days_before
from crm_pipeline_tests.scoring.conftest import product, score


def _build(wh):
    # Catalogue terciles: 10 low, 50 mid, 100 high. A2 names no maker: the selling brand stands in.
    product(wh, "A1", 10.0, "Women > Shoes", maker="Acme")
    product(wh, "A2", 50.0, "Women > Bags")
    product(wh, "A3", 100.0, "Men > Coats", maker="Zed")
    wh.order("p", "O1", days_before(40), 130.0, channel="web", subtotal=130.0, discount_total=13.0,
             lines=[("A1", 3, 10.0), ("A3", 1, 100.0)])
    wh.order("p", "O2", days_before(20), 50.0, channel="store", subtotal=50.0, discount_total=0.0,
             lines=[("A2", 1, 50.0)])
    wh.order("p", "O3", days_before(10), 40.0, channel="store", subtotal=50.0, discount_total=10.0,
             lines=[("A2", 1, 50.0), ("A2", -1, 50.0)])  # a returned line is not a unit bought
    wh.order("p", "O4", days_before(5), 500.0, channel="store", status="cancelled", lines=[("A3", 5, 100.0)])
    wh.web_event("p", "product_view", days_before(3), sku="A3")
    wh.web_event("p", "product_view", days_before(2), sku="A3")
    wh.web_event("p", "add_to_cart", days_before(2), sku="A2")
    wh.web_event("p", "page_view", days_before(2), url="/home")  # no product: not a browse of anything
    wh.email_event("p", "open", days_before(0, "09:15"))  # AS_OF is a Monday
    wh.email_event("p", "click", days_before(7, "09:40"))  # Monday
    wh.email_event("p", "open", days_before(6, "20:05"))  # Tuesday
    wh.email_event("p", "send", days_before(6, "08:00"))  # a send is not engagement
    wh.email_event("q", "send", days_before(1))  # known, nothing bought, browsed or opened


@pytest.fixture
def prefs(wh):
    _build(wh)
    score(wh)
    return wh.frame("SELECT * FROM contact_preferences WHERE as_of = :d", d=AS_OF).set_index("contact_id")


def test_top_values_bought_and_browsed_with_shares(prefs):
    wide = prefs
    p = wide.loc["p"]
    # units bought on purchases: A1 x3, A3 x1, A2 x2 (the cancelled order and the return do not count)
    assert (p.top_category_bought, p.top_category_bought_share) == ("Women", pytest.approx(5 / 6))
    assert (p.top_brand_bought, p.top_brand_bought_share) == ("Acme", pytest.approx(3 / 6))
    assert (p.price_band_bought, p.price_band_bought_share) == ("low", pytest.approx(3 / 6))
    # browsed: A3 viewed twice, A2 added to the cart once
    assert (p.top_category_browsed, p.top_category_browsed_share) == ("Men", pytest.approx(2 / 3))
    assert (p.top_brand_browsed, p.top_brand_browsed_share) == ("Zed", pytest.approx(2 / 3))
    assert (p.price_band_browsed, p.price_band_browsed_share) == ("high", pytest.approx(2 / 3))
    assert (p.bought_unit_count, p.browsed_product_count) == (6, 3)


def test_purchase_channel_email_times_and_discount(prefs):
    wide = prefs
    p = wide.loc["p"]
    assert (p.preferred_purchase_channel, p.preferred_purchase_channel_share) == ("store", pytest.approx(2 / 3))
    assert (p.preferred_email_weekday, p.preferred_email_weekday_share) == ("Monday", pytest.approx(2 / 3))
    assert (p.preferred_email_hour, p.preferred_email_hour_share) == (9, pytest.approx(2 / 3))
    assert p.email_engagement_count == 3
    assert p.average_discount_rate == pytest.approx((13 / 130 + 0 + 10 / 50) / 3)  # 0.1
    assert p.discounted_order_share == pytest.approx(2 / 3)


def test_lists_keep_the_runners_up_best_first(prefs):
    p = prefs.loc["p"]
    assert p.top_brands_bought == "Acme 50%; alpha 33%; Zed 17%"  # 3, 2 and 1 of 6 units
    assert p.top_categories_bought == "Women 83%; Men 17%"
    assert p.price_bands_browsed == "high 67%; mid 33%"


def test_a_contact_with_no_history_has_a_row_without_values(prefs):
    q = prefs.loc["q"]
    assert q[["top_category_bought", "preferred_purchase_channel", "preferred_email_weekday"]].isna().all()
    assert (q.bought_unit_count, q.browsed_product_count, q.email_engagement_count) == (0, 0, 0)
    assert q[["top_categories_bought", "top_brands_browsed"]].isna().all()
