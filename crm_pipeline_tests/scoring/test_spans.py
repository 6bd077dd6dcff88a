"""Preferences, channel and lifecycle kept as validity intervals: every stored day reads back as it was computed,
whatever day is run after it (a new day, an earlier day, a re-run), on DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.scoring.run import run_scoring
from crm_pipeline.warehouse.scoring_schema import SPANNED, spans_name
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the fixture)
from crm_pipeline_tests.profiles.test_incremental_backends import (  # noqa: F401  (wh: the fixture)
    three_products_and_customers, wh)
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse, days_before
from crm_pipeline_tests.scoring.test_incremental import DAY_KEYS, SHORT


def day_tables(wh: Warehouse, as_of: dt.date) -> dict[str, pd.DataFrame]:  # noqa: F811
    return {t: wh.frame(f"SELECT * FROM {t} WHERE as_of = :d", d=as_of).sort_values(k).reset_index(drop=True)
            for t, k in DAY_KEYS.items()}


def score(wh: Warehouse, as_of: dt.date, **kwargs) -> dict:  # noqa: F811
    build_profiles(wh.engine, as_of=as_of)
    return run_scoring(wh.engine, as_of=as_of, config=SHORT, **kwargs)


def assert_days(wh: Warehouse, stored: dict[dt.date, dict[str, pd.DataFrame]], when: str) -> None:  # noqa: F811
    for day, frames in stored.items():
        for name, frame in day_tables(wh, day).items():
            pd.testing.assert_frame_equal(frame, frames[name], check_exact=False, rtol=0, atol=1e-9,
                                          check_dtype=False, obj=f"{name} of {day} ({when})")


def test_every_stored_day_reads_back_as_computed(wh):  # noqa: F811
    three_products_and_customers(wh)
    wh.order("K1", "O1", days_before(40), 30.0, lines=[("A1", 3, 10.0)], channel="web")
    wh.order("K1", "O0", days_before(95), 30.0, lines=[("A2", 1, 50.0)], channel="store")
    wh.order("K2", "O2", days_before(12), 50.0, lines=[("A2", 1, 50.0)], channel="app")
    wh.email_event("K2", "click", days_before(13))
    wh.web_event("K3", "product_view", days_before(2), sku="A2")
    wh.email_event("K3", "open", days_before(-3))  # dated after the first day
    wh.customer("K4", "C4", first_name="Di", updated_at=days_before(1))  # nothing to score: `unknown` rows

    days = [AS_OF, AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=5), AS_OF + dt.timedelta(days=60)]
    stored = {}
    for day in days:
        score(wh, day)
        stored[day] = day_tables(wh, day)
    assert (stored[days[0]]["lifecycle_stages"]["stage"] == "unknown").sum() == 1
    shown = sum(len(stored[d][t.name]) for d in days for t in SPANNED)
    kept = sum(len(wh.frame(f"SELECT * FROM {spans_name(t)}")) for t in SPANNED)
    assert kept < shown  # a row holds over the days its values do not change

    earlier = AS_OF - dt.timedelta(days=20)
    assert score(wh, earlier)["mode"] == "full"  # an earlier day: computed in full, the later days stay
    assert_days(wh, stored, "after an earlier day")
    assert score(wh, days[1])["mode"] == "incremental"  # a day between stored days, after the earlier one
    assert_days(wh, stored, "after a day between")
    assert score(wh, days[2], full_refresh=True)["mode"] == "full"
    assert_days(wh, stored, "after a full refresh of a day between")
    assert len(day_tables(wh, earlier)["lifecycle_stages"]) > 0
