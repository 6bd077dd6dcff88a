"""Ingest cost against what is new: a full ingest, a re-run with no new file, a 1% drop, a full refresh.

    python bench/ingest.py [--people 100000] [--root bench/out]

Each step is what the `ingest_files` asset does: `ingest_folder` (hashing only files whose path, size and
mtime vouch for nothing), then the raw totals and the `raw_rows_match_manifest` check (this run's files
only; every file and a recount of every raw table on a full refresh). The landing folder is a copy of hard
links to the generated data set (seed 11, 3 brands, 730 days, as bench/e2e.py), so the drop file never
touches the cached set; the drop is bench/e2e.py's: 1% of all rows as one new brand_a web-events file.
The raw-load floor is DuckDB reading the same files into all-VARCHAR tables (bench/e2e.py's floor).
CPU seconds (this process, all its threads) are steadier than wall seconds on a shared machine.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import data_set, peak_rss_mb, run_scales  # noqa: E402

SEED = 11
DROP_DAY = date(2025, 6, 30)


def linked_copy(source: Path, target: Path) -> None:
    """`target` holds hard links to every file under `source` (same inode: same bytes, size and mtime)."""
    shutil.rmtree(target, ignore_errors=True)
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        copy = target / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, copy)


def ingest_stage(engine, landing: Path, *, full: bool) -> dict:
    """The asset's work, timed: ingest, totals, the manifest check."""
    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.landing.report import (
        file_counters, first_file_id_of_run, loaded_row_totals, manifest_counts, raw_row_counts,
        raw_rows_not_matching_manifest,
    )
    from crm_pipeline.landing.scan import LandingFolder

    started, cpu = time.perf_counter(), time.process_time()
    outcomes = ingest_folder(engine, LandingFolder(landing), now=datetime.now(timezone.utc), rehash=full)
    ingested, ingested_cpu = time.perf_counter() - started, time.process_time() - cpu
    with engine.connect() as conn:
        totals = raw_row_counts(conn) if full else loaded_row_totals(conn)
        manifest_counts(conn)
        problems = raw_rows_not_matching_manifest(conn, None if full else first_file_id_of_run(conn, outcomes))
    assert not problems, problems
    return {"seconds": time.perf_counter() - started, "ingest_seconds": ingested,
            "cpu_seconds": time.process_time() - cpu, "ingest_cpu_seconds": ingested_cpu, **file_counters(outcomes),
            "rows_added": sum(o.rows_loaded or 0 for o in outcomes if o.status == "loaded" and not o.already_known),
            "raw_rows": sum(totals.values())}


def run_one(root: Path, people: int) -> None:
    from bench._e2e_data import raw_load_floor, total_rows, write_drop
    from crm_pipeline.warehouse.engine import make_engine

    data = data_set(root, people, seed=SEED)
    work = root / f"ingest_{people}"
    landing = work / "landing"
    linked_copy(data / "landing", landing)
    db = work / "warehouse.duckdb"
    db.unlink(missing_ok=True)

    started, cpu = time.perf_counter(), time.process_time()
    floor_rows = raw_load_floor(landing, work / "floor.duckdb")
    floor, floor_cpu = time.perf_counter() - started, time.process_time() - cpu

    engine = make_engine(f"duckdb:///{db}")
    steps = {"full ingest (empty warehouse)": ingest_stage(engine, landing, full=False),
             "re-run, no new file": ingest_stage(engine, landing, full=False)}
    drop_rows = total_rows(data) // 100
    write_drop(landing, drop_rows, DROP_DAY)
    steps["1% drop (one new file)"] = ingest_stage(engine, landing, full=False)
    steps["re-run, no new file, --full-refresh"] = ingest_stage(engine, landing, full=True)
    engine.dispose()

    print(f"\n{people:,} people, seed {SEED}: {floor_rows:,} rows; the drop {drop_rows:,} rows; "
          f"raw-load floor {floor:.1f} s ({floor_cpu:.1f} s CPU); peak RSS {peak_rss_mb() / 1024:.2f} GiB; "
          f"load {os.getloadavg()[0]:.1f}")
    print("| step | seconds | CPU seconds | of which ingest_folder (CPU) | x floor | files seen | hashed "
          "| skipped as known | loaded | rows added |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in steps.items():
        print(f"| {name} | {s['seconds']:.2f} | {s['cpu_seconds']:.2f} | {s['ingest_seconds']:.2f} "
              f"({s['ingest_cpu_seconds']:.2f}) | {s['seconds'] / floor:.2f}x "
              f"| {s['files_seen']} | {s['files_hashed']} | {s['files_skipped_as_known']} | {s['files_loaded']} "
              f"| {s['rows_added']:,} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_scales(__file__, run_one, [100_000])
