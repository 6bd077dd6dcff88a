"""Identity's 1% drop, repeated on one prepared warehouse, with its slowest SQL statements.

    python bench/identity_drop.py [--people 100000] [--root bench/out] [--repeat 2] [--full] [--top 12]

Prepares once (cached under the root; not timed) the warehouse bench/identity_incremental.py builds: the
generated data set (seed 11) staged and resolved with the Splink pass, then bench/e2e.py's 1% drop of web
events staged but not resolved. Each repeat resolves the drop on a fresh copy of it, so the figures compare
code changes on the same input; `--full` times a `--full-refresh` on a copy as well. Prints each run's steps
(read, deterministic, probabilistic, ids and write) and the statements that took longest, with the load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def _timed_resolve(db: Path, full_refresh: bool, top: int) -> None:
    from crm_pipeline.warehouse.engine import make_engine

    engine = make_engine(f"duckdb:///{db}")
    spent = statement_clock(engine)
    report, seconds = timed_resolution(engine, full_refresh)
    c = report.changes
    print(f"  {report.mode}: {seconds:.2f} s, steps {_steps(report.seconds)}, nodes recomputed "
          f"{report.nodes_recomputed:,} of {report.nodes:,}, records +{c.records_added:,} -{c.records_removed:,}, "
          f"contacts touched {c.contacts_touched:,}; SQL {sum(map(sum, spent.values())):.2f} s, slowest:")
    for line in slowest_statements(spent, top, width=150):
        print(f"    {line}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _timed_resolve(Path(sys.argv[2]), sys.argv[3] == "full", int(sys.argv[4]))
        return
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=Path("bench/out"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also time a full refresh of the same warehouse")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    ready = _prepare(args.root, args.people)
    runs = [("drop", i) for i in range(args.repeat)] + ([("full", 0)] if args.full else [])
    for kind, _ in runs:
        copy = ready.with_name(f"run_{kind}.duckdb")
        shutil.copyfile(ready, copy)
        print(f"{kind} (load {os.getloadavg()[0]:.1f}):", flush=True)
        subprocess.run([sys.executable, __file__, "--child", str(copy), kind, str(args.top)], check=True)
        copy.unlink()


if __name__ == "__main__":
    main()
