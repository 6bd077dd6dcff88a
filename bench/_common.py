"""Shared bits of the benchmark scripts: a generated data set per scale, timing and peak memory."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

END_DATE = date(2025, 6, 30)


def data_set(root: Path, people: int, seed: int = 7) -> Path:
    """Generate (once, cached under `root`) the sample data for `people` people; returns its folder."""
    from crm_pipeline.synth import generate

    out = root / f"people_{people}"
    if not (out / "truth" / "files.csv").is_file():
        generate(out, people=people, brands=3, days=730, seed=seed, end_date=END_DATE)
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(results: dict, name: str):
    started = time.perf_counter()
    yield
    results[name] = time.perf_counter() - started
