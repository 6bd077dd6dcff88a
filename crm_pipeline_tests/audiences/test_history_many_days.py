"""History with many days kept: each day's entries and exits are against the previous stored day,
whatever the order the days were run in (new days, re-runs, backfills of earlier days)."""

from __future__ import annotations

import datetime as dt
import random

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline_tests.audiences.profiles import AS_OF, Profiles, day

# every third day over two months, so the previous stored day is not simply the day before
DAYS = [AS_OF + dt.timedelta(days=3 * n) for n in range(20)]


def _warehouse(folder) -> Profiles:
    folder.mkdir()
    p = Profiles(folder)
    # orders spread over the weeks: each contact is in customers_recent for 60 days after its order
    for n in range(12):
        p.brand(f"C{n:02d}", "brand_a", order_count=1, last_order_date=day(40 - 7 * n),
                subscription_status="subscribed" if n % 2 else None)
    p.save()
    return p


def _table(p: Profiles, name: str) -> pd.DataFrame:
    with p.engine.connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT * FROM {name}"), conn)
    return frame.sort_values(list(frame.columns), ignore_index=True)


def test_each_days_history_is_its_snapshot_against_the_previous_stored_day(tmp_path):
    p = _warehouse(tmp_path / "in_order")
    for d in DAYS:
        materialize_audiences(p.engine, as_of=d)
    members, history = _table(p, "audience_members"), _table(p, "audience_history")
    assert members["as_of"].nunique() == len(DAYS) and len(history) > 0

    def pairs(frame, d):
        rows = frame[frame["as_of"] == d]
        return set(zip(rows["audience"], rows["contact_id"]))

    for previous, d in zip([None, *DAYS], DAYS):
        now, before = pairs(members, d), (pairs(members, previous) if previous else set())
        rows = history[history["as_of"] == d]
        assert set(zip(rows["audience"], rows["contact_id"], rows["event"])) == (
            {(a, c, "entered") for a, c in now - before} | {(a, c, "exited") for a, c in before - now}), d
        assert set(rows["previous_as_of"].dropna()) <= {previous}
    # the recent customers actually move over the two months
    recent = history[history["audience"] == "customers_recent"]
    assert set(recent["event"]) == {"entered", "exited"}


def test_days_run_in_any_order_leave_the_same_tables_as_days_run_in_order(tmp_path):
    in_order, shuffled = _warehouse(tmp_path / "in_order"), _warehouse(tmp_path / "shuffled")
    for d in DAYS:
        materialize_audiences(in_order.engine, as_of=d)
    backfills = DAYS[::2] + DAYS[1::2]  # every other day, then the days between them as backfills
    random.Random(13).shuffle(backfills)
    for d in [*backfills, DAYS[7], DAYS[0]]:  # and two re-runs
        materialize_audiences(shuffled.engine, as_of=d)
    for table in ("audience_members", "audience_history", "audience_sizes"):
        pd.testing.assert_frame_equal(_table(shuffled, table), _table(in_order, table), obj=table)
