"""Survivorship: each rule picks the value a data steward expects, and bad YAML fails naming the key."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.profiles.survivorship import SurvivorshipError, default_rules, load_rules, parse_rules
from crm_pipeline.warehouse.profile_schema import GOLDEN_FIELDS
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the fixture)
from crm_pipeline_tests.profiles.test_incremental_backends import backend_engine
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before


@pytest.fixture
def wh(engine) -> Warehouse:
    return Warehouse(engine)


@pytest.fixture(params=["duckdb", "postgresql"])
def wh_any(request, tmp_path) -> Warehouse:
    engine = backend_engine(request, tmp_path, "survivorship")
    yield Warehouse(engine)
    engine.dispose()


def golden(wh: Warehouse, contact: str = "K1") -> dict:
    return wh.one("SELECT * FROM profile_360 WHERE contact_id = :c", c=contact)


def winner(wh: Warehouse, field: str, contact: str = "K1") -> dict:
    return wh.one("SELECT * FROM golden_records WHERE contact_id = :c AND field = :f", c=contact, f=field)


def write_rules(tmp_path, body: str):
    path = tmp_path / "rules.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults_cover_every_golden_field():
    assert set(default_rules()) == set(GOLDEN_FIELDS)


def test_most_recent_takes_the_latest_record_with_a_value(wh, tmp_path):
    wh.customer("K1", "C1", phone="+14152340001", updated_at=days_before(90))
    wh.order("K1", "O1", days_before(10), 10.0, phone="+14152340002")
    wh.order("K1", "O2", days_before(5), 10.0)  # newest, but without a phone: no candidate
    wh.customer("K1", "C2", brand="beta", phone="+14152340003", updated_at=days_before(20))
    build_profiles(wh.engine, as_of=AS_OF)
    assert golden(wh)["phone"] == "+14152340002"
    w = winner(wh, "phone")
    assert (w["rule"], w["source_entity"], w["source_key"], w["candidate_count"]) == ("most_recent", "orders", "O1", 3)


def test_most_frequent_takes_the_commonest_value_and_breaks_ties_by_recency(wh):
    wh.customer("K1", "C1", email="work@x.com", updated_at=days_before(1))
    for i, days in enumerate((30, 20, 10)):
        wh.order("K1", f"O{i}", days_before(days), 10.0, email="home@x.com")
    # K2: one record each -> a tie, the most recent wins
    wh.customer("K2", "C2", email="old@x.com", updated_at=days_before(50))
    wh.subscriber("K2", "S2", "new@x.com", "subscribed", subscribed_at=days_before(5))
    build_profiles(wh.engine, as_of=AS_OF)
    assert golden(wh)["email"] == "home@x.com"
    assert winner(wh, "email")["source_key"] == "O2"  # the most recent record carrying the winning value
    assert golden(wh, "K2")["email"] == "new@x.com"


def test_source_priority_prefers_the_first_listed_source_then_the_most_recent(wh):
    wh.subscriber("K1", "S1", "a@x.com", "subscribed", first_name="Sub", subscribed_at=days_before(1))
    wh.customer("K1", "C1", first_name="Older", country="DE", updated_at=days_before(200))
    wh.customer("K1", "C2", brand="beta", first_name="Newer", updated_at=days_before(100))
    wh.order("K1", "O1", days_before(3), 10.0, shipping_country="FR")
    build_profiles(wh.engine, as_of=AS_OF)
    p = golden(wh)
    assert p["first_name"] == "Newer"  # customers before subscribers; among customers the most recent
    assert p["country"] == "DE"        # default: customers, orders, subscribers


def test_a_user_file_overrides_only_the_fields_it_names(wh, tmp_path):
    wh.subscriber("K1", "S1", "a@x.com", "subscribed", first_name="Sub", subscribed_at=days_before(1))
    wh.customer("K1", "C1", first_name="Cust", last_name="Lee", country="DE", updated_at=days_before(200))
    wh.order("K1", "O1", days_before(3), 10.0, shipping_country="FR")
    path = write_rules(tmp_path, """
survivorship:
  fields:
    first_name: {rule: source_priority, sources: [subscribers, customers]}
    country: most_recent
""")
    build_profiles(wh.engine, as_of=AS_OF, survivorship_file=path)
    p = golden(wh)
    assert (p["first_name"], p["country"], p["last_name"]) == ("Sub", "FR", "Lee")
    assert winner(wh, "country")["rule"] == "most_recent"
    assert load_rules(path)["email"] == default_rules()["email"]


def test_sources_left_out_of_a_priority_list_are_not_used(wh, tmp_path):
    wh.order("K1", "O1", days_before(3), 10.0, shipping_country="FR")
    wh.subscriber("K1", "S1", "a@x.com", "subscribed", subscribed_at=days_before(1))
    path = write_rules(tmp_path, "survivorship:\n  fields:\n    country: {rule: source_priority, sources: [customers]}\n")
    build_profiles(wh.engine, as_of=AS_OF, survivorship_file=path)
    assert golden(wh)["country"] is None


def test_records_after_as_of_offer_no_values_and_birth_date_stays_a_date(wh):
    wh.customer("K1", "C1", first_name="Then", birth_date=dt.date(1990, 2, 3), updated_at=days_before(10))
    wh.customer("K1", "C2", brand="beta", first_name="Later", birth_date=dt.date(1991, 1, 1),
                updated_at=days_before(-1))
    build_profiles(wh.engine, as_of=AS_OF)
    p = golden(wh)
    assert (p["first_name"], p["birth_date"]) == ("Then", dt.date(1990, 2, 3))


@pytest.mark.parametrize("body, message", [
    ("survivorship:\n  fields:\n    email: {rule: newest}\n",
     "survivorship.fields.email.rule: 'newest' is not one of most_recent, most_frequent, source_priority"),
    ("survivorship:\n  fields:\n    nickname: most_recent\n",
     "survivorship.fields.nickname: unknown field"),
    ("survivorship:\n  fields:\n    email: {rule: source_priority, sources: [customers, crm]}\n",
     "survivorship.fields.email.sources[1]: 'crm' is not one of customers, subscribers, orders"),
    ("survivorship:\n  fields:\n    birth_date: {rule: source_priority, sources: [subscribers]}\n",
     "survivorship.fields.birth_date.sources[0]: 'subscribers' has no birth_date (sources with it: customers)"),
    ("survivorship:\n  fields:\n    email: {rule: source_priority}\n",
     "survivorship.fields.email.sources: source_priority needs an ordered list"),
    ("survivorship:\n  fields:\n    email: {rule: most_recent, sources: [orders]}\n",
     "survivorship.fields.email.sources: only used by rule source_priority"),
    ("survivorship:\n  fields:\n    email: {rule: most_recent, order: 1}\n",
     "survivorship.fields.email.order: unknown key; expected rule, sources"),
    ("survivorship:\n  feilds: {}\n", "survivorship.feilds: unknown key; expected fields"),
    ("fields:\n  email: most_recent\n", "survivorship: missing"),
])
def test_invalid_rules_fail_naming_the_key(tmp_path, body, message):
    with pytest.raises(SurvivorshipError) as caught:
        load_rules(write_rules(tmp_path, body))
    assert str(caught.value).startswith(message)


def test_invalid_rules_fail_before_touching_the_warehouse(wh, tmp_path):
    path = write_rules(tmp_path, "survivorship:\n  fields:\n    email: {rule: newest}\n")
    with pytest.raises(SurvivorshipError, match=r"survivorship\.fields\.email\.rule"):
        build_profiles(wh.engine, as_of=AS_OF, survivorship_file=path)
    assert wh.frame("SELECT table_name FROM information_schema.tables WHERE table_name = 'profile_360'").empty


def test_a_missing_file_is_reported():
    with pytest.raises(SurvivorshipError, match="not found"):
        load_rules("/nonexistent/rules.yaml")


def test_parse_rules_accepts_the_short_form():
    assert parse_rules({"survivorship": {"fields": {"email": "most_frequent"}}})["email"].rule == "most_frequent"


RELAY = "3f9a0c1d2e4b@branda.relay.marketplace.example"  # the generator's per-buyer relay, as on its orders


def test_a_marketplace_relay_loses_to_any_other_address_and_is_kept_when_alone(wh_any):
    wh = wh_any
    for i, days in enumerate((30, 20, 10, 5)):  # the relay is the commonest and the newest address
        wh.order("K1", f"O{i}", days_before(days), 10.0, email=RELAY)
    wh.customer("K1", "C1", email="ann@x.com", updated_at=days_before(200))
    wh.order("K2", "O9", days_before(3), 10.0, email="Buyer7@Marketplace.Amazon.com")
    wh.order("K2", "O8", days_before(9), 10.0, email="Buyer7@Marketplace.Amazon.com")
    wh.subscriber("K2", "S2", "zed@y.org", "subscribed", subscribed_at=days_before(400))
    wh.order("K3", "O7", days_before(2), 10.0, email=RELAY.replace("3f", "4e"))  # relay only: kept
    wh.order("K4", "O6", days_before(2), 10.0, email="me@relay.marketplace.example.com")  # not the domain
    wh.order("K4", "O5", days_before(4), 10.0, email="me@relay.marketplace.example.com")
    wh.customer("K4", "C4", email="other@x.com", updated_at=days_before(1))
    build_profiles(wh.engine, as_of=AS_OF)
    assert golden(wh)["email"] == "ann@x.com"
    w = winner(wh, "email")
    assert (w["rule"], w["source_key"], w["candidate_count"]) == ("most_frequent", "C1", 5)
    assert golden(wh, "K2")["email"] == "zed@y.org"  # real relay domains, whatever the case
    assert golden(wh, "K3")["email"] == RELAY.replace("3f", "4e")
    assert golden(wh, "K4")["email"] == "me@relay.marketplace.example.com"  # a lookalike domain is no relay


def test_relay_domains_hold_under_any_email_rule_and_a_user_list_replaces_them(wh, tmp_path):
    wh.order("K1", "O1", days_before(2), 10.0, email=RELAY)
    wh.order("K1", "O2", days_before(1), 10.0, email="x1@members.ebay.com")
    wh.customer("K1", "C1", email="ann@x.com", updated_at=days_before(200))
    recent = write_rules(tmp_path, "survivorship:\n  fields:\n    email: most_recent\n")
    assert load_rules(recent)["email"].relay_domains == default_rules()["email"].relay_domains
    first = build_profiles(wh.engine, as_of=AS_OF, survivorship_file=recent)
    assert (first["mode"], golden(wh)["email"]) == ("full", "ann@x.com")

    only_ours = tmp_path / "ours.yaml"
    only_ours.write_text("survivorship:\n  fields:\n    email: most_recent\n"
                         "  relay_email_domains: ['@Relay.Marketplace.Example']\n", encoding="utf-8")
    again = build_profiles(wh.engine, as_of=AS_OF, survivorship_file=only_ours)
    assert (again["mode"], golden(wh)["email"]) == ("full", "x1@members.ebay.com")  # changed rules: all redone

    off = write_rules(tmp_path, "survivorship:\n  relay_email_domains: []\n")
    build_profiles(wh.engine, as_of=AS_OF, survivorship_file=off)
    assert golden(wh)["email"] == "x1@members.ebay.com"  # most_frequent, a tie: the newest record


@pytest.mark.parametrize("body, message", [
    ("survivorship:\n  relay_email_domains: marketplace.amazon.com\n",
     "survivorship.relay_email_domains: expected a list of domains"),
    ("survivorship:\n  relay_email_domains: [marketplace.amazon.com, '%.com']\n",
     "survivorship.relay_email_domains[1]: '%.com' is not a domain name"),
    ("survivorship:\n  relay_email_domains: [localhost]\n",
     "survivorship.relay_email_domains[0]: 'localhost' is not a domain name"),
])
def test_invalid_relay_domains_fail_naming_the_key(tmp_path, body, message):
    with pytest.raises(SurvivorshipError) as caught:
        load_rules(write_rules(tmp_path, body))
    assert str(caught.value).startswith(message)
