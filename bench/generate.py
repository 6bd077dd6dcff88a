"""Benchmark `crm_pipeline.synth.generate`: seconds, rows, rows/s and peak memory per scale.

Each scale runs in a fresh child process (so peak RSS is that scale's own) writing into a
temporary folder that is removed afterwards.

    python bench/generate.py [--people 100000 1000000] [--brands 3] [--days 730] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

END_DATE = dt.date(2025, 6, 30)   # fixed so figures compare across runs


def run_one(people: int, brands: int, days: int, seed: int) -> dict:
    from crm_pipeline.synth import generate

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        summary = generate(Path(tmp), people=people, brands=brands, days=days, seed=seed, end_date=END_DATE)
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--brands", type=int, default=3)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.people[0], args.brands, args.days, args.seed)))
        return
    root = Path(__file__).resolve().parent.parent
    print(f"{'people':>10} {'seconds':>8} {'rows':>12} {'rows/s':>10} {'MB written':>10} {'peak RSS MB':>11} "
          f"{'bad rows':>9}")
    for people in args.people:
        cmd = [sys.executable, __file__, "--child", "--people", str(people), "--brands", str(args.brands),
               "--days", str(args.days), "--seed", str(args.seed)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root,
                             env={**os.environ, "PYTHONPATH": str(root)})
        s = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{people:>10,} {s['seconds']:>8.1f} {s['rows_total']:>12,} {s['rows_total'] / s['seconds']:>10,.0f} "
              f"{s['bytes'] / 1e6:>10,.0f} {s['peak_rss_mb']:>11,.0f} {s['bad_rows']:>9,}", flush=True)
        print("           rows per entity: " + ", ".join(f"{k} {v:,}" for k, v in s["rows"].items()), flush=True)


if __name__ == "__main__":
    main()
