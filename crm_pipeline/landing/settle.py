"""When to refresh downstream after ingestion: once a burst of file runs has finished, not per file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IngestActivity:
    newest_success_id: str | None  # the newest successful ingest run
    newest_success_at: float  # its end time (epoch seconds), 0 when none
    still_running: int  # ingest runs queued or in progress


def refresh_due(activity: IngestActivity, refreshed_up_to: float) -> bool:
    """Refresh when an ingest run succeeded after the last refresh and no other ingest run is pending.

    Waiting for the queue to drain turns a drop of many files into one downstream run.
    """
    return activity.newest_success_at > refreshed_up_to and activity.still_running == 0
