"""What a sensor tick should do with one page of the landing folder: pure, cursor in, cursor out.

A file is ready when it is not a temp name and has stopped changing: its size and
mtime match what the previous tick saw, or it has not been touched for
`settle_seconds`. A file already requested is not looked at again until its
signature changes (a corrected file under the same name). The cursor also holds
where the next page starts, so a very large folder is read across several ticks.

The cursor remembers every file requested (that is what keeps a file from being requested
twice), so a folder that keeps 50,000 drops makes it megabytes of JSON, stored by Dagster
on every tick: past `PACK_OVER_CHARS` it is stored zlib-packed (paths share long prefixes,
so it shrinks about tenfold); a small cursor stays readable JSON in the UI.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field, replace

from crm_pipeline.landing.scan import LandedFile

CURSOR_VERSION = 1
PACKED_PREFIX = "zlib:"
PACK_OVER_CHARS = 64 * 1024


@dataclass
class WatchState:
    after: str | None = None  # the page of the next tick starts after this path
    pending: dict[str, str] = field(default_factory=dict)  # path -> signature seen, not yet stable
    requested: dict[str, str] = field(default_factory=dict)  # path -> signature a run was requested for

    def dumps(self) -> str:
        text = json.dumps({"v": CURSOR_VERSION, "after": self.after, "pending": self.pending,
                           "requested": self.requested}, separators=(",", ":"), sort_keys=True)
        if len(text) <= PACK_OVER_CHARS:
            return text
        return PACKED_PREFIX + base64.b64encode(zlib.compress(text.encode("utf-8"), 6)).decode("ascii")

    @classmethod
    def loads(cls, cursor: str | None) -> WatchState:
        if not cursor:
            return cls()
        if cursor.startswith(PACKED_PREFIX):
            cursor = zlib.decompress(base64.b64decode(cursor[len(PACKED_PREFIX):])).decode("utf-8")
        data = json.loads(cursor)
        if data.get("v") != CURSOR_VERSION:
            return cls()
        return cls(after=data.get("after"), pending=dict(data.get("pending", {})),
                   requested=dict(data.get("requested", {})))


def plan_tick(state: WatchState, page: list[LandedFile], *, page_start: str | None, next_after: str | None,
              now_ns: int, settle_seconds: float) -> tuple[list[LandedFile], WatchState]:
    """Return (files ready to request now, the state for the next tick)."""
    settle_ns = int(settle_seconds * 1e9)
    ready: list[LandedFile] = []
    pending = {p: s for p, s in state.pending.items() if not _on_page(p, page_start, next_after)}
    requested = dict(state.requested)
    for landed in page:
        signature = landed.signature
        if requested.get(landed.path) == signature:
            continue
        settled = now_ns - landed.mtime_ns >= settle_ns
        if settled or state.pending.get(landed.path) == signature:
            ready.append(landed)
        else:
            pending[landed.path] = signature
    seen_on_page = {landed.path for landed in page}
    # Forget files that were on this page's range before but are gone now (moved away or deleted).
    requested = {p: s for p, s in requested.items() if p in seen_on_page or not _on_page(p, page_start, next_after)}
    return ready, WatchState(after=next_after, pending=pending, requested=requested)


def mark_requested(state: WatchState, files: list[LandedFile]) -> WatchState:
    """Remember the files just requested. Only they leave `pending`: a file requested long ago and
    rewritten since is pending again under its new signature, and must stay so to become ready."""
    just_requested = {f.path: f.signature for f in files}
    requested = {**state.requested, **just_requested}
    pending = {p: s for p, s in state.pending.items() if p not in just_requested}
    return WatchState(after=state.after, pending=pending, requested=requested)


def resume_after(state: WatchState, path: str | None) -> WatchState:
    """The next tick starts after `path` (a tick that ran out of time goes on where it stopped)."""
    return replace(state, after=path)


def _on_page(path: str, page_start: str | None, next_after: str | None) -> bool:
    """Whether `path` falls in the range (page_start, next_after] a page covered."""
    return (page_start is None or path > page_start) and (next_after is None or path <= next_after)
