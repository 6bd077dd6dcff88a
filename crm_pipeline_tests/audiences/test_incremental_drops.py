"""Through the real stages, a drop's audience run (incremental) leaves the tables the whole computation leaves.

The landing of the profiles' incremental test arrives in three drops (the second on the same day as the first,
then a new day, then a day with no file); after each, staging, identity, profiles, scoring and predictions run
incrementally, then the audiences. After every step a full refresh of the audiences on a copy of the warehouse
must give the same `audience_members`, `audience_history` and `audience_sizes`, every day and every column, and
the same `audience_inputs`.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.scoring.run import run_scoring
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.predict.test_retrain import predict
from crm_pipeline_tests.profiles.test_incremental import STEPS, generated, stage  # noqa: F401 (fixture)
from crm_pipeline_tests.quality.test_incremental import drops, land

# and what the next drop compares with: kept as the whole computation keeps it
TABLES = ("audience_members", "audience_history", "audience_sizes", "audience_inputs")


def audience_tables(engine: sa.Engine) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        frames = {t: pd.read_sql(sa.text(f"SELECT * FROM {t}"), conn) for t in TABLES}
    return {t: f.sort_values(list(f.columns), ignore_index=True) for t, f in frames.items()}


def whole_on_a_copy(engine: sa.Engine, path: Path, as_of: dt.date) -> tuple[dict[str, pd.DataFrame], dict]:
    engine.dispose()  # DuckDB writes everything to the file when its last connection closes
    copy = path.with_name(path.stem + "_copy.duckdb")
    shutil.copyfile(path, copy)
    other = make_engine(f"duckdb:///{copy}")
    attrs = materialize_audiences(other, as_of=as_of, full_refresh=True).attrs
    assert attrs["mode"] == "full"
    rebuilt = audience_tables(other)
    other.dispose()
    copy.unlink()
    return rebuilt, attrs


def _one_more_order(generated: Path) -> dict[str, pd.DataFrame]:  # noqa: F811
    """A drop of one more order of a known customer, the day before the second day: that contact's figures move."""
    orders = pd.read_csv(generated / "brand_a/orders/orders_2025Q2.csv", dtype=str)
    order = orders.iloc[[10]].assign(order_id="one-more-order", ordered_at="2025-06-29T12:00:00Z")
    return {"brand_a/orders/orders_one_more.csv": order}


def test_three_drops_and_a_new_day_give_the_audiences_of_the_whole_computation(generated, tmp_path):  # noqa: F811
    three = drops(generated)
    path, models = tmp_path / "step.duckdb", tmp_path / "models"
    step = make_engine(f"duckdb:///{path}")
    d2 = STEPS[2][1]
    figures = []
    # the steps of the profiles' test, with the second day's drop followed by a small one and by nothing new
    for drop, as_of in [*STEPS[:3], ("order", d2), (None, d2), STEPS[3]]:
        if drop is not None:
            land(tmp_path / "step", _one_more_order(generated) if drop == "order" else three[drop])
        stage(step, tmp_path / "step", as_of)
        build_profiles(step, as_of=as_of)
        run_scoring(step, as_of=as_of)
        predict(step, as_of, models)
        figures.append(materialize_audiences(step, as_of=as_of).attrs)
        ours = audience_tables(step)
        whole, attrs = whole_on_a_copy(step, path, as_of)
        assert (attrs["members_written"], attrs["history_written"]) == (0, 0), attrs  # nothing left to correct
        for name in TABLES:
            assert len(ours[name]) > 0, name
            pd.testing.assert_frame_equal(ours[name], whole[name], obj=f"{name} (as of {as_of}, drop {drop})")

    modes = [(f["mode"], f["reason"], f["contacts_recomputed"]) for f in figures]
    assert [m[0] for m in modes[2:]] == ["full", "incremental", "incremental", "full"], modes
    everyone = figures[2]["contacts_recomputed"]
    assert 1 <= figures[3]["contacts_recomputed"] < everyone / 10, modes  # the small drop redid its contacts only
    assert (figures[4]["contacts_recomputed"], figures[4]["members_written"]) == (0, 0)  # nothing new
    step.dispose()
