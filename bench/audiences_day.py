"""Where an audience run's seconds go on a built warehouse: `materialize_audiences` timed on copies.

    PYTHONPATH=. python bench/audiences_day.py --warehouse W.duckdb --as-of 2025-07-01 [--repeat 3] [--profile]
        [--drop PERCENT] [--whole]
    PYTHONPATH=. python bench/audiences_day.py --prepare W.duckdb --landing L --as-of 2025-07-01 --out W2.duckdb

As bench/predict_day.py (same options), for the audiences stage: `--prepare` runs every stage before it
(ingest to scoring) on a copy for `--as-of`; the timing mode prints wall and CPU seconds per run, the slowest
SQL statements and, with `--profile`, the Python functions. Never part of the tests.

The drop case: on a warehouse whose audiences already ran for `--as-of`, `--drop 1` first gives every 100th
contact a purchase on that day (profile_360 and profile_360_brand updated in SQL, as a drop's profile build
leaves them), then times the re-run of the day alone (the `audiences ... s` figure): incremental, or with
`--whole` the whole computation of the same drop, for an A/B on one machine state.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.predict_day import main  # noqa: E402


def _options() -> tuple[float, bool]:
    """`--drop PERCENT` and `--whole`, taken off the command line before predict_day's parser reads it."""
    drop, whole = 0.0, "--whole" in sys.argv
    if whole:
        sys.argv.remove("--whole")
    if "--drop" in sys.argv:
        at = sys.argv.index("--drop")
        drop = float(sys.argv[at + 1])
        del sys.argv[at:at + 2]
    return drop, whole


DROP_PERCENT, WHOLE = _options()


def _drop(engine: sa.Engine, as_of: dt.date, percent: float) -> int:
    """A purchase on `as_of` for every (100 / percent)-th contact by id, at each of its brands; the contacts."""
    every = max(1, round(100 / percent))
    picked = (f"contact_id IN (SELECT contact_id FROM (SELECT contact_id, ROW_NUMBER() OVER (ORDER BY contact_id) "
              f"AS n FROM profile_360) x WHERE n % {every} = 0)")
    with engine.begin() as conn:
        for table in ("profile_360", "profile_360_brand"):
            conn.execute(sa.text(f"UPDATE {table} SET order_count = order_count + 1, last_order_date = :d, "
                                 f"first_order_date = COALESCE(first_order_date, :d) WHERE {picked}")
                         .bindparams(sa.bindparam("d", type_=sa.Date())), {"d": as_of})
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM profile_360 WHERE {picked}")).scalar_one()


def _audiences(engine: sa.Engine, as_of: dt.date) -> str:
    from crm_pipeline.audiences.materialize import materialize_audiences

    touched = _drop(engine, as_of, DROP_PERCENT) if DROP_PERCENT else 0
    started = time.perf_counter()
    summary = materialize_audiences(engine, as_of=as_of, full_refresh=WHOLE)
    seconds = time.perf_counter() - started
    a = summary.attrs
    return (f"{len(summary)} audiences, {touched} contacts dropped, audiences {seconds:.2f} s: {a.get('mode')} "
            f"({a.get('reason')}), contacts recomputed {a.get('contacts_recomputed')}, members written "
            f"{a['members_written']}, history written {a['history_written']}")


if __name__ == "__main__":
    main(_audiences, groups=("ingest", "quality", "identity", "predict", "scoring"),
         imports=("crm_pipeline.audiences.materialize",))
