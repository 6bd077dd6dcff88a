"""The rule language: every operator, nesting, event conditions, errors that name audience and key,
and SQL in values or field names staying data."""

from __future__ import annotations


import pytest
import sqlalchemy as sa

from crm_pipeline.audiences.config import load_audiences, validate_file
from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline.audiences.rules import RuleError, parse_rule
from crm_pipeline_tests.audiences.profiles import AS_OF, Profiles, at, day

INJECTION = "'; DROP TABLE contacts; --"


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rules")
    p = Profiles(tmp)
    p.brand("A", "brand_a", order_count=1, revenue=50.0, last_order_date=day(10), top_category_bought="Shoes",
            last_click_at=at(3), subscription_status="subscribed", subscribed_date=day(100))
    p.brand("B", "brand_a", order_count=3, revenue=300.0, last_order_date=day(200), top_category_bought="Bags",
            last_open_at=at(45))
    p.brand("C", "brand_a", order_count=0, top_category_bought=INJECTION)
    p.contact("A", country="US")
    p.contact("B", country="FR")
    p.save()
    from crm_pipeline.warehouse.identity_schema import contacts, create_identity_tables  # noqa: PLC0415
    from crm_pipeline.warehouse.quality_schema import create_quality_tables  # noqa: PLC0415
    create_identity_tables(p.engine)
    create_quality_tables(p.engine)  # event conditions read the staging tables
    with p.engine.begin() as conn:
        conn.execute(contacts.insert(), [{"contact_id": c, "node_count": 1, "record_count": 1, "brands": "brand_a",
                                          "match_type": "singleton", "first_seen_as_of": AS_OF} for c in "ABC"])
    return p, tmp


def run(people, rule, name="custom") -> set[str]:
    p, tmp = people
    f = tmp / f"{name}.yaml"
    import yaml  # noqa: PLC0415
    f.write_text(yaml.safe_dump({"include_defaults": False,
                                 "audiences": {name: {"rule": rule, "consent": "none", "scopes": ["all"]}}}))
    materialize_audiences(p.engine, as_of=AS_OF, audiences_file=f)
    return p.members().get(name, set())


@pytest.mark.parametrize(("rule", "expected"), [
    ({"field": "order_count", "=": 1}, {"A"}),
    ({"field": "order_count", "!=": 1}, {"B", "C"}),
    ({"field": "order_count", "<": 1}, {"C"}),
    ({"field": "order_count", "<=": 1}, {"A", "C"}),
    ({"field": "revenue", ">": 50}, {"B"}),
    ({"field": "revenue", ">=": 50.0}, {"A", "B"}),
    ({"field": "top_category_bought", "in": ["Shoes", "Bags"]}, {"A", "B"}),
    ({"field": "country", "=": "FR"}, {"B"}),
    ({"field": "last_order_date", "within_days": 11}, {"A"}),
    ({"field": "last_order_date", "within_days": 10}, set()),
    ({"field": "last_order_date", "days_ago_between": [200, 200]}, {"B"}),
    ({"field": "last_order_date", "days_ago_between": [11, None]}, {"B"}),
    ({"field": "last_order_date", "<": str(day(100))}, {"B"}),
    ({"field": "last_order_date", ">=": day(10)}, {"A"}),
    ({"field": "last_click_at", "=": str(day(3))}, {"A"}),
    ({"field": "last_click_at", ">": str(day(3))}, set()),
    ({"field": "last_open_at", "within_days": 46}, {"B"}),
    ({"field": "last_order_date", "is_null": True}, {"C"}),
    ({"field": "email_consent", "=": True}, {"A"}),
    ({"not": {"field": "last_order_date", "within_days": 30}}, {"B", "C"}),  # missing date: not within, so kept
    ({"any": [{"field": "country", "=": "US"}, {"all": [{"field": "order_count", ">": 2},
                                                         {"not": {"field": "country", "in": ["US"]}}]}]}, {"A", "B"}),
    ({"field": "top_category_bought", "=": INJECTION}, {"C"}),
    ({"field": "country", "in": [INJECTION, "US"]}, {"A"}),
])
def test_operators_and_nesting(people, rule, expected):
    assert run(people, rule) == expected


def test_injection_values_stay_data_and_tables_survive(people):
    p, _ = people
    run(people, {"any": [{"field": "country", "=": INJECTION}, {"field": "top_category_bought", "=": INJECTION},
                         {"event": "purchase", "sku": INJECTION, "category": "x%' OR 1=1 --"}]})
    with p.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM contacts")).scalar_one() == 3
        assert conn.execute(sa.text("SELECT COUNT(*) FROM profile_360")).scalar_one() == 3


@pytest.mark.parametrize(("rule", "path", "words"), [
    ({"field": "order_count; DROP TABLE contacts", "=": 1}, "rule.field", "unknown field"),
    ({"field": "order_count", "~": 1}, "rule.~", "unknown operator"),
    ({"field": "order_count", "=": "1"}, "rule.=", "expected a int value"),
    ({"field": "order_count", "=": True}, "rule.=", "expected a int value"),
    ({"all": [{"field": "country", "=": "US"}, {"field": "revenue", "within_days": 3}]}, "rule.all[1].within_days",
     "needs a date"),
    ({"any": [{"not": {"field": "last_order_date", "days_ago_between": [5, 2]}}]},
     "rule.any[0].not.days_ago_between[1]", "expected null or"),
    ({"field": "last_order_date", "<": "yesterday"}, "rule.<", "expected a date"),
    ({"field": "country", "in": []}, "rule.in", "non-empty list"),
    ({"field": "country", "=": "US", ">": "A"}, "rule", "exactly one operator"),
    ({"all": {"field": "country"}}, "rule.all", "non-empty list"),
    ({"all": [], "any": []}, "rule.all", "only key"),
    ({"event": "email_click", "within_days": "30"}, "rule.within_days", "whole number"),
    ({"event": "email_click; --"}, "rule.event", "unknown event"),
    ({"event": "product_view", "sku": "X", "without": "email_open"}, "rule.without", "expected one of"),
    ({"event": "email_open", "sku": "X"}, "rule.sku", "does not apply"),
    ({"event": "purchase", "sql": "1=1"}, "rule.sql", "unknown key"),
    (["field", "order_count"], "rule", "expected a mapping"),
])
def test_errors_name_audience_and_key_path(rule, path, words):
    with pytest.raises(RuleError) as info:
        parse_rule(rule, audience="my_audience")
    message = str(info.value)
    assert message.startswith(f"audience 'my_audience': {path}:"), message
    assert words in message


def test_validate_file_reports_every_problem(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("""
audiences:
  ok_one: {rule: {field: order_count, ">=": 1}}
  bad_field: {rule: {field: nope, "=": 1}}
  bad_scope: {rule: {field: order_count, "=": 1}, scopes: [galaxy]}
  Bad-Name: {rule: {field: order_count, "=": 1}}
  predicted_x: {source: predictions, rule: {field: order_count, "=": 1}}
""")
    problems = validate_file(f)
    assert len(problems) == 4
    assert any(p.startswith("audience 'bad_field': rule.field: unknown field 'nope'") for p in problems)
    assert any(p.startswith("audience 'bad_scope': scopes:") for p in problems)
    assert any(p.startswith("audience 'Bad-Name': name:") for p in problems)
    assert any(p.startswith("audience 'predicted_x': rule.field:") for p in problems)
    with pytest.raises(RuleError, match="4 problems"):
        load_audiences(f)
    good = tmp_path / "good.yaml"
    good.write_text("audiences:\n  big_spenders: {rule: {field: revenue, '>': 1000}}\n")
    assert validate_file(good) == []
    assert validate_file(tmp_path / "missing.yaml")[0].endswith("cannot read: No such file or directory")
    top = tmp_path / "top.yaml"
    top.write_text("audience: {}\n")
    assert validate_file(top) == [f"{top}: audience: unknown key; known: include_defaults, audiences, cross_brand"]


def test_shipped_defaults_are_valid():
    config = load_audiences()
    smart = [a for a in config.audiences if a.kind == "smart"]
    assert len(smart) == 18 and all(a.scopes == ("all", "brands") for a in smart)


def test_event_conditions(tmp_path):
    from crm_pipeline_tests.profiles.warehouse import Warehouse, days_before  # noqa: PLC0415
    p = Profiles(tmp_path)
    for cid in ("K1", "K2", "K3"):
        p.brand(cid, "alpha", order_count=1, last_order_date=day(5))
        p.brand(cid, "beta", order_count=0)
    p.save()
    w = Warehouse(p.engine)
    w.product("SHOE1", 80.0, "Women > Shoes > Boots")
    w.product("BAG1", 80.0, "Women > Bags")
    # K1: two clicks at alpha in 30 days; viewed SHOE1 and bought it
    w.email_event("K1", "click", days_before(1), campaign_id="c1")
    w.email_event("K1", "click", days_before(29), campaign_id="c2")
    w.web_event("K1", "product_view", days_before(8), sku="SHOE1")
    w.order("K1", "O1", days_before(5), 80.0, lines=[("SHOE1", 1, 80.0)])
    # K2: one click at alpha, one at beta; viewed SHOE1, did not buy; bought a bag 100 days ago
    w.email_event("K2", "click", days_before(2))
    w.email_event("K2", "click", days_before(2), brand="beta")
    w.web_event("K2", "product_view", days_before(4), sku="SHOE1")
    w.order("K2", "O2", days_before(100), 80.0, lines=[("BAG1", 1, 80.0)])
    # K3: two clicks, the older one 30 days ago (outside 30 days); a cancelled shoe order
    w.email_event("K3", "click", days_before(1))
    w.email_event("K3", "click", days_before(30))
    w.order("K3", "O3", days_before(3), 80.0, status="cancelled", lines=[("SHOE1", 1, 80.0)])

    def members(rule, scopes=("all",)):
        import yaml  # noqa: PLC0415
        f = tmp_path / "e.yaml"
        f.write_text(yaml.safe_dump({"include_defaults": False, "audiences": {
            "e": {"rule": rule, "consent": "none", "scopes": list(scopes)}}}))
        materialize_audiences(p.engine, as_of=AS_OF, audiences_file=f)
        return {k: v for k, v in p.members().items()}

    assert members({"event": "email_click", "brand": "alpha", "min_count": 2, "within_days": 30})["e"] == {"K1"}
    assert members({"event": "email_click", "min_count": 2, "within_days": 30})["e"] == {"K1", "K2"}
    assert members({"event": "email_click", "campaign_id": "c2"})["e"] == {"K1"}
    assert members({"event": "purchase", "category": "Shoes", "within_days": 90})["e"] == {"K1"}
    assert members({"event": "purchase", "category": "women", "within_days": 120})["e"] == {"K1", "K2"}
    assert members({"event": "purchase", "category": "Sho%"}).get("e", set()) == set()  # wildcards are literal
    assert members({"event": "product_view", "sku": "SHOE1", "without": "purchase"})["e"] == {"K2"}
    assert members({"event": "purchase", "days_ago_between": [90, 120]})["e"] == {"K2"}
    per_brand = members({"event": "email_click", "within_days": 30}, scopes=("brands",))
    assert per_brand["alpha:e"] == {"K1", "K2", "K3"} and per_brand["beta:e"] == {"K2"}
    assert members({"not": {"event": "purchase", "within_days": 30}})["e"] == {"K2", "K3"}
    # several event conditions in one rule, under any / all / not (each its own join to the profile rows)
    assert members({"any": [{"event": "product_view", "sku": "SHOE1", "within_days": 30},
                            {"event": "purchase", "days_ago_between": [90, 120]}]})["e"] == {"K1", "K2"}
    assert members({"all": [{"event": "email_click", "within_days": 30},
                            {"not": {"event": "purchase", "within_days": 30}}]})["e"] == {"K2", "K3"}
    assert members({"any": [{"event": "purchase", "within_days": 30},
                            {"field": "order_count", ">=": 5}]}).get("e", set()) == {"K1"}


def test_values_are_bound_never_in_the_sql_text_on_both_backends():
    import datetime as dt  # noqa: PLC0415

    from sqlalchemy.dialects import postgresql  # noqa: PLC0415

    from crm_pipeline.audiences.compile import Compiler  # noqa: PLC0415
    from crm_pipeline.audiences.materialize import BASE  # noqa: PLC0415
    rule = parse_rule({"any": [{"field": "country", "in": [INJECTION]}, {"field": "city", "=": INJECTION},
                               {"event": "product_view", "sku": INJECTION, "category": INJECTION,
                                "without": "purchase"}]}, audience="x")
    query = sa.select(BASE.c.contact_id).where(Compiler(BASE, as_of=dt.date(2025, 1, 1)).compile(rule))
    for dialect in (postgresql.dialect(), None):
        compiled = query.compile(dialect=dialect) if dialect else query.compile()
        assert "DROP" not in str(compiled)
        assert INJECTION in compiled.params.values()
