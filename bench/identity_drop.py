"""Identity's 1% drop, repeated on one prepared warehouse, with its slowest SQL statements.

    python bench/identity_drop.py [--people 100000] [--root bench/out] [--repeat 2] [--full] [--first] [--top 12]

Prepares once (cached under the root; not timed) the warehouse bench/identity_incremental.py builds: the
generated data set (seed 11) staged and resolved with the Splink pass, then bench/e2e.py's 1% drop of web
events staged but not resolved. Each repeat resolves the drop on a fresh copy of it, so the figures compare
code changes on the same input; `--full` times a `--full-refresh` on a copy as well, and `--first` a first
resolution (a copy without the identity tables, as the end-to-end full run resolves: everything written anew).
Prints each run's steps (read, deterministic, probabilistic, ids and write) in wall and CPU seconds (CPU:
time.process_time, DuckDB's threads included, steadier than wall on a shared machine) and the statements that
took longest, with the load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import END_DATE, data_set, slowest_statements, statement_clock  # noqa: E402
from bench.identity_incremental import SEED, _child, _steps, timed_resolution  # noqa: E402


def _prepare(root: Path, people: int) -> Path:
    """The warehouse after a full resolution and the staging of the drop (built once)."""
    work = root / f"identity_drop_{people}"
    ready, landing, db = work / "ready.duckdb", work / "landing", work / "warehouse.duckdb"
    if ready.exists():
        return ready
    from bench._e2e_data import total_rows, write_drop

    data = data_set(root, people, seed=SEED)
    if work.exists():
        shutil.rmtree(work)
    for source in (data / "landing").rglob("*"):
        if source.is_file():
            target = landing / source.relative_to(data / "landing")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
    _child("stage", str(landing), str(db))
    _child("full", str(landing), str(db))
    write_drop(landing, total_rows(data) // 100, END_DATE)
    _child("stage", str(landing), str(db))
    shutil.copyfile(db, ready)
    return ready


def _timed_resolve(db: Path, kind: str, top: int) -> None:
    import sqlalchemy as sa

    from crm_pipeline.warehouse.engine import make_engine
    from crm_pipeline.warehouse.identity_schema import IDENTITY_TABLES

    engine = make_engine(f"duckdb:///{db}")
    if kind == "first":  # the identity tables gone: a first resolution over the same staging
        with engine.begin() as conn:
            for table in IDENTITY_TABLES:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))
        with engine.connect() as conn:
            conn.execute(sa.text("CHECKPOINT"))
    spent, cpu_spent = statement_clock(engine), statement_clock(engine, time.process_time)
    cpu, last = {}, [time.process_time()]

    def on_step(name: str, _seconds: float) -> None:
        now = time.process_time()
        cpu[name], last[0] = round(now - last[0], 2), now

    started = time.process_time()
    report, seconds = timed_resolution(engine, kind != "drop", on_step=on_step)
    total_cpu = time.process_time() - started
    c = report.changes
    print(f"  {report.mode}: {seconds:.2f} s, {total_cpu:.2f} s CPU, steps {_steps(report.seconds)}, CPU {cpu}, "
          f"rounds {report.rounds}, nodes recomputed {report.nodes_recomputed:,} of {report.nodes:,}, "
          f"records +{c.records_added:,} -{c.records_removed:,}, contacts touched {c.contacts_touched:,}; "
          f"SQL {sum(map(sum, spent.values())):.2f} s, {sum(map(sum, cpu_spent.values())):.2f} s CPU, slowest (CPU):")
    for line in slowest_statements(cpu_spent, top, width=150):
        print(f"    {line}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _timed_resolve(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=Path("bench/out"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also time a full refresh of the same warehouse")
    parser.add_argument("--first", action="store_true",
                        help="also time a first resolution (the identity tables dropped from a copy)")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    ready = _prepare(args.root, args.people)
    runs = ([("drop", i) for i in range(args.repeat)] + ([("full", 0)] if args.full else [])
            + ([("first", 0)] if args.first else []))
    for kind, _ in runs:
        copy = ready.with_name(f"run_{kind}.duckdb")
        shutil.copyfile(ready, copy)
        print(f"{kind} (load {os.getloadavg()[0]:.1f}):", flush=True)
        subprocess.run([sys.executable, __file__, "--child", str(copy), kind, str(args.top)], check=True)
        copy.unlink()


if __name__ == "__main__":
    main()
