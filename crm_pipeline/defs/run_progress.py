"""A Dagster logger that hands a run's step events, as they happen, to a `ProgressPrinter`.

Dagster passes every event of an in-process run (step started, asset materialized, step succeeded
or failed) and every `context.log` line through the run's loggers; this one turns them into one
line per finished stage (its tables' row counts, its seconds), the file progress of ingest and quality,
and the long parts of a stage as each finishes.
"""

from __future__ import annotations

import logging
import time

import dagster as dg

from crm_pipeline.progress import FILE_PROGRESS, PART_PROGRESS, ProgressPrinter

LOGGER_KEY = "crm_progress"


class _StageEvents(logging.Handler):
    def __init__(self, printer: ProgressPrinter, stages: dict[str, str]):
        super().__init__(level=logging.DEBUG)
        self.printer, self.stages = printer, stages
        self.started: dict[str, float] = {}
        self.rows: dict[str, int | None] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        step = meta.get("step_key") or ""
        files = getattr(record, FILE_PROGRESS, None)
        if files:
            self.printer.files(step, files["done"], files["total"], files["rows"], files.get("verb", ""))
            return
        part = getattr(record, PART_PROGRESS, None)
        if part:
            self.printer.part(step, part["part"], part["seconds"])
            return
        event = meta.get("dagster_event")
        if event is None or not step:
            return
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            self.started[step], self.rows[step] = time.monotonic(), None
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            count = event.event_specific_data.materialization.metadata.get("dagster/row_count")
            if count is not None:
                self.rows[step] = (self.rows.get(step) or 0) + int(count.value)
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
                      dg.DagsterEventType.STEP_SKIPPED):
            seconds = time.monotonic() - self.started.get(step, time.monotonic())
            status = {dg.DagsterEventType.STEP_SUCCESS: "done", dg.DagsterEventType.STEP_FAILURE: "FAILED",
                      dg.DagsterEventType.STEP_SKIPPED: "skipped"}[kind]
            self.printer.stage(self.stages.get(step, ""), step, self.rows.get(step), seconds, status)


def progress_logger(printer: ProgressPrinter, assets) -> dg.LoggerDefinition:
    """The logger definition for one run; `assets` give each step its stage (the assets' group)."""
    stages = {a.node_def.name: sorted(set(a.group_names_by_key.values()))[0] for a in assets}

    @dg.logger(description="Stage lines and file progress for the command line.")
    def crm_progress(_init_context) -> logging.Logger:
        log = logging.Logger(LOGGER_KEY, level=logging.DEBUG)
        log.addHandler(_StageEvents(printer, stages))
        return log

    return crm_progress
