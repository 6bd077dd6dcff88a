"""Seconds per named step of a stage, for asset metadata and the benches; never business time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StepClock:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.steps: dict[str, float] = {}

    def run(self, name: str, fn, *args):
        """`fn(*args)`, its seconds recorded under `name`."""
        with self.step(name):
            return fn(*args)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """The block's seconds added under `name` (a step timed in several blocks sums them)."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = round(self.steps.get(name, 0.0) + time.perf_counter() - t, 3)

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)
