"""A drop re-runs the day's audiences for the contacts whose inputs changed only, giving the whole computation's rows.

On a hand-made warehouse (DuckDB and PostgreSQL), each kind of change a drop brings is followed by an incremental
run, whose own counter says how many contacts it recomputed, and then by a full refresh of the same day, which
must find nothing to write and leave `audience_members`, `audience_history` and `audience_sizes` as they were,
and `audience_inputs` (what the next drop compares with) as the whole computation keeps it.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.audiences import incremental
from crm_pipeline.audiences.config import load_audiences
from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline_tests.audiences.profiles import AS_OF, Profiles, day
from crm_pipeline_tests.postgres.conftest import shared_server

D1, D2 = AS_OF, AS_OF + dt.timedelta(days=1)
_DATABASES = itertools.count()
# and the stage's memory: what the incremental run kept must be what the whole computation keeps
TABLES = ("audience_members", "audience_history", "audience_sizes", "audience_inputs")


def tables(p: Profiles) -> dict[str, pd.DataFrame]:
    """The tables whole (every day, every column), rows in order."""
    out = {}
    with p.engine.connect() as conn:
        for name in TABLES:
            frame = pd.read_sql(sa.text(f"SELECT * FROM {name}"), conn)
            out[name] = frame.sort_values(list(frame.columns), ignore_index=True)
    return out


def run(p: Profiles, as_of: dt.date = D2, **kw) -> pd.DataFrame:
    summary = materialize_audiences(p.engine, as_of=as_of, **kw)
    return summary


def incremental_then_whole(p: Profiles, as_of: dt.date = D2) -> dict:
    """An incremental run of the day, then a full refresh of it: the refresh writes nothing, the tables stay."""
    summary = run(p, as_of)
    assert summary.attrs["mode"] == "incremental", summary.attrs
    after = tables(p)
    whole = run(p, as_of, full_refresh=True)
    assert (whole.attrs["mode"], whole.attrs["members_written"], whole.attrs["history_written"]) == ("full", 0, 0)
    for name, frame in tables(p).items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)
    return summary.attrs


def add_predictions(p: Profiles, rows: list[dict]) -> None:
    with p.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS predictions"))
        conn.execute(sa.text("CREATE TABLE predictions (as_of DATE, contact_id VARCHAR, rfm_segment VARCHAR, "
                             "risk_band VARCHAR, predicted_clv DOUBLE PRECISION)"))
        conn.execute(sa.text("INSERT INTO predictions VALUES (:as_of, :contact_id, :rfm_segment, :risk_band, :clv)")
                     .bindparams(sa.bindparam("as_of", type_=sa.Date())), rows)


def _predicted(n: int, clv_of=lambda i: float(i)) -> list[dict]:
    return [{"as_of": D2, "contact_id": f"C{i:02d}", "rfm_segment": "Champions" if i % 3 else "At Risk",
             "risk_band": "high" if i % 4 == 0 else "low", "clv": clv_of(i)} for i in range(n)]


@pytest.fixture(params=["duckdb", "postgresql"])
def p(request, tmp_path) -> Profiles:
    """A warehouse of 30 contacts over two brands, its audiences run for D1 and D2."""
    url = None
    if request.param == "postgresql":
        url = shared_server().create_database(f"audiences_incremental_{next(_DATABASES)}")
    p = Profiles(tmp_path, url)
    for n in range(30):
        p.brand(f"C{n:02d}", "brand_a", order_count=n % 4, last_order_date=day(7 * n) if n % 4 else None,
                subscription_status="subscribed" if n % 5 else "unsubscribed", subscribed_date=day(n),
                last_click_at=None, engagement_score=float(n), engagement_top_percent=100.0 * (n + 1) / 30)
        p.contact(f"C{n:02d}", engagement_top_percent=100.0 * (n + 1) / 30)
        if n % 2:
            p.brand(f"C{n:02d}", "brand_b", order_count=2, last_order_date=day(n), email_click_30d_count=n % 5)
    p.save()
    add_predictions(p, _predicted(20))
    run(p, D1)
    run(p, D2)
    return p


def _brand_row(p: Profiles, contact: str, brand: str = "brand_a") -> dict:
    return next(r for r in p.brand_rows if r["contact_id"] == contact and r["brand"] == brand)


def test_a_drop_touching_one_contact_recomputes_one_contact(p):
    again = incremental_then_whole(p)
    assert again["contacts_recomputed"] == 0 and again["members_written"] == 0

    _brand_row(p, "C03", "brand_b").update(order_count=5, last_order_date=D2)  # one more purchase at brand_b
    p.save()
    figures = incremental_then_whole(p)
    assert figures["contacts_recomputed"] == 1 and figures["members_written"] > 0


def test_a_rank_moving_for_everyone_recomputes_only_who_crossed_a_threshold(p):
    for row in (*p.brand_rows, *p.contacts.values()):  # everyone's top percent moves a little
        if row.get("engagement_top_percent") is not None:
            row["engagement_top_percent"] *= 0.99
    _brand_row(p, "C01").update(engagement_top_percent=4.0)  # only C01 moves into the top 5%
    p.contacts["C01"]["engagement_top_percent"] = 4.0
    p.save()
    assert incremental_then_whole(p)["contacts_recomputed"] == 1
    assert "C01" in p.members(D2)["engaged_top_5pct"]


def test_a_merge_a_suppression_and_a_new_contact_follow_their_contacts(p):
    # C05 merged into C04: C05's rows are gone, C04 takes its purchases
    p.brand_rows = [r for r in p.brand_rows if r["contact_id"] != "C05"]
    del p.contacts["C05"]
    _brand_row(p, "C04").update(order_count=3, last_order_date=day(2))
    p.brand("NEW", "brand_a", order_count=1, last_order_date=D2, subscription_status="subscribed")
    p.save()
    with p.engine.begin() as conn:  # and C07 asks not to be contacted
        conn.execute(sa.text("INSERT INTO suppression_list (contact_id, reason) VALUES ('C07', 'request')"))
    figures = incremental_then_whole(p)
    assert figures["contacts_recomputed"] == 4
    members = p.members(D2)
    assert not any({"C05", "C07"} & m for m in members.values())
    assert "NEW" in members["customers_recent"]


def test_predictions_redone_for_the_day_recompute_the_contacts_whose_predictive_audiences_moved(p):
    # a new top buyer: every clv rank moves; in the top 10% (the top 2 of 21) C26 takes the place of C18
    add_predictions(p, [*_predicted(20), {"as_of": D2, "contact_id": "C26", "rfm_segment": "Champions",
                                          "risk_band": "low", "clv": 99.0}])
    figures = incremental_then_whole(p)
    assert figures["contacts_recomputed"] == 2
    assert p.members(D2)["predicted_top_clv_10pct"] == {"C26", "C19"}


def test_a_new_day_a_changed_config_and_a_full_refresh_run_whole(p, tmp_path):
    assert run(p, D2, full_refresh=True).attrs["reason"] == "full refresh requested"
    later = D2 + dt.timedelta(days=1)
    assert run(p, later).attrs["mode"] == "full"
    user = tmp_path / "audiences.yaml"
    user.write_text("audiences:\n  big_buyers: {label: Big, rule: {field: order_count, '>=': 3}}\n")
    assert run(p, later, audiences_file=user).attrs["reason"] == "audience definitions changed"
    again = run(p, later, audiences_file=user)
    assert (again.attrs["mode"], again.attrs["contacts_recomputed"]) == ("incremental", 0)
    # a rule on the staged events: no digest follows them, so the drop runs whole
    events = tmp_path / "events.yaml"
    events.write_text("audiences:\n  clickers: {label: C, rule: {event: email_click, within_days: 30}}\n")
    config = load_audiences(events)
    with p.engine.connect() as conn:
        plan = incremental.plan_run(conn, later, incremental.config_key(config), config, full_refresh=False)
    assert plan == incremental.Plan(True, "a rule reads the staged events")


def test_more_rules_than_a_masks_bits_still_find_the_one_contact(p, tmp_path):
    user = tmp_path / "many.yaml"  # 70 rules more: the outcomes take two masks, the second in the digest
    user.write_text("audiences:\n" + "".join(f"  revenue_{n}: {{label: R{n}, rule: {{field: revenue, '>=': {n}}}}}\n"
                                              for n in range(70)))
    run(p, D2, audiences_file=user)
    _brand_row(p, "C02").update(revenue=65.5)  # crosses the last rules only
    p.save()
    summary = run(p, D2, audiences_file=user)
    assert (summary.attrs["mode"], summary.attrs["contacts_recomputed"]) == ("incremental", 1)
    assert "revenue_65" in p.members(D2) and "C02" in p.members(D2)["revenue_65"]
    after = tables(p)
    whole = run(p, D2, audiences_file=user, full_refresh=True)
    assert (whole.attrs["members_written"], whole.attrs["history_written"]) == (0, 0)
    for name, frame in tables(p).items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)


def test_an_erased_contact_is_out_of_every_audience_and_the_next_drop_stays_incremental(p):
    from crm_pipeline.erasure.erase import erase

    assert any("C03" in m for m in p.members(D2).values())
    erase(p.engine, contact_id="C03", requested_at=dt.datetime(2025, 7, 2, tzinfo=dt.timezone.utc))
    _brand_row(p, "C09", "brand_b").update(order_count=6, last_order_date=D2)  # and a drop for another contact
    p.brand_rows = [r for r in p.brand_rows if r["contact_id"] != "C03"]  # the profile build no longer has C03
    del p.contacts["C03"]
    p.save()
    figures = incremental_then_whole(p)
    # C09, and C18: C03's prediction went, so 19 are ranked by CLV and C18, second, is no longer in the top 10%;
    # not C03, whose rows the erasure took out of the stage's memory too
    assert figures["contacts_recomputed"] == 2
    members = p.members(D2)
    assert not any("C03" in m for m in members.values()) and members["predicted_top_clv_10pct"] == {"C19"}
