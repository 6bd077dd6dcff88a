"""Headless runs: file progress is throttled, a terminal gets a bar instead of lines, a stage's long parts
are printed as they finish, and a day without a partition is refused in one sentence."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import select
import struct
import termios
from datetime import date
from types import SimpleNamespace

import pytest

from crm_pipeline.defs.headless import refresh_day
from crm_pipeline.defs.run_progress import _StageEvents
from crm_pipeline.progress import FILE_PROGRESS, FileProgressLog, ProgressPrinter, log_part
from crm_pipeline.settings import load_settings


class Clock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def captured_log() -> tuple[logging.Logger, list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    log = logging.Logger("ingest_test", level=logging.INFO)
    handler = logging.Handler()
    handler.emit = records.append
    log.addHandler(handler)
    return log, records


def loaded(rows: int):
    return SimpleNamespace(status="loaded", already_known=False, rows_loaded=rows)


def test_a_folder_of_many_quick_files_logs_at_most_every_half_second_and_its_last_file():
    log, records = captured_log()
    progress = FileProgressLog(log, every_seconds=0.5, clock=Clock(0.001))  # 1,000 files in one second
    for done in range(1, 1001):
        progress(done, 1000, loaded(10))
    assert [getattr(r, FILE_PROGRESS) for r in records] == [
        {"done": 1, "total": 1000, "rows": 10, "verb": "ingested"},
        {"done": 501, "total": 1000, "rows": 5010, "verb": "ingested"},
        {"done": 1000, "total": 1000, "rows": 10_000, "verb": "ingested"}]
    assert records[-1].getMessage() == "ingested 1,000/1,000 files, 10,000 new rows"


def test_slow_files_are_each_reported_and_known_files_add_no_rows():
    log, records = captured_log()
    progress = FileProgressLog(log, every_seconds=0.5, clock=Clock(1.0))
    progress(1, 3, loaded(5))
    progress(2, 3, SimpleNamespace(status="loaded", already_known=True, rows_loaded=7))
    progress(3, 3, SimpleNamespace(status="rejected", already_known=False, rows_loaded=None))
    assert [getattr(r, FILE_PROGRESS)["rows"] for r in records] == [5, 5, 5]


def test_without_a_terminal_progress_is_plain_lines():
    out = io.StringIO()
    printer = ProgressPrinter(out)
    printer.files("ingest_files", 2, 4, 1234, "ingested")
    printer.stage("ingest", "ingest_files", 16_200, 1.84)
    printer.files("stage_entities", 4, 4, 1234, "typed")
    printer.files("stage_entities", 1, 4, 0, "published")  # the stage's next part says which it is
    printer.stage("quality", "dq_report", None, 0.1, "FAILED")
    assert out.getvalue().splitlines() == [
        "ingest_files: ingested 2/4 files, 1,234 new rows",
        "ingest     ingest_files                       16,200 rows      1.8 s",
        "stage_entities: typed 4/4 files, 1,234 new rows",
        "stage_entities: published 1/4 files, 0 new rows",
        "quality    dq_report                                           0.1 s  FAILED",
    ]
    assert "\r" not in out.getvalue()


def test_a_long_part_of_a_stage_gets_a_line_as_it_finishes_and_a_short_one_does_not():
    log, records = captured_log()
    log_part(log, "profiles", "timeline", 176.0)  # a full build at 1M people: minutes without a stage line
    log_part(log, "profiles", "browse_daily", 0.4)
    assert [r.getMessage() for r in records] == ["profiles: timeline 176.0 s", "profiles: browse_daily 0.4 s"]
    out = io.StringIO()
    events = _StageEvents(ProgressPrinter(out), {})  # the run's logger on the command line
    for record in records:
        record.dagster_meta = {"step_key": "build_profile_tables"}
        events.emit(record)
    assert out.getvalue().splitlines() == ["build_profile_tables: timeline 176.0 s"]


def read_all(fd: int) -> bytes:
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal side is closed: all read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_on_a_terminal_the_files_show_as_a_bar_that_gives_way_to_the_stage_line():
    main_fd, terminal_fd = pty.openpty()
    fcntl.ioctl(terminal_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    terminal = os.fdopen(terminal_fd, "w")
    printer = ProgressPrinter(terminal)
    assert printer.tty
    for done in (1, 2, 3, 4):
        printer.files("ingest_files", done, 4, done * 100)
    printer.stage("ingest", "ingest_files", 400, 2.0)
    printer.close()
    terminal.flush()
    terminal.close()
    shown = read_all(main_fd).decode()
    os.close(main_fd)
    assert "\r" in shown and "4/4" in shown and "400 new rows" in shown  # one bar, redrawn in place
    assert "ingest_files: 4/4 files" not in shown  # not the plain lines
    assert shown.rstrip().endswith("ingest     ingest_files                          400 rows      2.0 s")


def test_a_headless_run_for_a_day_without_a_partition_says_which_days_have_one(tmp_path):
    settings = load_settings(env={}, home_dir=tmp_path)
    with pytest.raises(ValueError, match=r"1989-12-31 is outside the daily partitions, which run from 1990-01-01"):
        refresh_day(settings, date(1989, 12, 31))


def test_the_quality_stage_reports_its_typing_file_by_file_like_ingest(engine, folder, landing_dir):
    from crm_pipeline.landing.ingest import ingest_folder
    from crm_pipeline.quality.typing_run import type_new_files
    from crm_pipeline_tests.conftest import NOW, drop

    header = "customer_id,email,first_name,last_name,country,updated_at\n"
    for n, rows in enumerate((3, 5, 7)):
        drop(landing_dir, f"brand_a/customers/c{n}.csv", header + "".join(
            f"C{n}_{i},p{n}_{i}@example.com,Ann,Lee,US,2025-01-01T00:00:00Z\n" for i in range(rows)))
    ingest_folder(engine, folder, now=NOW)
    log, records = captured_log()

    type_new_files(engine, now=NOW, batch_rows=1, on_batch=FileProgressLog(log, every_seconds=0, verb="typed").report)

    assert [getattr(r, FILE_PROGRESS) for r in records] == [
        {"done": 1, "total": 3, "rows": 3, "verb": "typed"}, {"done": 2, "total": 3, "rows": 8, "verb": "typed"},
        {"done": 3, "total": 3, "rows": 15, "verb": "typed"}]
    assert records[-1].getMessage() == "typed 3/3 files, 15 new rows"
