"""On DuckDB and on PostgreSQL, each kind of change an incremental scoring run handles gives a full run's tables.

A hand-built warehouse goes through the changes one at a time (new records of a known and a new contact,
a merge, a split and a re-staged record in `identity_map`, new order lines, a catalogue change, a removed
contact, new days moving the windows and thresholds), each followed by an incremental profile build and
scoring run (which redoes the contacts the profile build redid); then a full scoring run of the same
warehouse must leave the day's scoring tables and the daily aggregates as they were.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.scoring.run import run_scoring
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the fixture)
from crm_pipeline_tests.profiles.test_incremental_backends import (  # noqa: F401  (wh: the fixture)
    execute, three_products_and_customers, wh)
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before
from crm_pipeline_tests.scoring.test_incremental import DAY_KEYS, SHORT, STATE_KEYS


def tables(wh: Warehouse, as_of: dt.date) -> dict[str, pd.DataFrame]:  # noqa: F811
    frames = {t: wh.frame(f"SELECT * FROM {t} WHERE as_of = :d", d=as_of) for t in DAY_KEYS}
    frames.update({t: wh.frame(f"SELECT * FROM {t}") for t in STATE_KEYS})
    return {t: f.sort_values((DAY_KEYS | STATE_KEYS)[t]).reset_index(drop=True) for t, f in frames.items()}


def score_and_check(wh: Warehouse, as_of: dt.date) -> dict:  # noqa: F811
    """Profiles and an incremental scoring run, then a full scoring run of the same warehouse: nothing may move."""
    build_profiles(wh.engine, as_of=as_of)
    figures = run_scoring(wh.engine, as_of=as_of, config=SHORT)
    incremental = tables(wh, as_of)
    assert run_scoring(wh.engine, as_of=as_of, config=SHORT, full_refresh=True)["mode"] == "full"
    for name, frame in tables(wh, as_of).items():
        pd.testing.assert_frame_equal(incremental[name], frame, check_exact=False, rtol=0, atol=1e-9,
                                      check_dtype=False, obj=name)
    assert wh.frame("SELECT * FROM profile_changes").empty  # the builds' log, taken in, does not grow
    return figures


def test_every_kind_of_change_gives_the_scores_of_a_full_run(wh):  # noqa: F811
    three_products_and_customers(wh)
    wh.order("K1", "O1", days_before(40), 30.0, lines=[("A1", 3, 10.0)], channel="web")
    wh.order("K1", "O0", days_before(95), 30.0, lines=[("A2", 1, 50.0)], channel="store")
    wh.order("K2", "O2", days_before(12), 50.0, lines=[("A2", 1, 50.0)], channel="app", discount_total=5.0,
             subtotal=55.0)
    wh.email_event("K1", "open", days_before(29))
    wh.email_event("K2", "click", days_before(13))
    wh.web_event("K3", "product_view", days_before(2), sku="A2")
    wh.email_event("K3", "open", days_before(-3))  # dated after the first day
    build_profiles(wh.engine, as_of=AS_OF)
    assert run_scoring(wh.engine, as_of=AS_OF, config=SHORT)["mode"] == "full"

    wh.email_event("K1", "click", days_before(0))  # a known contact's new record
    wh.customer("K4", "C4", first_name="Di", email="di@x.com", updated_at=days_before(1))  # a new contact
    wh.web_event("K4", "add_to_cart", days_before(1), sku="A3")
    figures = score_and_check(wh, AS_OF)
    assert (figures["mode"], figures["contacts_recomputed"]) == ("incremental", 2)

    execute(wh, "UPDATE identity_map SET contact_id = 'K1' WHERE contact_id = 'K2'")  # a merge: K2 retires
    assert score_and_check(wh, AS_OF)["contacts_recomputed"] == 2
    assert wh.frame("SELECT * FROM scoring_daily WHERE contact_id = 'K2'").empty

    execute(wh, "UPDATE identity_map SET contact_id = 'K5' WHERE source_key = 'O2'")  # a split
    execute(wh, "UPDATE stg_orders SET status = 'refunded', _file_id = 2 WHERE order_id = 'O1'")
    execute(wh, "UPDATE identity_map SET _file_id = 2 WHERE source_key = 'O1'")  # re-staged: no longer a purchase
    assert score_and_check(wh, AS_OF)["contacts_recomputed"] == 2

    wh.add("order_items", None, "alpha", order_id="O0", line_number=2, sku="A3", quantity=2, unit_price=10.0)
    assert score_and_check(wh, AS_OF)["contacts_by_reason"]["order_lines"] == 1

    execute(wh, "UPDATE stg_products SET category = 'Sport > Bags', _file_id = 2 WHERE sku = 'A2'")
    assert score_and_check(wh, AS_OF)["contacts_by_reason"]["catalogue"] >= 1

    execute(wh, "DELETE FROM identity_map WHERE contact_id = 'K4'")  # a contact removed
    assert score_and_check(wh, AS_OF)["contacts_recomputed"] == 1

    for days in (1, 3, 12, 60, 400):  # new days: future records come in, windows and thresholds pass
        assert score_and_check(wh, AS_OF + dt.timedelta(days=days))["mode"] == "incremental"
    last = AS_OF + dt.timedelta(days=400)
    # a full profile build may have rewritten any contact's timeline: the scores are redone for all
    build_profiles(wh.engine, as_of=last, full_refresh=True)
    assert run_scoring(wh.engine, as_of=last, config=SHORT)["reason"] == "the profiles were rebuilt in full"
    # other lookbacks: the rows carried forward would follow the old ones, so every contact is redone
    assert run_scoring(wh.engine, as_of=last)["reason"] == "scoring settings changed"
    build_profiles(wh.engine, as_of=AS_OF)
    assert run_scoring(wh.engine, as_of=AS_OF)["mode"] == "full"  # an earlier day: all again
    with wh.engine.connect() as conn:
        modes = conn.execute(sa.text("SELECT mode, COUNT(*) FROM scoring_builds GROUP BY mode")).all()
    assert dict(modes)["incremental"] >= 10
