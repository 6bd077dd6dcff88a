"""Seconds per named step of a stage, for asset metadata and the benches; never business time."""

from __future__ import annotations

import time


class StepClock:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.steps: dict[str, float] = {}

    def run(self, name: str, fn, *args):
        """`fn(*args)`, its seconds recorded under `name`."""
        t = time.perf_counter()
        result = fn(*args)
        self.steps[name] = round(time.perf_counter() - t, 3)
        return result

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)
