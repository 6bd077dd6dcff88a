"""Typing batches and validation reads run two at a time: results must come in order, memory stays bounded to
the items in flight, and a failure stops the work after it."""

from __future__ import annotations

import threading
import time

import pytest

from crm_pipeline.overlapped import overlapped


class Recorder:
    def __init__(self, fail_on: int | None = None):
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started: list[int] = []
        self.fail_on = fail_on

    def __call__(self, item: int) -> int:
        with self.lock:
            self.started.append(item)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.02 if item % 2 else 0.05)   # later items finish first: order must not follow finishing
            if item == self.fail_on:
                raise ValueError(f"item {item} failed")
            return item * 10
        finally:
            with self.lock:
                self.running -= 1


def test_results_come_in_the_items_order_with_at_most_two_running():
    work = Recorder()
    assert list(overlapped(work, range(8), in_flight=2)) == [i * 10 for i in range(8)]
    assert work.most == 2


def test_items_are_taken_only_as_room_frees_up():
    taken: list[int] = []

    def items():
        for i in range(100):
            taken.append(i)
            yield i

    results = overlapped(Recorder(), items(), in_flight=2)
    assert next(results) == 0
    assert taken == [0, 1]   # the first result is handed over with only the second one under way
    results.close()


def test_a_failure_is_raised_in_its_place_and_later_items_never_start():
    work = Recorder(fail_on=2)
    got = []
    with pytest.raises(ValueError, match="item 2 failed"):
        for result in overlapped(work, range(20), in_flight=2):
            got.append(result)
    assert got == [0, 10]
    assert max(work.started) <= 3   # item 3 may have been running beside item 2; nothing after it started
    assert work.running == 0        # the one running beside it was waited for


def test_one_in_flight_runs_on_the_callers_thread():
    threads = set()
    list(overlapped(lambda i: threads.add(threading.get_ident()), range(3), in_flight=1))
    assert threads == {threading.get_ident()}
