"""The generated data has the traits later stages are built to handle."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd

END_DATE = dt.date(2025, 6, 30)  # as in conftest


def _frames(landed, entity, brand=None):
    return [df for b, e, df in landed.values() if e == entity and (brand is None or b == brand)]


def _concat(landed, entity, brand=None):
    return pd.concat(_frames(landed, entity, brand), ignore_index=True)


def _with_person(landed, truth, entity):
    """Rows of an entity with the person behind each (from the truth records)."""
    records, manifest = truth["records"], truth["files"]
    out = []
    for _, entry in manifest[manifest["entity"] == entity].iterrows():
        df = landed[entry["file"]][2].copy()
        first = int(entry["first_record"]) - 1
        df["person_id"] = records["person_id"].iloc[first:first + len(df)].to_numpy()
        df["brand"] = entry["brand"]
        out.append(df)
    return pd.concat(out, ignore_index=True)


def test_all_file_formats_and_the_till_timestamp_format(landed):
    suffixes = {path.split("/")[-1].split(".", 1)[1] for path in landed}
    assert {"csv", "csv.gz", "jsonl", "parquet"} <= suffixes
    till = _concat(landed, "orders", "brand_c")["ordered_at"]
    assert till.str.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d").mean() > 0.95
    iso = _concat(landed, "orders", "brand_a")["ordered_at"]
    assert iso.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").mean() > 0.95
    offsets = _concat(landed, "web_events", "brand_c")["occurred_at"]
    assert offsets.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d").any()


def test_country_spellings_and_phone_formats_vary(landed):
    countries = pd.concat([_concat(landed, "customers")["country"], _concat(landed, "orders")["shipping_country"],
                           _concat(landed, "subscribers")["country"]])
    assert {"US", "USA", "United States", "United States of America", "u.s."} <= set(countries)
    assert {"UK", "GB"} <= set(countries) and {"Deutschland", "Germany"} & set(countries)
    phones = pd.concat([_concat(landed, "customers")["phone"], _concat(landed, "orders")["phone"]])
    assert phones.str.fullmatch(r"\(\d{3}\) \d{3}-\d{4}").any()
    assert phones.str.fullmatch(r"\+1 \d{3} \d{3} \d{4}").any()
    assert phones.str.fullmatch(r"\d{10}").any()
    nanp = phones[phones.str.fullmatch(r"\(\d{3}\) \d{3}-\d{4}")]
    assert not nanp.str.startswith("(555)").any()
    assert not nanp.str.match(r"\(\d{3}\) [01]").any()


def test_emails_and_names_drift_between_sources(landed, truth):
    customers = _with_person(landed, truth, "customers")
    people = truth["people"].set_index("person_id")
    email = customers["email"]
    assert email.str.match(r"^\s").any() and email.str.contains(r"[A-Z]").any()
    canonical = people.loc[customers["person_id"], "email"].to_numpy()
    cleaned = email.str.strip().str.lower()
    assert (cleaned == canonical).mean() > 0.6
    first = customers["first_name"].str.title()
    truth_first = people.loc[customers["person_id"], "first_name"].to_numpy()
    differs = customers[(first != truth_first) & (customers["first_name"] != "")]
    assert len(differs) > 0
    assert {"Bob", "Bill", "Liz", "Kate", "Mike", "Tom"} & set(customers["first_name"])
    assert (email == "test@test.com").any() or (email == "noemail@example.com").any()
    store = customers[email.str.startswith("store.", na=False)]
    assert store["email"].nunique() == 1 and store["person_id"].nunique() > 10


def test_people_live_in_households_and_shop_several_brands(landed, truth):
    people = truth["people"]
    shared = people["household_id"].duplicated(keep=False)
    assert 0.02 < shared.mean() < 0.10
    households = people[shared].groupby("household_id")
    assert (households["first_name"].nunique() > 1).all()
    brands_per_person = truth["records"].query("person_id != ''").groupby("person_id")["brand"].nunique()
    assert (brands_per_person >= 2).sum() > 0.1 * len(brands_per_person)
    assert people["phone"].str.fullmatch(r"\+\d{8,15}").all()
    assert people["email"].is_unique


def test_guest_checkouts_and_till_orders(landed):
    orders = _concat(landed, "orders")
    guests = orders[(orders["customer_id"] == "") & (orders["email"] != "")]
    assert 0.04 < len(guests) / len(orders) < 0.2
    till = _concat(landed, "orders", "brand_c")
    till = till[till["customer_id"].str.startswith("T") & (till["email"] == "")]
    assert len(till) > 0 and (till["phone"] != "").all() and (till["channel"] == "store").all()
    customers = _concat(landed, "customers", "brand_c")
    till_accounts = customers[customers["customer_id"].str.startswith("T")]
    assert (till_accounts["email"].isin(["", "store.brand_c@brandc-stores.com"])).all()


def test_anonymous_sessions_are_later_tied_by_login(landed):
    web = _concat(landed, "web_events")
    web = web[web["session_id"] != ""]
    web = web.assign(logged=web["customer_id"] != "")
    per_session = web.groupby("session_id")["logged"].agg(["any", "all"])
    mixed = per_session[per_session["any"] & ~per_session["all"]]
    assert len(mixed) > 0
    anonymous = per_session[~per_session["any"]]
    assert len(anonymous) > len(per_session) * 0.3
    assert (web.loc[web["event_type"].isin(["product_view", "add_to_cart"]), "sku"] != "").mean() > 0.95
    products = set(_concat(landed, "products")["sku"])
    skus = web.loc[web["sku"] != "", "sku"]
    assert skus.isin(products).all()


def test_purchase_counts_are_heterogeneous(landed, truth):
    orders = _with_person(landed, truth, "orders")
    per_buyer = orders.groupby(["brand", "person_id"]).size()
    assert (per_buyer == 1).mean() > 0.3
    assert per_buyer.max() >= 8
    assert 1.5 < per_buyer.mean() < 4
    status = orders["status"].value_counts(normalize=True)
    assert status[["cancelled", "refunded", "partially_refunded"]].between(0.01, 0.06).all()
    items = _concat(landed, "order_items")
    assert (items["quantity"].str.startswith("-")).any()


def test_activity_ends_recently_and_never_after_the_end_date(landed, truth):
    bad = set(zip(truth["bad_rows"]["file"], truth["bad_rows"]["row_number"].astype(int)))
    latest = []
    for path, (_, entity, df) in landed.items():
        if entity not in ("email_events", "web_events"):
            continue
        keep = [i for i in range(len(df)) if (path, i + 1) not in bad]
        when = pd.to_datetime(df["occurred_at"].iloc[keep], format="ISO8601", utc=True)
        latest.append(when.max())
    assert max(latest) < pd.Timestamp(END_DATE, tz="UTC")
    assert max(latest) > pd.Timestamp(END_DATE - dt.timedelta(days=3), tz="UTC")


def test_subscriber_status_matches_email_events(landed):
    subs = _concat(landed, "subscribers", "brand_a")
    events = _concat(landed, "email_events", "brand_a")
    assert ((subs["status"] == "unsubscribed") == (subs["unsubscribed_at"] != "")).all()
    assert (subs.loc[subs["status"] == "pending", "subscribed_at"] == "").all()
    unsub_ids = set(events.loc[events["event_type"] == "unsubscribe", "subscriber_id"]) - {""}
    unsubscribed = set(subs.loc[subs["status"] == "unsubscribed", "subscriber_id"])
    assert unsub_ids <= unsubscribed
    assert (events.loc[events["event_type"] == "click", "url"] != "").all()
    assert {"send", "open", "click", "bounce", "unsubscribe"} <= set(events["event_type"])
    assert re.fullmatch(r"\{.*\}", subs.loc[subs["preferences"] != "", "preferences"].iloc[0])
