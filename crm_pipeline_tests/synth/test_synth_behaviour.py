"""The behaviour truth (dropout day, channel mix) matches the orders the generator landed."""

from __future__ import annotations

import pandas as pd

from crm_pipeline_tests.synth.conftest import landed_with_people


def _orders(out) -> pd.DataFrame:
    return landed_with_people(out, "orders")


def test_a_dropped_out_buyer_never_orders_after_the_dropout_day(synth_out):
    out, _ = synth_out
    dropout = pd.read_csv(out / "truth" / "dropout.csv", dtype=str, keep_default_na=False)
    orders = _orders(out)
    orders = orders[orders["ordered_at"].str.match(r"^\d{4}-\d{2}-\d{2}")]   # the ISO-written brands
    orders["day"] = orders["ordered_at"].str[:10]
    last = orders.groupby(["person_id", "brand"])["day"].max().rename("last_day").reset_index()
    joined = last.merge(dropout, on=["person_id", "brand"], how="left")
    assert joined["dropout_date"].notna().all()          # every buyer with an order has a truth row
    dropped = joined[joined["dropout_date"] != ""]
    assert len(dropped) > 100
    # The dropout is right after the last purchase (a day apart at most: local offsets in the written time).
    gap = (pd.to_datetime(dropped["dropout_date"]) - pd.to_datetime(dropped["last_day"])).dt.days
    assert gap.abs().le(1).mean() > 0.99, gap.describe()


def test_the_true_channel_is_the_largest_share_and_till_buyers_buy_in_store(synth_out):
    out, _ = synth_out
    channels = pd.read_csv(out / "truth" / "channels.csv")
    shares = channels[["share_web", "share_app", "share_store", "share_marketplace"]]
    assert (shares.sum(axis=1).round(3) == 1).all()
    assert (shares.idxmax(axis=1).str.removeprefix("share_") == channels["preferred_channel"]).all()
    # Store-only (till) buyers exist and are told apart from the rest, whose orders follow their own mix.
    assert (channels["preferred_channel"] == "store").sum() > 0
    orders = _orders(out)
    store_people = set(channels.loc[channels["share_store"] == 1, "person_id"])
    assert (orders.loc[orders["person_id"].isin(store_people), "channel"].str.lower() == "store").mean() > 0.95


def test_people_prefer_different_channels_and_their_orders_follow_their_own_mix(synth_out):
    out, _ = synth_out
    channels = pd.read_csv(out / "truth" / "channels.csv")
    # Every channel is the favourite of a real share of buyers, and none holds most of them outright.
    favourites = channels["preferred_channel"].value_counts(normalize=True)
    assert set(favourites.index) == {"web", "app", "store", "marketplace"}
    assert favourites.min() > 0.03 and favourites.max() < 0.7, favourites
    # A buyer's orders land mostly in their own favourite channel, whichever it is (not the population's).
    orders = _orders(out).merge(channels[["person_id", "preferred_channel"]], on="person_id")
    orders = orders[orders.groupby("person_id")["person_id"].transform("size") >= 4]
    in_favourite = (orders["channel"].str.lower() == orders["preferred_channel"]).groupby(orders["preferred_channel"])
    assert (in_favourite.mean() > 0.6).all(), in_favourite.mean()
