"""Identity resolution speed: the deterministic pass and the probabilistic (Splink) pass.

    python bench/identity.py [--people 10000 100000] [--root bench/out]

Runs ingest and quality first (not timed), then resolves twice: deterministic only,
and with the probabilistic pass. Prints source records, nodes, contacts, seconds,
peak memory, and pairwise quality against the generator's truth. For the
probabilistic pass alone at 100k and 1M synthetic records see
bench/identity_probabilistic.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import END_DATE, data_set, peak_rss_mb  # noqa: E402


def run_one(root: Path, people: int) -> None:
    from crm_pipeline.identity.config import load_identity_config
    from crm_pipeline.identity.evaluate import evaluate_identity
    from crm_pipeline.identity.probabilistic import probabilistic_pairs
    from crm_pipeline.identity.resolve import resolve_identities
    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.landing.scan import LandingFolder
    from crm_pipeline.quality.publish import publish
    from crm_pipeline.quality.typing_run import type_new_files
    from crm_pipeline.warehouse.engine import make_engine

    data = data_set(root, people)
    db = root / f"identity_{people}.duckdb"
    db.unlink(missing_ok=True)
    engine = make_engine(f"duckdb:///{db}")
    now = datetime.now(timezone.utc)
    ingest_folder(engine, LandingFolder(data / "landing"), now=now)
    type_new_files(engine, now=now)
    publish(engine, hold_share=0.05)
    config = load_identity_config()
    for label, finder in (("deterministic", None), ("with probabilistic", probabilistic_pairs)):
        started = time.perf_counter()
        report = resolve_identities(engine, as_of=END_DATE, config=config, find_pairs=finder)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            scores = evaluate_identity(conn, data / "truth")
        profiles, everything = scores.iloc[0], scores.iloc[1]
        print(f"people={people:>9,} {label:<19} records={report.records:>10,} nodes={report.nodes:>9,} "
              f"contacts={report.contacts:>9,} seconds={seconds:6.1f} (probabilistic part "
              f"{report.seconds['probabilistic'] - report.seconds['deterministic']:.1f}) "
              f"pairs={report.probabilistic_pairs:,} peak_mem={peak_rss_mb():6.0f} MB")
        print(f"   profiles: P={profiles['precision']} R={profiles['recall']} F1={profiles['f1']}   "
              f"all records: P={everything['precision']} R={everything['recall']} F1={everything['f1']}")
    engine.dispose()
    db.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--root", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    for people in args.people:
        subprocess.run([sys.executable, __file__, "--one", str(people), "--root", str(args.root)], check=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        run_one(Path(sys.argv[4]), int(sys.argv[2]))
    else:
        main()
