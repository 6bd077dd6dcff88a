"""Quality stage speed: standardization (typing), publishing in SQL, and GX validation.

    python bench/quality.py [--people 100000 1000000] [--root bench/out]

Prints per scale: rows, seconds and rows/s of each part, rows/s per core of
standardization, GX's share of the stage (target: at most 50%), and peak memory.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import run_scales, ingested_warehouse, peak_rss_mb, timed  # noqa: E402


def run_one(root: Path, people: int) -> None:
    from crm_pipeline.quality.publish import publish
    from crm_pipeline.quality.stage import validate_file
    from crm_pipeline.quality.typing_run import type_new_files

    _, db, engine = ingested_warehouse(root, people, "quality")
    now = datetime.now(timezone.utc)
    cpu_before = os.times()
    seconds: dict[str, float] = {}
    with timed(seconds, "standardize"):
        typed = type_new_files(engine, now=now)
    cpu_standardize = sum(os.times()[:2]) - sum(cpu_before[:2])
    with timed(seconds, "publish"):
        publish(engine, hold_share=0.05)
    with timed(seconds, "validate"):
        for file in typed:
            validate_file(engine, file.file_id, file.entity)
    engine.dispose()
    db.unlink(missing_ok=True)
    rows = sum(t.rows for t in typed)
    stage = sum(seconds.values())
    print(f"people={people:>9,}  rows={rows:>11,}  stage={stage:7.1f} s  peak_mem={peak_rss_mb():7.0f} MB")
    for part, s in seconds.items():
        print(f"   {part:<12} {s:7.1f} s  {rows / s:>11,.0f} rows/s")
    print(f"   standardization per core: {rows / cpu_standardize:,.0f} rows/s (CPU {cpu_standardize:.1f} s); "
          f"GX share of the stage: {seconds['validate'] / stage:.0%}")



if __name__ == "__main__":
    run_scales(__file__, run_one, [100_000, 1_000_000])
