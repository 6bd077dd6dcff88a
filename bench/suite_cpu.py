"""Where the test suite's CPU goes: seconds of CPU per test module, not the wall seconds pytest reports.

    python bench/suite_cpu.py [--workers 3] [--top 30] [-- PYTEST_ARGS ...]

`make test` runs three workers on two cores, so the cores are saturated and a test's wall time mostly says what
ran beside it. This runs the suite as `make test` does (or the paths after `--`) with a small plugin
(`bench/_suite_cpu_plugin.py`) that records, per test, the CPU of its worker process and of the child processes
it waited for, and prints the modules that cost the most. The machine's busy CPU (from /proc/stat) is printed
beside it: the difference is CPU no test process was charged for (Spark's JVM, the PostgreSQL server, processes
`dagster dev` started, the workers' start-up). Never part of the test suite.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BUSY_FIELDS = (1, 2, 3, 6, 7, 8)  # user, nice, system, irq, softirq, steal


def machine_busy_seconds() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return sum(int(fields[i]) for i in _BUSY_FIELDS) / os.sysconf("SC_CLK_TCK")


def run_suite(workers: int, pytest_args: list[str], out_dir: Path) -> tuple[int, float, float]:
    """Run pytest with the plugin; (exit code, wall seconds, machine busy CPU seconds)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SUITE_CPU_OUT": str(out_dir)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "bench._suite_cpu_plugin", "-p", "no:cacheprovider",
               *(["-n", str(workers), "--dist", "loadscope", "--no-loadscope-reorder"] if workers > 1 else []),
               *pytest_args]
    busy, started = machine_busy_seconds(), time.monotonic()
    code = subprocess.run(command, cwd=ROOT, env=env).returncode
    return code, time.monotonic() - started, machine_busy_seconds() - busy


def per_module(out_dir: Path) -> dict[str, list[float]]:
    """module -> [own CPU, waited children's CPU, summed test wall, tests]"""
    modules: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for path in out_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            test = json.loads(line)
            row = modules[test["id"].split("::", 1)[0]]
            row[0] += test["self"]
            row[1] += test["children"]
            row[2] += test["wall"]
            row[3] += 1
    return modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3, help="pytest-xdist workers (make test: 3)")
    parser.add_argument("--top", type=int, default=30, help="modules listed")
    parser.add_argument("pytest_args", nargs="*", help="after --: what pytest runs (default: the whole suite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="suite_cpu_") as folder:
        code, wall, busy = run_suite(args.workers, args.pytest_args, Path(folder))
        modules = per_module(Path(folder))
    own = sum(m[0] for m in modules.values())
    children = sum(m[1] for m in modules.values())
    cores = os.cpu_count() or 1
    print(f"\npytest exit {code}; {sum(int(m[3]) for m in modules.values())} tests; wall {wall:.0f} s on {cores} cores")
    print(f"machine busy {busy:.0f} CPU s ({busy / (wall * cores):.0%} of the cores); charged to test processes "
          f"{own:.0f} s, to the children they waited for {children:.0f} s, to nobody {busy - own - children:.0f} s")
    print(f"\n| module | CPU s | of which children | wall s (summed tests) | tests |\n|---|---:|---:|---:|---:|")
    for name, (mine, kids, spent, tests) in sorted(modules.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:args.top]:
        print(f"| {name} | {mine + kids:.1f} | {kids:.1f} | {spent:.1f} | {int(tests)} |")
    return code


if __name__ == "__main__":
    sys.exit(main())
