"""The fixed cost of the command line: `crm-pipeline --help`, loading the definitions, and a run with nothing new.

    python bench/startup.py [--people 300] [--root bench/out] [--repeat 3]

Every `crm-pipeline run` pays for process start, imports, the run's planning and events, and the summary, however
little changed (issue #13: 16-18 s of each run at 100k people under load). Each figure here is a child process,
timed for wall and CPU seconds (the median of --repeat), next to a floor measured in the same bench run:
`python -c "import duckdb"`. The no-change run is a second `crm-pipeline run` for the same day on a small
generated warehouse (--people, cached under --root), its own DAGSTER_HOME; its seconds inside the steps come from
the Dagster run's event log, the rest is the fixed cost. On a shared machine compare the ratios and CPU seconds,
not wall seconds. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import END_DATE, cpu_seconds, data_set  # noqa: E402
from bench._watch import GIB, load_1min, run_watched  # noqa: E402
from bench.e2e import _fresh_run_dir, _run_pipeline  # noqa: E402


def _timed(run) -> tuple[float, float, object]:
    """(wall, cpu, result) of `run()`, which runs one child process and waits for it."""
    cpu, wall = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = run()
    return time.perf_counter() - wall, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu, result


def _command(args, name: str, cmd: list[str], log: Path) -> dict:
    walls, cpus = [], []
    for _ in range(args.repeat):
        wall, cpu, watched = _timed(lambda: run_watched(cmd, max_rss=int(args.max_rss_gb * GIB), log=log))
        if watched.failure():
            raise SystemExit(f"{name}: {watched.failure()} (see {log})")
        walls.append(wall)
        cpus.append(cpu)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}


def measure(args) -> dict:
    args.root.mkdir(parents=True, exist_ok=True)
    log = args.root / f"startup_{args.people}.log"
    log.unlink(missing_ok=True)
    python, cli = sys.executable, str(Path(sys.executable).with_name("crm-pipeline"))
    rows = {
        "floor: import duckdb": _command(args, "floor", [python, "-c", "import duckdb"], log),
        "crm-pipeline --help": _command(args, "help", [cli, "--help"], log),
        "import crm_pipeline.definitions": _command(args, "definitions",
                                                    [python, "-c", "import crm_pipeline.definitions"], log),
    }
    run_dir = args.root / f"startup_{args.people}"
    _fresh_run_dir(data_set(args.root, args.people), run_dir)
    first, _, _ = _run_pipeline(args, run_dir, END_DATE, log)   # builds the warehouse: not timed
    if first.failure():
        raise SystemExit(f"the first run: {first.failure()} (see {log})")
    runs = []
    for _ in range(args.repeat):
        wall, cpu, (watched, stages, _) = _timed(lambda: _run_pipeline(args, run_dir, END_DATE, log))
        if watched.failure():
            raise SystemExit(f"the no-change run: {watched.failure()} (see {log})")
        runs.append({"wall": wall, "cpu": cpu, "steps": sum(v[0] for v in stages.values())})
    median = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "steps")}
    rows["no-change run"] = {"wall": median["wall"], "cpu": median["cpu"]}
    rows["  inside its steps"] = {"wall": median["steps"]}
    rows["  outside its steps"] = {"wall": statistics.median(r["wall"] - r["steps"] for r in runs)}
    return rows


def table(rows: dict) -> str:
    floor = rows["floor: import duckdb"]
    lines = ["| command | wall s | x floor | CPU s | x floor |", "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        cpu = r.get("cpu")
        lines.append(f"| {name.replace('  ', '&nbsp;&nbsp;')} | {r['wall']:.2f} | {r['wall'] / floor['wall']:.1f}x | "
                     + (f"{cpu:.2f} | {cpu / floor['cpu']:.1f}x |" if cpu is not None else " | |"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=300, help="people in the small warehouse (default 300)")
    parser.add_argument("--root", type=Path, default=Path("bench/out"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the median is shown")
    parser.add_argument("--max-rss-gb", type=float, default=8.0)
    args = parser.parse_args(argv)
    args.root = args.root.resolve()
    started, load0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load_1min()
    rows = measure(args)
    print(f"\nstart-up, {args.people:,} people, median of {args.repeat}; started {started}; 1-minute load "
          f"{load0:.1f} at the start, {load_1min():.1f} at the end, on {os.cpu_count()} CPUs")
    print(table(rows))


if __name__ == "__main__":
    main()
