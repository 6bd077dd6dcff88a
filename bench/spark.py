"""The raw load and typing on Spark `local[2]` against the same stages on DuckDB and against the raw-load floor.

    python bench/spark.py [--people 100000] [--seed 11] [--root bench/out] [--max-rss-gb 12]

On the generated data set (3 brands, 730 days, cached under --root as bench/e2e.py's), each step runs in its own
watched child process (wall seconds, peak RSS of its whole process tree, the JVM included; 1-minute load):
the raw-load floor (DuckDB reading every file into all-VARCHAR tables, nothing else); `ingest_folder` into a
fresh DuckDB file; `ingest_folder_to_spark` into a fresh Spark warehouse on `local[2]` (the session start is
timed apart), then the same Spark load again with nothing new; then typing (the quality stage's first step:
`type_new_files` on DuckDB, `type_new_files_on_spark` on Spark, and again with nothing new). Only these stages
are on Spark so far (#16), so only they are compared. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import data_set  # noqa: E402
from bench._watch import GIB, run_watched  # noqa: E402


def _child(step: str, landing: Path, work: Path) -> dict:
    from crm_pipeline.landing.scan import LandingFolder

    now = datetime.now(timezone.utc)
    if step == "floor":
        from bench._e2e_data import raw_load_floor
        return {"rows": raw_load_floor(landing, work / "floor.duckdb")}
    if step == "duckdb":
        from crm_pipeline.landing.ingest import ingest_folder
        from crm_pipeline.warehouse.engine import make_engine
        from crm_pipeline.quality.typing_run import type_new_files
        engine = make_engine(f"duckdb:///{work / 'warehouse.duckdb'}")
        started = time.perf_counter()
        outcomes = ingest_folder(engine, LandingFolder(landing), now=now)
        load = time.perf_counter() - started
        started = time.perf_counter()
        typed = type_new_files(engine, now=now)
        return {"rows": sum(o.rows_loaded or 0 for o in outcomes), "load_seconds": load,
                "typing_seconds": time.perf_counter() - started, "typed_rows": sum(f.rows for f in typed)}
    from crm_pipeline.spark.ingest import ingest_folder_to_spark
    from crm_pipeline.spark.quality import type_new_files_on_spark
    from crm_pipeline.warehouse.spark import SparkWarehouse, build_session
    started = time.perf_counter()
    spark = build_session(work / "spark_warehouse", master="local[2]")
    session = time.perf_counter() - started
    warehouse = SparkWarehouse(spark, work / "spark_warehouse")
    started = time.perf_counter()
    outcomes = ingest_folder_to_spark(warehouse, LandingFolder(landing), now=now)
    load = time.perf_counter() - started
    started = time.perf_counter()
    again = ingest_folder_to_spark(warehouse, LandingFolder(landing), now=now)
    rerun = time.perf_counter() - started
    assert all(o.already_known for o in again)
    rows = sum(o.rows_loaded or 0 for o in outcomes)
    counted = sum(spark.table(warehouse.qualified(f"raw_{e}")).count() for e in
                  ("customers", "orders", "order_items", "products", "subscribers", "email_events", "web_events"))
    assert counted == rows, (counted, rows)
    started = time.perf_counter()
    typed = type_new_files_on_spark(warehouse, now=now)
    typing = time.perf_counter() - started
    started = time.perf_counter()
    assert type_new_files_on_spark(warehouse, now=now) == []
    retype = time.perf_counter() - started
    spark.stop()
    return {"rows": rows, "session_seconds": session, "load_seconds": load, "rerun_seconds": rerun,
            "typing_seconds": typing, "retype_seconds": retype, "typed_rows": sum(f.rows for f in typed)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--root", type=Path, default=Path("bench/out"))
    parser.add_argument("--max-rss-gb", type=float, default=12.0)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        step, landing, work = args.child
        print("RESULT " + json.dumps(_child(step, Path(landing), Path(work))))
        return
    landing = data_set(args.root, args.people, seed=args.seed) / "landing"
    work = args.root / f"spark_{args.people}"
    results = {}
    for step in ("floor", "duckdb", "spark"):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        log = args.root / f"spark_{args.people}_{step}.log"
        log.unlink(missing_ok=True)
        watched = run_watched([sys.executable, __file__, "--child", step, str(landing), str(work)],
                              max_rss=int(args.max_rss_gb * GIB), log=log)
        if not watched.ok:
            sys.exit(f"{step}: {watched.failure()} (see {log})")
        found = [line for line in log.read_text().splitlines() if line.startswith("RESULT ")]
        results[step] = {**json.loads(found[-1][7:]), "seconds": watched.seconds, "peak_gib": watched.peak_rss / GIB,
                         "load": watched.load}
    shutil.rmtree(work, ignore_errors=True)
    floor = results["floor"]["seconds"]
    spark = results["spark"]
    print(f"\n{args.people:,} people (seed {args.seed}): {results['duckdb']['rows']:,} raw rows; "
          f"floor {floor:.1f} s")
    print("| step | wall seconds | x floor | peak RSS GiB | 1-min load (min-max) |")
    print("|---|---:|---:|---:|---|")
    for name, label in (("floor", "raw-load floor (DuckDB, VARCHAR tables)"),
                        ("duckdb", "load and typing, DuckDB (whole child)"),
                        ("spark", "load and typing, Spark local[2] (whole child)")):
        r = results[name]
        print(f"| {label} | {r['seconds']:.1f} | {r['seconds'] / floor:.1f}x | {r['peak_gib']:.2f} "
              f"| {r['load'][0]:.1f}-{r['load'][1]:.1f} |")
    print(f"| of which Spark session start | {spark['session_seconds']:.1f} | | | |")
    print(f"| of which the load | {spark['load_seconds']:.1f} | {spark['load_seconds'] / floor:.1f}x | | |")
    print(f"| of which a re-run, nothing new | {spark['rerun_seconds']:.1f} | | | |")
    print(f"| of which typing | {spark['typing_seconds']:.1f} | {spark['typing_seconds'] / floor:.1f}x | | |")
    print(f"| of which typing again, nothing new | {spark['retype_seconds']:.1f} | | | |")
    duck = results["duckdb"]
    assert spark["typed_rows"] == duck["typed_rows"], (spark["typed_rows"], duck["typed_rows"])
    print(f"| DuckDB: of which the load | {duck['load_seconds']:.1f} | {duck['load_seconds'] / floor:.1f}x | | |")
    print(f"| DuckDB: of which typing | {duck['typing_seconds']:.1f} | {duck['typing_seconds'] / floor:.1f}x | | |")
    print(f"Spark / DuckDB: load {spark['load_seconds'] / duck['load_seconds']:.2f}x, "
          f"typing {spark['typing_seconds'] / duck['typing_seconds']:.2f}x ({duck['typed_rows']:,} typed rows)")


if __name__ == "__main__":
    main()
