"""Where an audience run's seconds go on a built warehouse: `materialize_audiences` timed on copies.

    PYTHONPATH=. python bench/audiences_day.py --warehouse W.duckdb --as-of 2025-07-01 [--repeat 3] [--profile]
    PYTHONPATH=. python bench/audiences_day.py --prepare W.duckdb --landing L --as-of 2025-07-01 --out W2.duckdb

As bench/predict_day.py (same options), for the audiences stage: `--prepare` runs every stage before it
(ingest to scoring) on a copy for `--as-of`; the timing mode prints wall and CPU seconds per run, the slowest
SQL statements and, with `--profile`, the Python functions. Never part of the tests.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.predict_day import main  # noqa: E402


def _audiences(engine: sa.Engine, as_of: dt.date) -> str:
    from crm_pipeline.audiences.materialize import materialize_audiences

    summary = materialize_audiences(engine, as_of=as_of)
    return (f"{len(summary)} audiences, members written {summary.attrs['members_written']}, "
            f"history written {summary.attrs['history_written']}")


if __name__ == "__main__":
    main(_audiences, groups=("ingest", "quality", "identity", "predict", "scoring"),
         imports=("crm_pipeline.audiences.materialize",))
