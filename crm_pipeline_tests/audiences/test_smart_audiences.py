"""The 18 shipped audiences: contacts on each side of every boundary, across brands and per brand.

"Within the last N days" is as_of - N < day <= as_of: 59 days ago is within 60, 60 days ago is not
(so a purchase exactly 60 days ago is neither Recent nor Lapsing, which starts at 61).
"""

from __future__ import annotations

import pytest

from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline_tests.audiences.profiles import AS_OF, Profiles, at, day


def figures(bought=None, count=None, click=None, open_=None, sub=None) -> dict:
    out = {}
    if bought is not None:
        out.update(last_order_date=day(bought), first_order_date=day(bought + 400), order_count=count or 1)
    elif count:
        raise ValueError("a count needs a purchase day")
    if click is not None:
        out["last_click_at"] = at(click)
    if open_ is not None:
        out["last_open_at"] = at(open_)
    if sub is not None:
        out.update(subscribed_date=day(sub), subscription_status="subscribed")
    return out


# (audience, case id, figures, expected member)
CASES = [
    ("customers_recent", "bought_0d", figures(bought=0), True),
    ("customers_recent", "bought_59d", figures(bought=59), True),
    ("customers_recent", "bought_60d", figures(bought=60), False),
    ("customers_recent", "bought_61d", figures(bought=61), False),
    ("customers_recent", "never", figures(sub=5), False),
    ("customers_active", "59d_2x", figures(bought=59, count=2), True),
    ("customers_active", "59d_1x", figures(bought=59, count=1), False),
    ("customers_active", "60d_2x", figures(bought=60, count=2), False),
    ("customers_lapsing", "60d", figures(bought=60), False),
    ("customers_lapsing", "61d", figures(bought=61), True),
    ("customers_lapsing", "120d", figures(bought=120), True),
    ("customers_lapsing", "121d", figures(bought=121), False),
    ("customers_winback_best", "90d_3x", figures(bought=90, count=3), False),
    ("customers_winback_best", "91d_3x", figures(bought=91, count=3), True),
    ("customers_winback_best", "91d_2x", figures(bought=91, count=2), False),
    ("customers_winback_best", "500d_4x", figures(bought=500, count=4), True),
    ("customers_one_time", "1x", figures(bought=300, count=1), True),
    ("customers_one_time", "2x", figures(bought=300, count=2), False),
    ("customers_one_time", "0x", figures(sub=3), False),
    ("customers_two_time", "1x", figures(bought=5, count=1), False),
    ("customers_two_time", "2x", figures(bought=5, count=2), True),
    ("customers_two_time", "3x", figures(bought=5, count=3), False),
    ("customers_growth_recent", "click_29d", figures(bought=59, click=29), True),
    ("customers_growth_recent", "click_30d", figures(bought=59, click=30), False),
    ("customers_growth_recent", "bought_60d", figures(bought=60, click=1), False),
    ("customers_growth_active", "2x", figures(bought=10, count=2, click=29), True),
    ("customers_growth_active", "1x", figures(bought=10, count=1, click=29), False),
    ("customers_growth_active", "no_click", figures(bought=10, count=2), False),
    ("customers_growth_lapsing", "120d", figures(bought=120, click=0), True),
    ("customers_growth_lapsing", "121d", figures(bought=121, click=0), False),
    ("customers_growth_lapsing", "click_30d", figures(bought=61, click=30), False),
    ("customers_growth_winback_best", "91d_3x", figures(bought=91, count=3, click=2), True),
    ("customers_growth_winback_best", "90d_3x", figures(bought=90, count=3, click=2), False),
    ("customers_growth_winback_best", "91d_2x", figures(bought=91, count=2, click=2), False),
    ("non_customers_recent", "sub_59d", figures(sub=59), True),
    ("non_customers_recent", "sub_60d", figures(sub=60), False),
    ("non_customers_recent", "customer", figures(bought=200, sub=5), False),
    ("non_customers_active", "sub_59d", figures(sub=59), True),
    ("non_customers_active", "open_59d", figures(sub=300, open_=59), True),
    ("non_customers_active", "open_60d", figures(sub=300, open_=60), False),
    ("non_customers_active", "customer", figures(bought=1, sub=1, open_=1), False),
    ("non_customers_lapsing", "open_61d", figures(sub=61, open_=61), True),
    ("non_customers_lapsing", "click_120d", figures(sub=200, click=120), True),
    ("non_customers_lapsing", "open_121d", figures(sub=200, open_=121), False),
    ("non_customers_lapsing", "open_60d", figures(sub=200, open_=60), False),
    ("non_customers_lapsing", "engaged_since", figures(sub=200, open_=100, click=59), False),
    ("non_customers_lapsing", "sub_60d", figures(sub=60, open_=61), False),
    ("non_customers_lapsing", "customer", figures(bought=300, sub=200, open_=90), False),
    ("non_customers_prospect", "sub_long_ago", figures(sub=900), True),
    ("non_customers_prospect", "not_subscribed", figures(click=3), False),
    ("non_customers_prospect", "customer", figures(bought=300, sub=200), False),
    ("non_customers_engaged", "click_29d", figures(click=29), True),
    ("non_customers_engaged", "click_30d", figures(click=30), False),
    ("non_customers_growth_recent", "yes", figures(click=29, sub=59), True),
    ("non_customers_growth_recent", "sub_60d", figures(click=29, sub=60), False),
    ("non_customers_growth_recent", "click_30d", figures(click=30, sub=10), False),
    ("non_customers_growth_active", "open_59d", figures(click=29, open_=59, sub=100), True),
    ("non_customers_growth_active", "sub_59d", figures(click=29, sub=59), True),
    ("non_customers_growth_active", "neither", figures(click=29, open_=60, sub=60), False),
    ("non_customers_growth_lapsing", "sub_61d", figures(click=29, sub=61), True),
    ("non_customers_growth_lapsing", "sub_120d", figures(click=29, sub=120), True),
    ("non_customers_growth_lapsing", "sub_121d", figures(click=29, sub=121), False),
    ("non_customers_growth_lapsing", "sub_60d", figures(click=29, sub=60), False),
    ("non_customers_growth_lapsing", "no_click", figures(click=30, sub=90), False),
]
SHIPPED = sorted({c[0] for c in CASES})


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Every case is one contact with one brand_a row; materialized once."""
    p = Profiles(tmp_path_factory.mktemp("smart"))
    for audience, case, figs, _ in CASES:
        p.brand(f"{audience}/{case}", "brand_a", **figs)
    p.save()
    summary = materialize_audiences(p.engine, as_of=AS_OF)
    return p.members(), summary


def test_all_eighteen_shipped():
    assert len(SHIPPED) == 18


@pytest.mark.parametrize(("audience", "case", "expected"), [(a, c, e) for a, c, _, e in CASES],
                         ids=[f"{a}/{c}" for a, c, _, _ in CASES])
def test_boundary(members, audience, case, expected):
    found, _ = members
    contact = f"{audience}/{case}"
    assert (contact in found.get(audience, set())) is expected
    assert (contact in found.get(f"brand_a:{audience}", set())) is expected  # the brand's own figures agree


def test_summary_lists_each_audience_all_brands_and_per_brand(members):
    _, summary = members
    names = set(summary["audience"])
    for audience in SHIPPED:
        assert audience in names and f"brand_a:{audience}" in names
    row = summary.set_index("audience").loc["customers_lapsing"]
    assert row["size"] == row["entered"] and row["exited"] == 0


def test_per_brand_scope_uses_that_brands_own_figures(tmp_path):
    p = Profiles(tmp_path)
    # bought at brand_a recently; at brand_b a subscriber who never bought there
    p.brand("C1", "brand_a", **figures(bought=5, count=2))
    p.brand("C1", "brand_b", **figures(sub=10))
    p.save()
    materialize_audiences(p.engine, as_of=AS_OF)
    m = p.members()
    assert "C1" in m["customers_active"] and "C1" in m["brand_a:customers_active"]
    assert "C1" not in m.get("brand_b:customers_active", set())
    assert "C1" in m["brand_b:non_customers_recent"]
    assert "C1" not in m.get("non_customers_recent", set())  # across brands C1 is a customer
    assert "C1" not in m.get("brand_a:non_customers_recent", set())  # no subscription at brand_a
