"""Shared bits of the benchmark scripts: a generated data set per scale, timing and peak memory."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

END_DATE = date(2025, 6, 30)


def data_folder(root: Path, people: int, seed: int = 7) -> Path:
    """Where the data set of `people` people and `seed` is cached (seed 7 keeps the older benches' folder name)."""
    return root / (f"people_{people}" if seed == 7 else f"people_{people}_seed{seed}")


def is_generated(folder: Path) -> bool:
    return (folder / "truth" / "files.csv").is_file()


def data_set(root: Path, people: int, seed: int = 7) -> Path:
    """Generate (once, cached under `root`) the sample data for `people` people; returns its folder."""
    from crm_pipeline.synth import generate

    out = data_folder(root, people, seed)
    if not is_generated(out):
        generate(out, people=people, brands=3, days=730, seed=seed, end_date=END_DATE)
    return out


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User and system CPU so far of this process (its threads included) or, with RUSAGE_CHILDREN, of the children
    it waited for."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(results: dict, name: str):
    started = time.perf_counter()
    yield
    results[name] = time.perf_counter() - started


def ingested_warehouse(root: Path, people: int, name: str):
    """A fresh DuckDB warehouse with the data set of `people` ingested (not timed)."""
    from datetime import datetime, timezone

    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.landing.scan import LandingFolder
    from crm_pipeline.warehouse.engine import make_engine

    data = data_set(root, people)
    db = root / f"{name}_{people}.duckdb"
    db.unlink(missing_ok=True)
    engine = make_engine(f"duckdb:///{db}")
    ingest_folder(engine, LandingFolder(data / "landing"), now=datetime.now(timezone.utc))
    return data, db, engine


def staged_warehouse(root: Path, people: int, name: str):
    """A fresh DuckDB warehouse with the data set of `people` ingested and published (not timed)."""
    from datetime import datetime, timezone

    from crm_pipeline.quality.publish import publish
    from crm_pipeline.quality.typing_run import type_new_files

    data, db, engine = ingested_warehouse(root, people, name)
    type_new_files(engine, now=datetime.now(timezone.utc))
    publish(engine, hold_share=0.05)
    return data, db, engine


def run_scales(script: str, run_one, default_people: list[int]) -> None:
    """`script --people N M --root DIR`: each scale in a fresh process, so peak memory is per scale."""
    import argparse
    import subprocess
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        run_one(Path(sys.argv[4]), int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, nargs="+", default=default_people)
    parser.add_argument("--root", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    for people in args.people:
        subprocess.run([sys.executable, script, "--one", str(people), "--root", str(args.root)], check=True)


def statement_clock(engine, clock=time.perf_counter) -> dict[str, list[float]]:
    """Seconds of each SQL statement the engine runs (whitespace collapsed; the same text gathers its runs), from
    SQLAlchemy's cursor events: where a stage's time goes, statement by statement. `clock=time.process_time`
    gives CPU seconds (DuckDB's threads included), steadier than wall seconds on a shared machine."""
    import sqlalchemy as sa

    spent: dict[str, list[float]] = {}
    key = f"_bench_started_{clock.__name__}"   # two clocks on one engine keep their own stacks

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault(key, []).append(clock())

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        took = clock() - conn.info[key].pop()
        spent.setdefault(" ".join(statement.split()), []).append(took)

    return spent


def slowest_statements(spent: dict[str, list[float]], top: int, width: int = 110) -> list[str]:
    """The `top` statements by total seconds, one printable line each (seconds, runs, the statement's start)."""
    ranked = sorted(spent.items(), key=lambda kv: -sum(kv[1]))[:top]
    return [f"{sum(took):7.2f} s {len(took):>4}x  {name[:width]}" for name, took in ranked]
