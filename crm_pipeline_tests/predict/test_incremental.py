"""A prediction run between training days computes only what new data touched, and equals a full refresh.

A drop that brings one record of one buyer, on a day whose models are stored, recomputes and rescores that
buyer alone (the run's own counters, kept in `predict_builds`); the other buyers keep their scores and only
the day's ranks move. On the training day itself too: its models read the complete days before it, so a
record of the day does not train them again. A new day without files carries every contact without a new
record from the day before; the same day again with nothing new writes no row. Both give the tables a full
refresh of a copy of the warehouse gives.
"""

from __future__ import annotations

import datetime as dt
import shutil

import sqlalchemy as sa

from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.resolve import resolve_identities
from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.predict.test_retrain import assert_same, predict, tables
from crm_pipeline_tests.profiles.test_incremental import D1, D2, generated, stage  # noqa: F401 (fixture)
from crm_pipeline_tests.quality.test_incremental import drops, land

DAY = D1 + dt.timedelta(days=1)


def _one_more_visit(engine: sa.Engine, day: dt.date) -> str:
    """A new staged web event (a new file's row) of the buyer with the most purchases, dated `day`, resolved by
    identity as a drop's rows are (it joins its cookie's contact): the contact."""
    with engine.begin() as conn:
        contact, brand, event_id = conn.execute(sa.text("""
            SELECT m.contact_id, w._brand, w.event_id FROM stg_web_events w
            JOIN identity_map m ON m.entity = 'web_events' AND m.brand = w._brand AND m.source_key = w.event_id
            WHERE m.contact_id = (SELECT contact_id FROM features WHERE as_of = :day
                                  ORDER BY purchase_count DESC, contact_id LIMIT 1)
            ORDER BY w.event_id LIMIT 1"""), {"day": day}).one()
        file_id = conn.execute(sa.text("SELECT MAX(_file_id) + 1 FROM stg_web_events")).scalar_one()
        at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc)
        keys = {"b": brand, "e": event_id, "f": file_id, "at": at}
        conn.execute(sa.text("INSERT INTO stg_web_events SELECT * REPLACE (event_id || '-again' || :f AS event_id, "
                             "CAST(:at AS TIMESTAMPTZ) AS occurred_at, :f AS _file_id, 1 AS _row_number, "
                             "_row_hash + 1 AS _row_hash) FROM stg_web_events WHERE _brand = :b AND event_id = :e"),
                     keys)
    resolve_identities(engine, as_of=day, config=load_identity_config())
    return contact


def test_a_drop_touching_one_buyer_rescores_one_buyer_and_a_new_day_carries_the_rest(generated, tmp_path):  # noqa: F811
    path, models = tmp_path / "step.duckdb", tmp_path / "models"
    engine = make_engine(f"duckdb:///{path}")
    land(tmp_path / "landing", drops(generated)[0])
    stage(engine, tmp_path / "landing", D1)
    build_profiles(engine, as_of=D1)
    assert predict(engine, D1, models)["training"]["retrained"]       # D1 is the training day
    _one_more_visit(engine, D1)       # a file of the training day itself, while the day is still filling
    build_profiles(engine, as_of=D1)
    on_training_day = predict(engine, D1, models)
    assert on_training_day["training"]["reason"] == "stored models reused", on_training_day["training"]
    assert (on_training_day["run"]["contacts_recomputed"], on_training_day["run"]["contacts_rescored"]) == (1, 1)
    stage(engine, tmp_path / "landing", DAY)
    build_profiles(engine, as_of=DAY)
    result = predict(engine, DAY, models)
    new_day = result["run"]
    assert not result["training"]["retrained"] and new_day["mode"] == "incremental", result["training"]
    # Contacts with a record dated on the new day were computed from their records; the rest were carried.
    assert new_day["contacts_recomputed"] == new_day["recomputed_because"]["dated_since_last_run"]
    assert new_day["contacts_recomputed"] < result["contacts_with_features"] / 10
    assert new_day["contacts_rescored"] == result["customers_scored"]      # T moved for every buyer

    # The same day again with nothing new writes no row and reports the day as it stands.
    stored = tables(engine, DAY)
    build_profiles(engine, as_of=DAY)
    again = predict(engine, DAY, models)
    assert again["run"]["rows_written"] == {"features": 0, "predictions": 0, "model_runs": 0}, again["run"]
    assert (again["run"]["contacts_recomputed"], again["run"]["contacts_rescored"]) == (0, 0)
    for key in ("contacts_with_features", "customers_scored", "segments", "risk_bands", "scored_by",
                "mean_predicted_clv", "churn_truth", "classifiers"):
        assert again[key] == result[key], key
    assert_same(stored, tables(engine, DAY), "a re-run with nothing new")

    contact = _one_more_visit(engine, DAY)
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT browse_30d_count, churn_lift FROM features JOIN predictions "
                                      "USING (as_of, contact_id) WHERE as_of = :d AND contact_id = :c"),
                              {"d": DAY, "c": contact}).one()
    build_profiles(engine, as_of=DAY)
    drop = predict(engine, DAY, models)
    assert not drop["training"]["retrained"]        # dated after the training day: the stored models score it
    assert drop["run"]["mode"] == "incremental"
    assert drop["run"]["contacts_recomputed"] == 1 and drop["run"]["contacts_rescored"] == 1, drop["run"]
    assert drop["customers_scored"] == result["customers_scored"]       # every buyer still has its row
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT mode, contacts_recomputed, contacts_rescored FROM predict_builds "
                                      "ORDER BY build_number DESC LIMIT 1")).one()
        after = conn.execute(sa.text("SELECT browse_30d_count, churn_lift FROM features JOIN predictions "
                                     "USING (as_of, contact_id) WHERE as_of = :d AND contact_id = :c"),
                             {"d": DAY, "c": contact}).one()
    assert tuple(logged) == ("incremental", 1, 1)
    assert after.browse_30d_count == before.browse_30d_count + 1

    incremental = tables(engine, DAY)
    engine.dispose()
    copy = path.with_name("copy.duckdb")
    shutil.copyfile(path, copy)
    other = make_engine(f"duckdb:///{copy}")
    assert predict(other, DAY, models, full_refresh=True)["run"]["mode"] == "full"
    assert_same(incremental, tables(other, DAY), "full refresh of a copy")
    other.dispose()
