"""On DuckDB and on PostgreSQL, each kind of change an incremental prediction run handles gives a full run's tables.

A hand-built warehouse goes through the changes one at a time (new records of a known and a new contact,
a merge, a split and a re-staged record in `identity_map`, new order lines, a catalogue change, a removed
contact, new days moving the windows), each followed by an incremental profile build and prediction run
with the stored models (which recomputes the contacts the profile build redid and carries the others);
then a full refresh of the same warehouse must leave the day's features and predictions as they were.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from crm_pipeline.predict.run import run_predictions
from crm_pipeline.profiles.build import build_profiles
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the fixture)
from crm_pipeline_tests.profiles.test_incremental_backends import (  # noqa: F401  (wh: the fixture)
    execute, three_products_and_customers, wh)
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before

KEYS = {"features": ["contact_id"], "predictions": ["contact_id"]}
TRAINED_ON = AS_OF - dt.timedelta(days=200)   # one training day for every run below, before every record


def predict(wh: Warehouse, as_of: dt.date, tmp_path, **kw) -> dict:  # noqa: F811
    return run_predictions(wh.engine, as_of=as_of, model_dir=tmp_path / "models", retrain_days=1000,
                           cadence_start=TRAINED_ON, **kw)


def tables(wh: Warehouse, as_of: dt.date) -> dict[str, pd.DataFrame]:  # noqa: F811
    return {t: wh.frame(f"SELECT * FROM {t} WHERE as_of = :d", d=as_of).sort_values(k).reset_index(drop=True)
            for t, k in KEYS.items()}


def predict_and_check(wh: Warehouse, as_of: dt.date, tmp_path) -> dict:  # noqa: F811
    """Profiles and an incremental prediction run, then a full refresh of the same warehouse: nothing may move."""
    build_profiles(wh.engine, as_of=as_of)
    run = predict(wh, as_of, tmp_path)["run"]
    assert run["mode"] == "incremental", run
    incremental = tables(wh, as_of)
    assert predict(wh, as_of, tmp_path, full_refresh=True)["run"]["mode"] == "full"
    for name, frame in tables(wh, as_of).items():
        assert len(frame), name
        pd.testing.assert_frame_equal(incremental[name], frame, check_exact=False, rtol=0, atol=1e-9,
                                      check_dtype=False, obj=name)
    return run


def test_every_kind_of_change_gives_the_features_and_predictions_of_a_full_run(wh, tmp_path):  # noqa: F811
    three_products_and_customers(wh)
    wh.order("K1", "O1", days_before(40), 30.0, lines=[("A1", 3, 10.0)])
    wh.order("K1", "O0", days_before(95), 30.0, lines=[("A2", 1, 50.0)])
    wh.order("K2", "O2", days_before(12), 50.0, lines=[("A2", 1, 50.0)])
    wh.order("K3", "O3", days_before(3), 90.0, lines=[("A3", 1, 90.0)])
    wh.email_event("K1", "open", days_before(29))
    wh.email_event("K2", "click", days_before(13))
    wh.web_event("K3", "product_view", days_before(2), sku="A2")
    wh.email_event("K3", "open", days_before(-3))  # dated after the first day
    build_profiles(wh.engine, as_of=AS_OF)
    assert predict(wh, AS_OF, tmp_path)["run"]["mode"] == "full"

    wh.email_event("K1", "click", days_before(0))  # a known contact's new record
    wh.customer("K4", "C4", first_name="Di", email="di@x.com", updated_at=days_before(1))  # a new contact
    wh.web_event("K4", "add_to_cart", days_before(1), sku="A3")
    run = predict_and_check(wh, AS_OF, tmp_path)
    assert run["contacts_recomputed"] == 2 and run["contacts_rescored"] == 1, run   # K4 has bought nothing

    execute(wh, "UPDATE identity_map SET contact_id = 'K1' WHERE contact_id = 'K2'")  # a merge: K2 retires
    assert predict_and_check(wh, AS_OF, tmp_path)["contacts_recomputed"] == 2
    assert wh.frame("SELECT * FROM features WHERE contact_id = 'K2'").empty

    execute(wh, "UPDATE identity_map SET contact_id = 'K5' WHERE source_key = 'O2'")  # a split
    execute(wh, "UPDATE stg_orders SET status = 'refunded', _file_id = 2 WHERE order_id = 'O1'")
    execute(wh, "UPDATE identity_map SET _file_id = 2 WHERE source_key = 'O1'")  # re-staged: no longer a purchase
    assert predict_and_check(wh, AS_OF, tmp_path)["contacts_recomputed"] == 2

    wh.add("order_items", None, "alpha", order_id="O0", line_number=2, sku="A3", quantity=2, unit_price=10.0)
    assert predict_and_check(wh, AS_OF, tmp_path)["recomputed_because"]["order_lines"] == 1

    execute(wh, "UPDATE stg_products SET category = 'Sport > Bags', _file_id = 2 WHERE sku = 'A2'")
    assert predict_and_check(wh, AS_OF, tmp_path)["recomputed_because"]["catalogue"] >= 1

    execute(wh, "DELETE FROM identity_map WHERE contact_id = 'K4'")  # a contact removed
    assert predict_and_check(wh, AS_OF, tmp_path)["contacts_recomputed"] == 1
    assert wh.frame("SELECT * FROM features WHERE contact_id = 'K4'").empty

    for days in (1, 3, 12, 60, 400):  # new days: future records come in, windows pass, every buyer is rescored
        run = predict_and_check(wh, AS_OF + dt.timedelta(days=days), tmp_path)
        assert run["contacts_rescored"] == len(tables(wh, AS_OF + dt.timedelta(days=days))["predictions"])
