"""Work items run a few at a time on threads, their results taken in order: Python's share of one item overlaps
the engine's share of another.

The warehouse (DuckDB's scans and inserts, PostgreSQL's server) and Arrow's kernels release the GIL, so while one
batch is being standardized in Python the next can be read and the last written, on the machine's other core.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def overlapped(work: Callable[[T], R], items: Iterable[T], *, in_flight: int = 2) -> Iterator[R]:
    """`work(item)` for each item, at most `in_flight` at once, results yielded in the items' order.

    Items are taken from `items` only as room frees up, so a lazy iterable stays lazy and memory stays bounded by
    `in_flight` items. When one fails, the items not started are never started, the ones running are waited
    for, and the failure is raised where its result would have been yielded. `in_flight=1` runs each item on
    the caller's thread, one after another."""
    if in_flight <= 1:
        yield from map(work, items)
        return
    pending: deque[Future[R]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        try:
            for item in source:
                pending.append(pool.submit(work, item))
                if len(pending) >= in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
