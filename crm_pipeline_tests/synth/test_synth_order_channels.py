"""An order's shipping, ship-to and contact details follow its channel, as a shop's systems record them."""

from __future__ import annotations

import pandas as pd

from crm_pipeline.synth.commerce import RELAY_DOMAIN
from crm_pipeline_tests.synth.conftest import landed_with_people


def _orders(out) -> pd.DataFrame:
    orders = landed_with_people(out, "orders")
    orders["channel"] = orders["channel"].str.strip().str.lower()
    orders["address"] = orders["email"].str.strip().str.lower()
    orders["fee"] = orders["shipping_total"].astype(float) > 0
    return orders


def test_till_sales_ship_nothing_and_online_orders_ship_unless_collected(synth_out):
    orders = _orders(synth_out[0])
    store = orders[orders["channel"] == "store"]
    online = orders[orders["channel"].isin(["web", "app"])]
    market = orders[orders["channel"] == "marketplace"]
    assert len(store) > 200 and len(market) > 100
    assert not store["fee"].any() and (store["shipping_country"] == "").all()
    assert (market["shipping_country"] != "").all()
    # Click and collect: no ship-to and no fee; a fee only on a delivered order.
    collected = online["shipping_country"] == ""
    assert 0.04 < collected.mean() < 0.12
    assert not online.loc[collected, "fee"].any() and online.loc[~collected, "fee"].mean() > 0.15
    # A web or app checkout always asks for an email; a till sale only sometimes gets one.
    assert (online["address"] != "").all()
    assert 0.2 < (store["address"] != "").mean() < 0.8


def test_marketplace_orders_carry_one_relay_address_per_buyer_or_none(synth_out):
    market = _orders(synth_out[0])
    market = market[market["channel"] == "marketplace"]
    given = market[market["address"] != ""]
    assert 0.5 < len(given) / len(market) < 0.9
    assert given["address"].str.endswith(RELAY_DOMAIN).all()
    # One relay address per buyer and brand, never shared with another buyer.
    assert (given.groupby(["brand", "person_id"])["address"].nunique() == 1).all()
    assert (given.groupby("address")["person_id"].nunique() == 1).all()


def test_subscribers_get_e_receipts_at_the_till_at_the_address_they_subscribed_with(synth_out):
    out = synth_out[0]
    orders = _orders(out)
    store = orders[orders["channel"] == "store"]
    subs = landed_with_people(out, "subscribers")
    subs["subscribed_with"] = subs["email"].str.strip().str.lower()
    subs = subs.drop_duplicates(["brand", "person_id"])[["brand", "person_id", "subscribed_with"]]
    store = store.merge(subs, on=["brand", "person_id"], how="left")
    subscribed = store["subscribed_with"].notna()
    receipt = store["address"] != ""
    assert subscribed.sum() > 100 and (~subscribed).sum() > 100
    assert receipt[subscribed].mean() > 0.5 > receipt[~subscribed].mean() + 0.15
    same = store.loc[subscribed & receipt]
    assert (same["address"] == same["subscribed_with"]).all()
    # Till accounts (identified by phone) now meet their list address on a receipt.
    till = store[store["customer_id"].str.startswith("T")]
    assert len(till) > 20 and (till["phone"] != "").all() and (till["address"] != "").any()
