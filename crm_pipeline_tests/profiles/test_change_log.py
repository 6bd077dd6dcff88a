"""The profile change log is kept until every stage that follows it has taken it in.

Predictions and scoring both redo the contacts the profile builds since their own last run redid. Whichever
runs first must not clear builds the other has not read yet: the other would lose the contacts to redo and
have to recompute everyone.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from crm_pipeline.profiles.incremental import forget_changes
from crm_pipeline.warehouse.predict_schema import predict_builds
from crm_pipeline.warehouse.profile_schema import create_profile_tables
from crm_pipeline.warehouse.scoring_schema import create_scoring_tables, scoring_builds


def _logged_builds(conn) -> list[int]:
    return [n for (n,) in conn.execute(sa.text(
        "SELECT DISTINCT build_number FROM profile_changes ORDER BY build_number"))]


def _ran(conn, table: sa.Table, profile_build: int) -> None:
    """A follower's run that took in the log up to `profile_build`."""
    day = dt.date(2025, 6, 30)
    row = {"build_number": profile_build, "as_of": day, "mode": "incremental", "reason": "incremental",
           "contacts_recomputed": 1, "profile_build": profile_build}
    extra = ({"contacts_rescored": 1, "trained_on": day, "input_fingerprint": "f"} if table is predict_builds
             else {"config_key": "k"})
    conn.execute(table.insert(), {**row, **extra})


def test_the_first_follower_keeps_what_the_second_has_not_read(engine):
    create_profile_tables(engine)
    create_scoring_tables(engine)
    predict_builds.create(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO profile_changes (build_number, contact_id, reason) "
                             "VALUES (1, 'C1', 'records'), (2, 'C2', 'records'), "
                             "(3, 'C3', 'records')"))
        _ran(conn, predict_builds, 1)       # predictions last took in build 1
        _ran(conn, scoring_builds, 3)       # scoring now took in build 3
        forget_changes(conn, 3)
        assert _logged_builds(conn) == [2, 3]   # predictions still has builds 2 and 3 to read
        _ran(conn, predict_builds, 3)
        forget_changes(conn, 3)
        assert _logged_builds(conn) == []


def test_a_follower_that_never_ran_is_not_waited_for(engine):
    create_profile_tables(engine)
    create_scoring_tables(engine)
    predict_builds.create(engine)           # no prediction run yet: its first run is a full one
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO profile_changes (build_number, contact_id, reason) "
                             "VALUES (1, 'C1', 'records'), (2, 'C2', 'records')"))
        forget_changes(conn, 2)
        assert _logged_builds(conn) == []
