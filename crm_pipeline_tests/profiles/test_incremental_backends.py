"""On DuckDB and on PostgreSQL, each kind of change an incremental profile build handles gives a full rebuild's tables.

A hand-built warehouse goes through the changes one at a time: new records of a known and a new
contact, a merge and a split in `identity_map`, a record re-staged from a newer file, new order
lines, a catalogue change, a removed contact, and new days (windows moving, future-dated
records coming in). After each incremental build a full rebuild of the same warehouse must
leave every profile table as it was.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the fixture)
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before

KEYS = {"golden_records": ["contact_id", "field"], "profile_360": ["contact_id"],
        "profile_360_brand": ["contact_id", "brand"], "timeline": ["contact_id", "event_number"],
        "contact_daily": ["contact_id", "brand", "day"]}


def backend_engine(request, tmp_path, prefix: str) -> sa.Engine:
    """A fresh warehouse on the fixture's backend: a DuckDB file, or a database on the throwaway PostgreSQL server."""
    if request.param == "duckdb":
        return make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    server = request.getfixturevalue("postgres_server")
    return make_engine(server.create_database(f"{prefix}_{tmp_path.name}".lower()[:60]))


@pytest.fixture(params=["duckdb", "postgresql"])
def wh(request, tmp_path):
    engine = backend_engine(request, tmp_path, "profiles")
    yield Warehouse(engine)
    engine.dispose()


def tables(wh: Warehouse) -> dict[str, pd.DataFrame]:
    return {t: wh.frame(f"SELECT * FROM {t}").sort_values(k).reset_index(drop=True) for t, k in KEYS.items()}


def build_and_check(wh: Warehouse, as_of: dt.date) -> dict:
    """An incremental build, then a full rebuild of the same warehouse: the tables must not move."""
    figures = build_profiles(wh.engine, as_of=as_of)
    incremental = tables(wh)
    build_profiles(wh.engine, as_of=as_of, full_refresh=True)
    for name, frame in tables(wh).items():
        pd.testing.assert_frame_equal(incremental[name], frame, check_exact=False, rtol=0, atol=1e-9, obj=name)
    return figures


def execute(wh: Warehouse, sql: str, **params) -> None:
    with wh.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def three_products_and_customers(wh: Warehouse) -> None:
    """The shop the every-kind-of-change tests start from: products A1-A3, customers K1-K3 (Ann, Bo, Cy)."""
    wh.product("A1", 10.0, "Women > Shoes")
    wh.product("A2", 50.0, "Men > Shirts")
    wh.product("A3", 90.0, "Home > Kitchen")
    wh.customer("K1", "C1", first_name="Ann", email="ann@x.com", updated_at=days_before(50))
    wh.customer("K2", "C2", first_name="Bo", email="bo@x.com", updated_at=days_before(20))
    wh.customer("K3", "C3", first_name="Cy", email="cy@x.com", updated_at=days_before(5))


def test_every_kind_of_change_gives_the_tables_of_a_full_rebuild(wh):
    three_products_and_customers(wh)
    wh.order("K1", "O1", days_before(40), 30.0, lines=[("A1", 3, 10.0)])
    wh.email_event("K1", "open", days_before(29))
    wh.email_event("K2", "click", days_before(89))
    wh.web_event("K3", "product_view", days_before(2), sku="A2")
    wh.email_event("K3", "open", days_before(-3))  # dated after the first day
    wh.subscriber("K2", "S2", "bo@x.com", "subscribed", subscribed_at=days_before(-2))
    assert build_profiles(wh.engine, as_of=AS_OF)["mode"] == "full"

    wh.email_event("K1", "click", days_before(0))  # a known contact's new record
    wh.customer("K4", "C4", first_name="Di", email="di@x.com", updated_at=days_before(1))  # a new contact
    figures = build_and_check(wh, AS_OF)
    assert (figures["mode"], figures["contacts_recomputed"]) == ("incremental", 2)

    execute(wh, "UPDATE identity_map SET contact_id = 'K1' WHERE contact_id = 'K2'")  # a merge: K2 retires
    assert build_and_check(wh, AS_OF)["contacts_recomputed"] == 2
    assert wh.frame("SELECT * FROM profile_360 WHERE contact_id = 'K2'").empty

    execute(wh, "UPDATE identity_map SET contact_id = 'K5' WHERE source_key = 'C2'")  # a split
    execute(wh, "UPDATE stg_customers SET first_name = 'Bob', _file_id = 2 WHERE customer_id = 'C3'")
    execute(wh, "UPDATE identity_map SET _file_id = 2 WHERE source_key = 'C3'")  # re-staged from a newer file
    assert build_and_check(wh, AS_OF)["contacts_recomputed"] == 3

    wh.add("order_items", None, "alpha", order_id="O1", line_number=2, sku="A3", quantity=-1, unit_price=10.0)
    assert build_and_check(wh, AS_OF)["contacts_by_reason"]["order_lines"] == 1

    execute(wh, "UPDATE stg_products SET category = 'Sport > Bags', _file_id = 2 WHERE sku = 'A2'")
    assert build_and_check(wh, AS_OF)["contacts_by_reason"]["catalogue"] >= 1

    execute(wh, "DELETE FROM identity_map WHERE contact_id = 'K4'")  # a contact removed
    assert build_and_check(wh, AS_OF)["contacts_recomputed"] == 1
    assert wh.frame("SELECT * FROM timeline WHERE contact_id = 'K4'").empty

    for days in (1, 3, 60, 400):  # new days: future records come in, days leave the windows
        figures = build_and_check(wh, AS_OF + dt.timedelta(days=days))
        assert figures["mode"] == "incremental"
    assert build_profiles(wh.engine, as_of=AS_OF)["mode"] == "full"  # an earlier day: a full rebuild


def test_kept_rows_carry_the_scores_a_full_build_would_attach(wh):
    from crm_pipeline.scoring.run import run_scoring

    wh.customer("K1", "C1", first_name="Ann", updated_at=days_before(50))
    wh.customer("K2", "C2", first_name="Bo", updated_at=days_before(20))
    wh.email_event("K1", "open", days_before(3))
    wh.order("K2", "O1", days_before(10), 30.0)
    build_profiles(wh.engine, as_of=AS_OF)
    run_scoring(wh.engine, as_of=AS_OF)
    assert wh.one("SELECT COUNT(*) AS n FROM profile_360 WHERE engagement_score IS NOT NULL")["n"] == 2

    wh.email_event("K1", "click", days_before(0))
    assert build_and_check(wh, AS_OF)["contacts_recomputed"] == 1  # K2 keeps its score, K1 gets the day's
    later = AS_OF + dt.timedelta(days=1)
    build_and_check(wh, later)  # a new day: no kept row shows the old day's scores
    assert wh.one("SELECT COUNT(*) AS n FROM profile_360 WHERE engagement_score IS NOT NULL")["n"] == 0
    run_scoring(wh.engine, as_of=later)
    assert build_and_check(wh, later)["contacts_recomputed"] == 0
    assert wh.one("SELECT COUNT(*) AS n FROM profile_360 WHERE engagement_score IS NOT NULL")["n"] == 2


def test_new_events_are_taken_in_without_rebuilding_the_contact(wh):
    wh.product("A1", 10.0, "Women > Shoes")
    wh.product("A2", 50.0, "Men > Shirts")
    wh.customer("K1", "C1", first_name="Ann", email="ann@x.com", updated_at=days_before(50))
    wh.customer("K2", "C2", first_name="Bo", email="bo@x.com", updated_at=days_before(40))
    wh.order("K1", "O1", days_before(30), 30.0, lines=[("A1", 1, 10.0)])
    wh.web_event("K1", "product_view", days_before(10), sku="A1")
    wh.email_event("K1", "open", days_before(5))
    wh.email_event("K1", "open", days_before(1))
    wh.email_event("K2", "send", days_before(2))
    build_profiles(wh.engine, as_of=AS_OF)

    # dated before K1's latest events (its timeline is renumbered from there on), on as_of, and after it
    wh.web_event("K1", "product_view", days_before(3), sku="A2")
    wh.web_event("K1", "add_to_cart", days_before(3), sku="A2")
    wh.email_event("K1", "click", days_before(0), url="https://shop/x")
    wh.email_event("K1", "click", days_before(-2), url="https://shop/y")
    wh.subscriber("K1", "S1", "ann@x.com", "subscribed", subscribed_at=days_before(4))
    wh.customer("K3", "C3", first_name="Cy", updated_at=days_before(1))  # a new contact
    figures = build_and_check(wh, AS_OF)
    assert (figures["contacts_recomputed"], figures["contacts_rebuilt_whole"]) == (2, 0)
    events = wh.frame("SELECT event_number, event_type FROM timeline WHERE contact_id = 'K1' ORDER BY event_number")
    assert events["event_number"].tolist() == list(range(1, 9))
    assert events["event_type"].tolist() == ["order", "product_view", "email_open", "subscribe", "product_view",
                                             "add_to_cart", "email_open", "email_click"]
    assert wh.one("SELECT top_category_browsed FROM profile_360 WHERE contact_id = 'K1'") == {
        "top_category_browsed": "Men"}  # two events on Men's products against one on Women's

    wh.web_event("K2", "product_view", days_before(1), sku="A1")  # web events only, in a brand K2 has
    wh.web_event("K2", "page_view", days_before(-1))
    wh.web_event("K3", "product_view", days_before(1), brand="beta", sku="A2")  # a brand K3 has no profile in
    figures = build_and_check(wh, AS_OF)
    assert (figures["contacts_recomputed"], figures["contacts_browse_only"]) == (2, 1)
    assert wh.frame("SELECT contact_id, brand, COALESCE(top_category_browsed, '-') AS top FROM profile_360_brand "
                    "WHERE contact_id IN ('K2', 'K3') ORDER BY contact_id, brand").values.tolist() == [
        ["K2", "alpha", "Women"], ["K3", "alpha", "-"], ["K3", "beta", "-"]]  # A2 is alpha's, not beta's

    for days in (1, 2, 40):  # the click after as_of joins the timeline; windows move
        figures = build_and_check(wh, AS_OF + dt.timedelta(days=days))
        assert figures["contacts_rebuilt_whole"] == 0
    assert wh.one("SELECT COUNT(*) AS n FROM timeline WHERE contact_id = 'K1'")["n"] == 9

    execute(wh, "DROP TABLE contact_browse_daily")  # a warehouse profiled before the table existed
    figures = build_profiles(wh.engine, as_of=AS_OF + dt.timedelta(days=40))
    assert (figures["mode"], figures["reason"]) == ("full", "new state table contact_browse_daily")


def test_the_log_names_the_first_day_each_contact_changed_on(wh):
    """Scoring redoes an appended contact's days from the first one the build changed (`since_day`): its new
    events' earliest, or the new day's first when the day moved; a contact rebuilt whole (a merge) has none."""
    yesterday = AS_OF - dt.timedelta(days=1)
    for n in range(1, 5):
        wh.customer(f"K{n}", f"C{n}", updated_at=days_before(60))
        wh.web_event(f"K{n}", "page_view", days_before(40))
    wh.web_event("K4", "page_view", days_before(0))  # dated into the next day: joins the timeline then
    build_profiles(wh.engine, as_of=yesterday)
    wh.web_event("K1", "product_view", days_before(5))  # a late event, five days back
    execute(wh, "UPDATE identity_map SET contact_id = 'K2' WHERE contact_id = 'K3'")  # a merge: K3 retires
    build_profiles(wh.engine, as_of=AS_OF)

    logged = wh.frame("SELECT contact_id, MIN(since_day) AS since_day, COUNT(*) - COUNT(since_day) AS whole "
                      "FROM profile_changes WHERE reason <> 'windows' GROUP BY contact_id ORDER BY contact_id")
    day = {k: (d - dt.date(1970, 1, 1)).days for k, d in (("late", AS_OF - dt.timedelta(days=5)), ("new", AS_OF))}
    assert list(logged["contact_id"]) == ["K1", "K2", "K3", "K4"]
    assert list(logged["whole"]) == [0, 1, 1, 0]
    assert [logged["since_day"][0], logged["since_day"][3]] == [day["late"], day["new"]]
