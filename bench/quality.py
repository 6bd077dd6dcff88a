"""Quality stage speed: standardization, the rest of typing, publishing in SQL, and GX validation.

    python bench/quality.py [--people 100000 1000000] [--root bench/out]

Runs the same steps as `run_quality_stage` (data docs included) on a freshly ingested
warehouse and prints, per scale, each part's wall seconds, CPU seconds and rows/s:

- typing: reading raw rows, `standardize_rows` on the raw text (typing, parsing, standardizing,
  flags and quarantine rules) and writing typed rows, two batches in flight (one standardizing in
  Python while the other is read or written). Standardization's own CPU seconds (its threads'
  clock, summed over batches) give its rows/s per core.
- publish: rules across rows, dedup, holds and accounting, in SQL.
- GX validation: reading each file's staged rows, its suite, storing `dq_results`; then Data Docs.

The raw-load floor (DuckDB reading the same landing files into all-VARCHAR tables, bench/e2e.py's
floor) is measured in the same run; the stage and each part are printed as a ratio against it.

rows/s per core = rows / CPU seconds of the part (CPU seconds = wall seconds x cores
used; the CPU clock is the fair one on a shared machine). GX's share is of the stage's wall time.
Targets: standardization >= 500,000 rows/s per core; GX <= 50% of the stage.

Then a 1% drop (a new web-events file, as bench/e2e.py writes it, into a copy of the landing)
goes through the same parts with the incremental publish, next to a full-refresh publish of the
same state: the drop's stage seconds against the full stage's.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import END_DATE, data_set, peak_rss_mb, run_scales  # noqa: E402

SEED = 11


@contextmanager
def clocked(wall: dict, cpu: dict, name: str):
    started, cpu_started = time.perf_counter(), time.process_time()
    yield
    wall[name] = time.perf_counter() - started
    cpu[name] = time.process_time() - cpu_started


PARTS = ["typing", "publish", "GX validation", "GX data docs"]


def stage_parts(engine, full_refresh: bool) -> tuple[dict, dict, int, list, object]:
    """The quality stage's parts on the files not typed yet: wall and CPU seconds, rows typed, files, publish report."""
    from crm_pipeline.quality import expectations
    from crm_pipeline.quality.publish import publish
    from crm_pipeline.quality.stage import store_results, validate_files
    from crm_pipeline.quality.typing_run import TypingTimes, type_new_files

    now = datetime.now(timezone.utc)
    times = TypingTimes()
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with clocked(wall, cpu, "typing"):
        typed = type_new_files(engine, now=now, times=times)
    cpu["standardize"] = times.cpu["standardize"]
    with clocked(wall, cpu, "publish"):
        report = publish(engine, hold_share=0.05, full_refresh=full_refresh)
    with clocked(wall, cpu, "GX validation"):
        runs = validate_files(engine, typed)
        store_results(engine, typed, runs)
    with tempfile.TemporaryDirectory() as docs, clocked(wall, cpu, "GX data docs"):
        expectations.build_data_docs(runs, Path(docs))
    return wall, cpu, times.rows, typed, report


def run_one(root: Path, people: int) -> None:
    import shutil

    from bench._e2e_data import raw_load_floor, write_drop
    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.landing.scan import LandingFolder
    from crm_pipeline.quality.publish import publish
    from crm_pipeline.warehouse.engine import make_engine

    # A copy of the cached data set's landing (seed 11, as bench/e2e.py), so the drop never touches the cache.
    landing = root / f"quality_{people}_landing"
    shutil.rmtree(landing, ignore_errors=True)
    shutil.copytree(data_set(root, people, seed=SEED) / "landing", landing)
    started = time.perf_counter()
    raw_load_floor(landing, root / f"quality_{people}_floor.duckdb")
    floor = time.perf_counter() - started
    db = root / f"quality_{people}.duckdb"
    db.unlink(missing_ok=True)
    engine = make_engine(f"duckdb:///{db}")
    ingest_folder(engine, LandingFolder(landing), now=datetime.now(timezone.utc))
    # As the product's first run: not tagged full refresh (every entity is new, so publish re-resolves all of it).
    wall, cpu, rows, typed, _ = stage_parts(engine, full_refresh=False)
    stage = sum(wall[p] for p in PARTS)
    gx = wall["GX validation"] + wall["GX data docs"]
    print(f"people={people:>9,}  rows={rows:>11,}  files={len(typed)}  stage={stage:7.1f} s = "
          f"{stage / floor:.2f}x the raw-load floor ({floor:.1f} s)  peak_mem={peak_rss_mb():7.0f} MB  "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"   {'part':<15}{'wall s':>8}{'x floor':>8}{'cpu s':>8}{'rows/s':>12}{'rows/s/core':>13}")
    for part in PARTS:
        print(f"   {part:<15}{wall[part]:>8.1f}{wall[part] / floor:>8.2f}{cpu[part]:>8.1f}{rows / wall[part]:>12,.0f}"
              f"{rows / cpu[part]:>13,.0f}")
    print(f"   standardization: {rows / cpu['standardize']:,.0f} rows/s per core (target >= 500,000; "
          f"{cpu['standardize']:.1f} CPU s of typing's {cpu['typing']:.1f}); typing used "
          f"{cpu['typing'] / wall['typing']:.2f} cores")
    print(f"   GX share of the stage: {gx / stage:.0%} (validation {wall['GX validation'] / stage:.0%}, "
          f"data docs {wall['GX data docs'] / stage:.0%}; target <= 50%)")

    # A 1% drop: the copied landing gets a new web-events file; ingest (not timed), then the stage again.
    try:
        drop = write_drop(landing, round(rows * 0.01), END_DATE)
        ingest_folder(engine, LandingFolder(landing), now=datetime.now(timezone.utc))
        d_wall, d_cpu, d_rows, d_typed, report = stage_parts(engine, full_refresh=False)
        with clocked(d_wall, d_cpu, "full-refresh publish"):
            publish(engine, hold_share=0.05, full_refresh=True)
    finally:
        shutil.rmtree(landing, ignore_errors=True)
    engine.dispose()
    db.unlink(missing_ok=True)
    d_stage = sum(d_wall[p] for p in PARTS)
    print(f"   1% drop: {drop.name}, {d_rows:,} rows in {len(d_typed)} file(s); stage {d_stage:.1f} s = "
          f"{d_stage / stage:.1%} of the full stage ({stage:.1f} s)")
    for part in PARTS:
        print(f"   {part:<15}{d_wall[part]:>8.1f} s   (full: {wall[part]:.1f} s)")
    web = report.entities["web_events"]
    print(f"   publish {report.mode}: {d_wall['publish']:.2f} s against a full-refresh publish of the same "
          f"state {d_wall['full-refresh publish']:.2f} s; web_events keys re-resolved {web.keys:,}, "
          f"staged rows rewritten {web.staged_rows_written:,}; other entities: "
          f"{sum(c.rows for e, c in report.entities.items() if e != 'web_events'):,} rows re-resolved")


if __name__ == "__main__":
    run_scales(__file__, run_one, [100_000, 1_000_000])
