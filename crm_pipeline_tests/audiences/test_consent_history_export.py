"""Consent, suppression, history across days, cross-brand and predictive audiences, exports."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from crm_pipeline.audiences.export import escape_cell, export_audience, list_audiences
from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline.warehouse.audience_schema import suppression_list
from crm_pipeline_tests.audiences.profiles import AS_OF, Profiles, at, day


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_consent_excludes_opted_out_at_that_brand(tmp_path):
    p = Profiles(tmp_path)
    # unsubscribed at brand_a after the last subscribe (the profile says: no consent)
    p.brand("UNSUB", "brand_a", subscription_status="subscribed", subscribed_date=day(10), email_consent=False,
            last_click_at=at(1))
    p.brand("UNSUB", "brand_b", subscription_status="subscribed", subscribed_date=day(10), last_click_at=at(1))
    p.brand("BOUNCED", "brand_a", subscription_status="bounced", subscribed_date=day(10), last_click_at=at(1))
    p.brand("OK", "brand_a", subscription_status="subscribed", subscribed_date=day(10), last_click_at=at(1))
    p.save()
    materialize_audiences(p.engine, as_of=AS_OF)
    m = p.members()
    assert m["brand_a:non_customers_engaged"] == {"OK"}
    assert m["brand_b:non_customers_engaged"] == {"UNSUB"}  # still consents at brand_b
    assert m["non_customers_engaged"] == {"OK"}  # across brands: opted out anywhere = left out


def test_consent_none_keeps_opted_out(tmp_path):
    p = Profiles(tmp_path)
    p.brand("UNSUB", "brand_a", subscription_status="unsubscribed", subscribed_date=day(10), last_click_at=at(1))
    p.save()
    f = tmp_path / "a.yaml"
    f.write_text("audiences:\n  clickers_any_channel:\n    consent: none\n"
                 "    rule: {field: last_click_at, within_days: 30}\n")
    materialize_audiences(p.engine, as_of=AS_OF, audiences_file=f)
    m = p.members()
    assert m["clickers_any_channel"] == {"UNSUB"}
    assert "non_customers_engaged" not in m


def test_unsubscribe_landing_with_a_purchase_wins_end_to_end(tmp_path):
    """Built through the real profile stage: a purchase and an unsubscribe in the same batch."""
    from crm_pipeline.profiles.build import build_profiles  # noqa: PLC0415
    from crm_pipeline_tests.profiles.warehouse import Warehouse, days_before  # noqa: PLC0415
    from crm_pipeline.warehouse.engine import make_engine  # noqa: PLC0415
    engine = make_engine(f"duckdb:///{tmp_path}/e2e.duckdb")
    w = Warehouse(engine)
    w.subscriber("C1", "S1", "c1@example.com", "subscribed", subscribed_at=days_before(300))
    w.order("C1", "O1", days_before(3), 10.0)
    w.email_event("C1", "unsubscribe", days_before(3, "13:00"))
    w.email_event("C1", "click", days_before(3, "11:00"))
    try:
        build_profiles(engine, as_of=AS_OF)
    except TypeError:
        pytest.skip("build_profiles has a different signature")
    materialize_audiences(engine, as_of=AS_OF)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT audience FROM audience_members WHERE contact_id = 'C1'")).scalars().all()
    with engine.connect() as conn:
        profile = conn.execute(sa.text("SELECT order_count, email_consent, subscription_status "
                                       "FROM profile_360_brand WHERE contact_id = 'C1'")).one()
    assert tuple(profile) == (1, False, "subscribed")  # a purchase, and the unsubscribe won
    assert rows == []  # so no email audience holds C1 (it would be in customers_one_time otherwise)


def test_suppression_list_by_contact_and_email_hash(tmp_path):
    p = Profiles(tmp_path)
    for cid in ("A", "B", "C"):
        p.brand(cid, "brand_a", **{"order_count": 1, "last_order_date": day(1)})
    p.contact("B", email="  Bee@Example.COM ")
    p.save()
    with p.engine.begin() as conn:
        from crm_pipeline.warehouse.audience_schema import create_audience_tables  # noqa: PLC0415
        create_audience_tables(conn)
        conn.execute(suppression_list.insert(), [{"contact_id": "A", "email_sha256": None},
                                                  {"contact_id": None, "email_sha256": sha("bee@example.com")}])
    materialize_audiences(p.engine, as_of=AS_OF)
    assert p.members()["customers_recent"] == {"C"}
    # suppressed after materializing: still never exported
    with p.engine.begin() as conn:
        conn.execute(suppression_list.insert(), [{"email_sha256": sha("c@example.com").upper()}])
    out = io.StringIO()
    with p.engine.connect() as conn:
        assert export_audience(conn, "customers_recent", AS_OF, "csv", out) == 0


@pytest.fixture(params=["duckdb", "postgresql"])
def backend_url(request):
    """None: a DuckDB file in the test's folder; else a database of its own on the session's PostgreSQL server."""
    if request.param == "duckdb":
        return None
    from crm_pipeline_tests.postgres.conftest import shared_server  # noqa: PLC0415
    return shared_server().create_database("audiences_left_out")


def test_opted_out_and_suppressed_contacts_stay_out_of_rule_and_predictive_audiences(tmp_path, backend_url):
    """Consent and suppression leave out exactly the listed contacts on both backends: a contact listed twice
    is left out once, a list row without a contact id (an email hash matching nobody) leaves out nobody else."""
    p = Profiles(tmp_path, backend_url)
    for cid in ("KEEP", "OPTED", "BYID", "BYHASH"):
        p.brand(cid, "brand_a", subscription_status="unsubscribed" if cid == "OPTED" else "subscribed",
                order_count=1, last_order_date=day(1))
    p.save()
    with p.engine.begin() as conn:
        from crm_pipeline.warehouse.audience_schema import create_audience_tables  # noqa: PLC0415
        create_audience_tables(conn)
        conn.execute(suppression_list.insert(), [
            {"contact_id": "BYID", "email_sha256": None},
            {"contact_id": "BYID", "email_sha256": sha("byid@example.com")},  # listed twice
            {"contact_id": None, "email_sha256": sha("byhash@example.com")},
            {"contact_id": None, "email_sha256": sha("nobody@example.com")}])
        conn.execute(sa.text("CREATE TABLE predictions (as_of DATE, contact_id VARCHAR, risk_band VARCHAR)"))
        conn.execute(sa.text("INSERT INTO predictions VALUES (:d, :c, 'high')"),
                     [{"d": AS_OF, "c": cid} for cid in ("KEEP", "OPTED", "BYID", "BYHASH")])
    summary = materialize_audiences(p.engine, as_of=AS_OF).set_index("audience")
    m = p.members()
    assert m["customers_recent"] == {"KEEP"}
    assert m["predicted_high_churn_risk"] == {"KEEP"}
    assert summary.loc["predicted_high_churn_risk", "size"] == 1
    p.engine.dispose()


def test_history_entered_and_exited_across_three_days(tmp_path):
    p = Profiles(tmp_path)
    d1 = AS_OF
    # bought 58 days before d1: Recent on d1 and d1+1, out on d1+2 (60 days)
    p.brand("X", "brand_a", order_count=1, last_order_date=day(58, d1))
    # bought 59 days before d1: Recent on d1, out on d1+1
    p.brand("Y", "brand_a", order_count=1, last_order_date=day(59, d1))
    # bought the day after d1: enters Recent on d1+1
    p.brand("Z", "brand_a", order_count=1, last_order_date=d1 + dt.timedelta(days=1))
    p.save()
    days = [d1, d1 + dt.timedelta(days=1), d1 + dt.timedelta(days=2)]
    summaries = [materialize_audiences(p.engine, as_of=d) for d in days]

    def history(d):
        with p.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT contact_id, event FROM audience_history "
                                        "WHERE as_of = :d AND audience = 'customers_recent' ORDER BY 1"),
                                {"d": d}).all()
        return [tuple(r) for r in rows]

    assert history(days[0]) == [("X", "entered"), ("Y", "entered")]
    assert history(days[1]) == [("Y", "exited"), ("Z", "entered")]
    assert history(days[2]) == [("X", "exited")]
    s = summaries[1].set_index("audience").loc["customers_recent"]
    assert (s["size"], s["entered"], s["exited"]) == (2, 1, 1)

    # re-running the middle day rewrites the same snapshot and events, and keeps day 3 true
    with p.engine.connect() as conn:
        before = pd.read_sql(sa.text("SELECT * FROM audience_history ORDER BY as_of, audience, contact_id"), conn)
        members_before = pd.read_sql(sa.text("SELECT * FROM audience_members ORDER BY 1, 2, 3"), conn)
    materialize_audiences(p.engine, as_of=days[1])
    with p.engine.connect() as conn:
        after = pd.read_sql(sa.text("SELECT * FROM audience_history ORDER BY as_of, audience, contact_id"), conn)
        members_after = pd.read_sql(sa.text("SELECT * FROM audience_members ORDER BY 1, 2, 3"), conn)
        listed = list_audiences(conn, days[2]).set_index("audience").loc["customers_recent"]
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(members_before, members_after)
    assert (listed["size"], listed["previous_size"], listed["change"], listed["exited"]) == (1, 2, -1, 1)


def test_cross_brand_audiences(tmp_path):
    p = Profiles(tmp_path)
    very = {"order_count": 2, "last_order_date": day(5)}
    idle = {"order_count": 1, "last_order_date": day(400)}
    p.brand("MULTI", "brand_a", **very)
    p.brand("MULTI", "brand_b", **very)
    p.brand("ONE", "brand_a", **very)
    p.brand("ONE", "brand_b", **idle)
    p.brand("ONE_MID", "brand_a", **very)
    p.brand("ONE_MID", "brand_b", order_count=1, last_order_date=day(100))  # neither very active nor inactive
    p.brand("SLEEPY", "brand_a", **idle)
    p.brand("SLEEPY", "brand_c", **idle)
    p.save()
    materialize_audiences(p.engine, as_of=AS_OF)
    m = p.members()
    assert m["cross_brand_very_active_multi"] == {"MULTI"}
    assert m["cross_brand_very_active_one_only"] == {"ONE"}
    assert m["cross_brand_inactive_all"] == {"SLEEPY"}


def test_predictive_audiences_skip_without_table_and_use_the_days_rows(tmp_path):
    p = Profiles(tmp_path)
    for i in range(20):
        p.brand(f"P{i:02d}", "brand_a", order_count=1, last_order_date=day(3))
    p.save()
    summary = materialize_audiences(p.engine, as_of=AS_OF).set_index("audience")
    assert summary.loc["predicted_high_churn_risk", "size"] == 0
    assert "skipped" in summary.loc["predicted_high_churn_risk", "note"]
    with p.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE predictions (as_of DATE, contact_id VARCHAR, rfm_segment VARCHAR, "
                             "churn_probability DOUBLE, risk_band VARCHAR, p_purchase_30d DOUBLE, "
                             "predicted_clv DOUBLE)"))
        rows = [{"as_of": AS_OF, "contact_id": f"P{i:02d}", "rfm_segment": "Champions" if i < 5 else "At Risk",
                 "churn": i / 20, "band": "high" if i >= 14 else "low", "p30": 1 - i / 20, "clv": float(i)}
                for i in range(20)]
        rows.append({"as_of": AS_OF - dt.timedelta(days=1), "contact_id": "P00", "rfm_segment": "Lost",
                     "churn": 0.99, "band": "high", "p30": 0.0, "clv": 1e9})  # another day: ignored
        conn.execute(sa.text("INSERT INTO predictions VALUES (:as_of, :contact_id, :rfm_segment, :churn, :band, "
                             ":p30, :clv)"), rows)
    summary = materialize_audiences(p.engine, as_of=AS_OF).set_index("audience")
    m = p.members()
    assert m["predicted_high_churn_risk"] == {f"P{i:02d}" for i in range(14, 20)}
    assert m["predicted_likely_to_buy_30d"] == {f"P{i:02d}" for i in range(16)}  # p30 = 1 - i/20 >= 0.25
    assert m["predicted_top_clv_10pct"] == {"P19", "P18"}
    assert m["rfm_champions"] == {f"P{i:02d}" for i in range(5)}
    assert len(m["rfm_at_risk"]) == 15 and "rfm_lost" not in summary.index


@pytest.fixture
def exported(tmp_path):
    p = Profiles(tmp_path)
    p.brand("C1", "brand_a", order_count=1, last_order_date=day(1))
    p.contact("C1", email=" Ann@Example.com ", phone="(415) 555-0123", first_name="=HYPERLINK(\"x\")",
              last_name="-2+3")
    p.brand("C2", "brand_a", order_count=1, last_order_date=day(2))
    p.contact("C2", email="bob@example.com", phone=None, first_name="@SUM(A1)", last_name="\tTab")
    p.save()
    materialize_audiences(p.engine, as_of=AS_OF)
    return p


def test_export_csv_escapes_formula_cells(exported, tmp_path):
    target = tmp_path / "out.csv"
    with exported.engine.connect() as conn:
        assert export_audience(conn, "customers_recent", AS_OF, "csv", target) == 2
    frame = pd.read_csv(target, dtype=str, keep_default_na=False)
    row1 = frame.set_index("contact_id").loc["C1"]
    row2 = frame.set_index("contact_id").loc["C2"]
    assert row1["first_name"] == "'=HYPERLINK(\"x\")" and row1["last_name"] == "'-2+3"
    assert row2["first_name"] == "'@SUM(A1)" and row2["last_name"] == "'\tTab"
    assert escape_cell("plain") == "plain" and escape_cell(3) == 3


def test_export_hashed_known_values(exported):
    out = io.BytesIO()
    with exported.engine.connect() as conn:
        export_audience(conn, "customers_recent", AS_OF, "hashed", out)
    frame = pd.read_csv(io.BytesIO(out.getvalue()), dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["email_sha256", "phone_sha256"]
    assert frame["email_sha256"].tolist() == [sha("ann@example.com"), sha("bob@example.com")]
    assert frame["email_sha256"][0] == hashlib.sha256(b"ann@example.com").hexdigest()
    assert frame["phone_sha256"].tolist() == [hashlib.sha256(b"+14155550123").hexdigest(), ""]


def test_export_parquet_and_unknown_audience(exported, tmp_path):
    target = tmp_path / "out.parquet"
    with exported.engine.connect() as conn:
        assert export_audience(conn, "brand_a:customers_recent", AS_OF, "parquet", target) == 2
        with pytest.raises(KeyError, match="nope"):
            export_audience(conn, "nope", AS_OF, "csv", io.StringIO())
        with pytest.raises(ValueError, match="fmt"):
            export_audience(conn, "customers_recent", AS_OF, "xlsx", io.StringIO())
    table = pq.read_table(target).to_pandas()
    assert set(table["contact_id"]) == {"C1", "C2"} and set(table["brand_scope"]) == {"brand_a"}
    assert table.set_index("contact_id").loc["C1", "first_name"] == "=HYPERLINK(\"x\")"  # parquet keeps data as is


def test_predictive_audiences_read_the_predict_stages_table(tmp_path):
    schema = pytest.importorskip("crm_pipeline.warehouse.predict_schema")
    p = Profiles(tmp_path)
    p.brand("Q1", "brand_a", order_count=2, last_order_date=day(200))
    p.brand("Q2", "brand_a", order_count=2, last_order_date=day(2))
    p.save()
    table = schema.predictions
    table.create(p.engine)
    base = {c.name: None for c in table.columns}
    rows = [{**base, "as_of": AS_OF, "contact_id": "Q1", "rfm_segment": "At Risk", "churn_probability": 0.9,
             "risk_band": "high", "p_purchase_30d": 0.05, "predicted_clv": 10.0},
            {**base, "as_of": AS_OF, "contact_id": "Q2", "rfm_segment": "Champions", "churn_probability": 0.1,
             "risk_band": "low", "p_purchase_30d": 0.8, "predicted_clv": 900.0}]
    for row in rows:  # fill the table's other required columns
        for c in table.columns:
            if row[c.name] is None and not c.nullable:
                row[c.name] = False if isinstance(c.type, sa.Boolean) else "x" if isinstance(c.type, sa.String) else 0
    with p.engine.begin() as conn:
        conn.execute(table.insert(), rows)
    materialize_audiences(p.engine, as_of=AS_OF)
    m = p.members()
    assert m["predicted_high_churn_risk"] == {"Q1"} and m["predicted_likely_to_buy_30d"] == {"Q2"}
    assert m["rfm_champions"] == {"Q2"} and m["rfm_at_risk"] == {"Q1"}
    assert "predicted_top_clv_10pct" not in m  # rank 1 of 2 is the top 50%, not the top 10%
