"""Ingestion speed against a plain DuckDB read_csv of the same files.

    python bench/ingest.py [--people 100000 1000000] [--root bench/out]

Prints per scale: files, rows, seconds, rows/s, peak memory, and the ratio to
`CREATE TABLE AS SELECT * FROM read_csv(...)` over the same CSV files (the issue's
target: within 3x). Each scale runs in a fresh warehouse file.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import run_scales, data_set, peak_rss_mb  # noqa: E402


def run_one(root: Path, people: int) -> None:
    import duckdb

    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.landing.scan import LandingFolder
    from crm_pipeline.warehouse.engine import make_engine

    data = data_set(root, people)
    landing = data / "landing"
    db = root / f"ingest_{people}.duckdb"
    db.unlink(missing_ok=True)
    engine = make_engine(f"duckdb:///{db}")
    started = time.perf_counter()
    outcomes = ingest_folder(engine, LandingFolder(landing), now=datetime.now(timezone.utc))
    seconds = time.perf_counter() - started
    engine.dispose()
    rows = sum(o.rows_loaded or 0 for o in outcomes)

    csvs = sorted(p for p in landing.rglob("*.csv"))
    csv_rows = sum(o.rows_loaded or 0 for o in outcomes if o.path.endswith(".csv"))
    ours_csv = None
    plain_db = root / f"plain_{people}.duckdb"
    plain_db.unlink(missing_ok=True)
    con = duckdb.connect(str(plain_db))
    started = time.perf_counter()
    for i, path in enumerate(csvs):
        con.execute(f"CREATE TABLE t{i} AS SELECT * FROM read_csv('{path}', all_varchar=true, header=true)")
    plain = time.perf_counter() - started
    con.close()
    plain_db.unlink(missing_ok=True)
    # Our time on the CSV files alone, for a like-for-like ratio.
    db.unlink(missing_ok=True)
    engine = make_engine(f"duckdb:///{db}")
    folder = LandingFolder(landing)
    started = time.perf_counter()
    from crm_pipeline.landing.ingest import ingest_paths
    ingest_paths(engine, folder, [str(p.relative_to(landing)) for p in csvs], now=datetime.now(timezone.utc))
    ours_csv = time.perf_counter() - started
    engine.dispose()
    db.unlink(missing_ok=True)
    print(f"people={people:>9,}  files={len(outcomes):>4}  rows={rows:>11,}  seconds={seconds:7.1f}  "
          f"rows/s={rows / seconds:>10,.0f}  peak_mem={peak_rss_mb():7.0f} MB")
    print(f"   csv only: {len(csvs)} files, {csv_rows:,} rows: ours {ours_csv:.1f} s vs plain DuckDB read_csv "
          f"{plain:.1f} s -> {ours_csv / plain:.2f}x")



if __name__ == "__main__":
    run_scales(__file__, run_one, [100_000, 1_000_000])
