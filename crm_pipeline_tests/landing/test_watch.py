"""The sensor's decision per tick: stable files are requested once, changing files wait."""

from crm_pipeline.landing.scan import LandedFile
from crm_pipeline.landing.watch import WatchState, mark_requested, plan_tick

NOW = 1_000_000 * 10**9


def tick(state, files, **kw):
    ready, state = plan_tick(state, files, page_start=None, next_after=None, now_ns=NOW, settle_seconds=5, **kw)
    return [f.path for f in ready], mark_requested(state, ready)


def test_an_old_file_is_ready_at_once_and_requested_only_once():
    old = LandedFile("a/customers/x.csv", 10, NOW - 60 * 10**9)
    ready, state = tick(WatchState(), [old])
    assert ready == ["a/customers/x.csv"]
    ready, state = tick(WatchState.loads(state.dumps()), [old])
    assert ready == []


def test_a_file_still_changing_waits_until_two_ticks_agree():
    fresh = LandedFile("a/customers/x.csv", 10, NOW - 1 * 10**9)
    ready, state = tick(WatchState(), [fresh])
    assert ready == [] and state.pending == {"a/customers/x.csv": fresh.signature}
    grown = LandedFile("a/customers/x.csv", 20, NOW - 10**8)
    ready, state = tick(state, [grown])
    assert ready == []  # it grew since the last tick: still being written
    ready, state = tick(state, [grown])
    assert ready == ["a/customers/x.csv"] and state.pending == {}


def test_a_rewritten_file_under_the_same_name_is_requested_again():
    first = LandedFile("a/customers/x.csv", 10, NOW - 60 * 10**9)
    _, state = tick(WatchState(), [first])
    corrected = LandedFile("a/customers/x.csv", 11, NOW - 30 * 10**9)
    ready, _ = tick(state, [corrected])
    assert ready == ["a/customers/x.csv"]


def test_pages_remember_files_outside_the_current_page():
    a = LandedFile("a/customers/1.csv", 1, NOW - 60 * 10**9)
    b = LandedFile("a/customers/2.csv", 1, NOW - 60 * 10**9)
    ready, state = plan_tick(WatchState(), [a], page_start=None, next_after=a.path, now_ns=NOW, settle_seconds=5)
    state = mark_requested(state, ready)
    assert state.after == a.path
    ready, state = plan_tick(state, [b], page_start=a.path, next_after=None, now_ns=NOW, settle_seconds=5)
    state = mark_requested(state, ready)
    assert [f.path for f in ready] == [b.path]
    assert set(state.requested) == {a.path, b.path} and state.after is None
