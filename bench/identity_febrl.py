"""Identity quality on public data (FEBRL 1, 2, 4) and on our generator, each through the whole pipeline.

    python bench/identity_febrl.py [--out bench/out/febrl]

Each data set is mapped onto customer files (`crm_pipeline.identity.febrl`), materialized
headless into a fresh warehouse and Dagster instance, and scored over people records
(customers and subscribers): pairwise precision, recall and F1, blocking recall (the share
of true pairs that reach scoring) and the seconds of the whole run. The generator runs at
3,000 people, 3 brands, seed 7, end date 2026-06-30. The same figures are asserted by
crm_pipeline_tests/identity/test_benchmarks.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FEBRL = Path(__file__).resolve().parents[1] / "crm_pipeline_tests" / "identity" / "fixtures" / "febrl"
SETS = {"FEBRL 1": ["dataset1.csv"], "FEBRL 2": ["dataset2.csv"], "FEBRL 4 (two brands)": ["dataset4a.csv",
                                                                                             "dataset4b.csv"]}


def generator_scores(work: Path) -> dict:
    import dagster as dg

    from crm_pipeline.defs.headless import materialize_all
    from crm_pipeline.identity.evaluate import PEOPLE, blocking_recall, evaluate_identity
    from crm_pipeline.settings import load_settings
    from crm_pipeline.synth.generate import generate
    from crm_pipeline.warehouse.engine import make_engine

    end = date(2026, 6, 30)
    generate(work / "data", people=3000, brands=3, days=730, seed=7, end_date=end)
    settings = load_settings(None, env={}, landing_dir=str(work / "data" / "landing"), home_dir=str(work / "home"),
                             warehouse_url=f"duckdb:///{work / 'warehouse.duckdb'}")
    started = time.perf_counter()
    with dg.instance_for_test(temp_dir=str(work)) as instance:
        assert materialize_all(settings, end, instance=instance).success
    seconds = time.perf_counter() - started
    engine = make_engine(settings.warehouse_url)
    with engine.connect() as conn:
        scores = evaluate_identity(conn, work / "data" / "truth").set_index("scope").loc[PEOPLE]
        blocked = blocking_recall(conn, work / "data" / "truth")
    engine.dispose()
    return {"records": int(scores["records"]), "people": int(scores["people"]), "contacts": int(scores["contacts"]),
            "precision": float(scores["precision"]), "recall": float(scores["recall"]), "f1": float(scores["f1"]),
            "blocking_recall": blocked, "seconds": round(seconds, 1)}


def main() -> None:
    from crm_pipeline.cli_identity import evaluate_febrl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/out/febrl")
    out = Path(parser.parse_args().out)
    shutil.rmtree(out, ignore_errors=True)
    rows = {name: evaluate_febrl([FEBRL / f for f in files], out / name.split(" (")[0].replace(" ", "_"))
            for name, files in SETS.items()}
    rows["generator, 3,000 people"] = generator_scores(out / "generator")
    print(f"{'data set':<26} {'records':>8} {'people':>7} {'contacts':>8} {'P':>7} {'R':>7} {'F1':>7} "
          f"{'blocking R':>10} {'seconds':>8}")
    for name, s in rows.items():
        print(f"{name:<26} {s['records']:>8,} {s['people']:>7,} {s['contacts']:>8,} {s['precision']:>7.4f} "
              f"{s['recall']:>7.4f} {s['f1']:>7.4f} {s['blocking_recall']:>10.4f} {s['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
