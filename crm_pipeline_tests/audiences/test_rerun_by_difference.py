"""A drop re-runs the day's audiences: only the changed contact's membership and history rows are written, and
the tables are exactly those of a warehouse that computed the same days from scratch."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline_tests.audiences.profiles import AS_OF, Profiles, day
from crm_pipeline_tests.postgres.conftest import shared_server

D1, D2 = AS_OF, AS_OF + dt.timedelta(days=1)


def _warehouse(folder, url: str | None) -> Profiles:
    folder.mkdir()
    p = Profiles(folder, url)
    for n in range(8):
        p.brand(f"C{n}", "brand_a", order_count=1, last_order_date=day(10 * n), subscription_status="subscribed")
    p.brand("Z", "brand_a", email="z@example.com", subscription_status="subscribed")
    p.save()
    return p


def _drop(p: Profiles) -> None:
    """The drop: Z buys on D2 and gets a new email; nobody else changes."""
    p.brand_rows = [r for r in p.brand_rows if r["contact_id"] != "Z"]
    p.contacts["Z"]["email"] = "z.new@example.com"
    p.brand("Z", "brand_a", subscription_status="subscribed", order_count=1, last_order_date=D2)
    p.save()


def _tables(p: Profiles) -> dict[str, pd.DataFrame]:
    out = {}
    with p.engine.connect() as conn:
        for name in ("audience_members", "audience_history", "audience_sizes"):
            frame = pd.read_sql(sa.text(f"SELECT * FROM {name}"), conn)
            out[name] = frame.sort_values(list(frame.columns), ignore_index=True)
    return out


@pytest.fixture(params=["duckdb", "postgresql"])
def urls(request):
    """Two empty warehouses on the backend: (incremental, fresh); None = a DuckDB file in the test's folder."""
    if request.param == "duckdb":
        return None, None
    server = shared_server()
    return tuple(server.create_database(f"audiences_rerun_{name}") for name in ("incremental", "fresh"))


def test_a_drop_touching_one_contact_writes_only_its_rows_and_matches_a_fresh_build(tmp_path, urls):
    p = _warehouse(tmp_path / "incremental", urls[0])
    materialize_audiences(p.engine, as_of=D1)
    first = materialize_audiences(p.engine, as_of=D2)
    assert first.attrs["members_written"] is None  # a new day is written whole
    rerun = materialize_audiences(p.engine, as_of=D2)
    assert (rerun.attrs["members_written"], rerun.attrs["history_written"]) == (0, 0)

    _drop(p)
    before_z = _tables(p)
    dropped = materialize_audiences(p.engine, as_of=D2)
    after_z = _tables(p)
    # every row written is Z's: each audience Z was or is in on D2 (its email changed, so none is kept as is),
    # and the history of those pairs only
    z_audiences = set.union(*({*f.loc[(f["as_of"] == D2) & (f["contact_id"] == "Z"), "audience"]}
                              for f in (before_z["audience_members"], after_z["audience_members"])))
    assert len(z_audiences) > 1
    assert dropped.attrs["members_written"] == len(z_audiences)
    history = after_z["audience_history"]
    assert dropped.attrs["history_written"] == len(history[(history["as_of"] == D2) & (history["contact_id"] == "Z")])

    # the same days run once each, the drop already in place on D2
    fresh = _warehouse(tmp_path / "fresh", urls[1])
    materialize_audiences(fresh.engine, as_of=D1)
    _drop(fresh)
    materialize_audiences(fresh.engine, as_of=D2)
    ours, theirs = _tables(p), _tables(fresh)
    for name in ours:
        pd.testing.assert_frame_equal(ours[name], theirs[name], obj=name)
