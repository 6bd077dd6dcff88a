"""Identity resolution speed: the deterministic pass and the probabilistic (Splink) pass.

    python bench/identity.py [--people 10000 100000] [--root bench/out]

Runs ingest and quality first (not timed), then resolves twice: deterministic only,
and with the probabilistic pass. Prints source records, nodes, contacts, seconds,
peak memory, and pairwise quality against the generator's truth. For the
probabilistic pass alone at 100k and 1M synthetic records see
bench/identity_probabilistic.py. The first resolution starts from an empty identity state;
the second (other settings, so it resolves again) writes by difference over the first. For
a 1% drop and a run with nothing new on a warehouse holding identity see
bench/identity_incremental.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import run_scales, END_DATE, peak_rss_mb, staged_warehouse  # noqa: E402


def run_one(root: Path, people: int) -> None:
    from crm_pipeline.identity.config import load_identity_config
    from crm_pipeline.identity.evaluate import evaluate_identity
    from crm_pipeline.identity.probabilistic import probabilistic_pairs
    from crm_pipeline.identity.resolve import resolve_identities

    data, db, engine = staged_warehouse(root, people, "identity")
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



if __name__ == "__main__":
    run_scales(__file__, run_one, [10_000, 100_000])
