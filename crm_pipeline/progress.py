"""Progress of a headless run as it goes: one line per finished stage, the files ingested so far, and the
long parts of a stage as each finishes.

The ingest step reports its files through its own log (`FileProgressLog`, throttled so a folder of
50,000 files does not write 50,000 log lines), a stage its parts through `log_part`; the command line prints
what the run reports (`ProgressPrinter`): a bar on a terminal, plain lines otherwise (a CI log, a file).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

# The `extra` key of the ingest step's progress log lines: {"done", "total", "rows", "verb"}.
FILE_PROGRESS = "crm_file_progress"
# The `extra` key of a stage's part-done log lines: {"part", "seconds"}.
PART_PROGRESS = "crm_part_progress"
# A part shorter than this is not printed on the command line (its stage's line follows soon enough).
LONG_PART_SECONDS = 5.0


def log_part(log: Any, stage: str, part: str, seconds: float) -> None:
    """Log that a part of a stage finished (`profiles: timeline 176.0 s`): a stage at 1M people runs for
    minutes, and the command line prints its long parts as they finish."""
    log.info(f"{stage}: {part} {seconds:.1f} s", extra={PART_PROGRESS: {"part": part, "seconds": seconds}})


class FileProgressLog:
    """A per-file callback for ingestion that logs `done/total files, rows` at most every `every_seconds`
    (and always for the first and the last file), with the figures attached for a progress display.
    `report` serves any step that works through files in turn (the quality stage's typing: `verb` "typed")."""

    def __init__(self, log: Any, every_seconds: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 verb: str = "ingested"):
        self._log, self._every, self._clock, self._verb = log, every_seconds, clock, verb
        self._last: float | None = None
        self._rows = 0

    def __call__(self, done: int, total: int, outcome: Any) -> None:
        if outcome.status == "loaded" and not outcome.already_known:
            self._rows += outcome.rows_loaded or 0
        self.report(done, total, self._rows)

    def report(self, done: int, total: int, rows: int) -> None:
        now = self._clock()
        if done == total or self._last is None or now - self._last >= self._every:
            self._last = now
            self._log.info(f"{self._verb} {done:,}/{total:,} files, {rows:,} new rows",
                           extra={FILE_PROGRESS: {"done": done, "total": total, "rows": rows, "verb": self._verb}})


class ProgressPrinter:
    """Writes stage lines and file progress to `stream` (standard error: standard output keeps the summary)."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._bar, self._verb = None, ""

    def files(self, step: str, done: int, total: int, rows: int, verb: str = "") -> None:
        """`verb` names the part of the step (the quality stage's files are typed, then published, then validated)."""
        doing = f"{verb} " if verb else ""
        if not self.tty:
            self._line(f"{step}: {doing}{done:,}/{total:,} files, {rows:,} new rows")
            return
        if self._bar is not None and (verb != self._verb or total != self._bar.total or done < self._bar.n):
            self._close_bar()  # the step's next part: a bar of its own
        if self._bar is None:
            from tqdm import tqdm

            # Redrawn at every report: the ingest step already reports at most twice a second.
            self._bar = tqdm(total=total, desc=f"{step} {doing}".rstrip(), unit="file", file=self.stream, leave=False,
                             dynamic_ncols=True, mininterval=0)
            self._verb = verb
        self._bar.set_postfix_str(f"{rows:,} new rows", refresh=False)
        self._bar.update(done - self._bar.n)

    def part(self, step: str, part: str, seconds: float) -> None:
        """A long part of `step` finished (a short one is not worth a line)."""
        if seconds >= LONG_PART_SECONDS:
            self._close_bar()
            self._line(f"{step}: {part} {seconds:.1f} s")

    def stage(self, stage: str, step: str, rows: int | None, seconds: float, status: str = "done") -> None:
        self._close_bar()
        counted = f"{rows:>12,} rows" if rows is not None else " " * 17
        self._line(f"{stage:<10} {step:<28} {counted} {seconds:>8.1f} s" + ("" if status == "done" else f"  {status}"))

    def close(self) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
