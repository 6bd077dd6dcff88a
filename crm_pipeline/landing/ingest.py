"""Exactly-once loading of landed files into `raw_<entity>` with a `files` manifest.

A file is known by its content hash: the same bytes under any name load once (later
copies are recorded as duplicates), while a corrected file under an old name has new
bytes and loads again. Loading a file is one transaction: its raw rows and its
manifest row commit together or not at all.

Rows of people erased earlier (their hashed identifiers are on the erasure suppression
list) are not loaded: `rows_read` counts the file's data rows, `rows_loaded` the rows put in
`raw_<entity>`, and `erasure_row_counts` the rows kept out, so every file still adds up
(`rows_read = rows_loaded + suppressed`).

Hashing every file on every run costs time in proportion to the history, so a file whose path,
size and mtime (in nanoseconds) equal a manifest row's is taken to hold that row's bytes without
being read: the row must have been hashed at least `SETTLED_NS` after that mtime, because a file
rewritten with the same size within the file system's timestamp resolution (a second or two on
some) keeps its mtime. A rehash run (`--full-refresh`) hashes every file again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from crm_pipeline.contract import classify, get_entity
from crm_pipeline.erasure.suppression import SuppressionCache, filter_landed_rows
from crm_pipeline.landing.conform import conform
from crm_pipeline.landing.errors import FileRejected, WarehouseWriteFailed
from crm_pipeline.landing.readers import read_landed_file
from crm_pipeline.landing.scan import LandedFile, LandingFolder, PathOutsideLanding
from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.erasure_schema import erasure_row_counts
from crm_pipeline.warehouse.schema import create_ingest_tables, files, raw_tables


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one landed file (one manifest row)."""

    file_id: int
    path: str
    brand: str | None
    entity: str | None
    sha256: str
    status: str  # loaded / rejected / duplicate
    rows_read: int | None
    rows_loaded: int | None
    reason: str | None
    extra_columns: list[str]
    duplicate_of: int | None
    already_known: bool = False  # True when this exact (path, bytes) was handled by an earlier run
    hashed: bool = True  # False when its unchanged path, size and mtime vouched for bytes already handled

    @property
    def rows_suppressed(self) -> int:
        """Rows of the file kept out of raw because the person was erased (at load or since)."""
        return (self.rows_read or 0) - (self.rows_loaded or 0) if self.status == "loaded" else 0


def ingest_paths(engine: sa.Engine, folder: LandingFolder, paths: list[str], *, now: datetime,
                 on_file: Callable[[int, int, FileOutcome], None] | None = None,
                 rehash: bool = False) -> list[FileOutcome]:
    """Ingest the given files (paths relative to the landing folder), one transaction each.

    `now` is when this ingestion started, by the wall clock: it is stored as `ingested_at`, and a file
    whose mtime is not at least `SETTLED_NS` older is hashed again on later runs. `rehash` hashes every
    file, even those an unchanged (path, size, mtime) vouches for.

    The tables are made sure of once per call, not once per file (a drop can hold thousands); the
    erasure suppression list is re-read only when it changed. `on_file(done, total, outcome)` is
    called after each file (progress for whoever watches)."""
    create_ingest_tables(engine)
    suppressions = SuppressionCache()
    vouched = None if rehash else _vouched_signatures(engine, set(paths))
    outcomes: list[FileOutcome] = []
    with _one_checkpoint(engine):
        for path in paths:
            outcomes.append(_ingest_one(engine, folder, path, now=now, suppressions=suppressions, vouched=vouched))
            if on_file is not None:
                on_file(len(outcomes), len(paths), outcomes[-1])
    return outcomes


# The WAL size at which DuckDB checkpoints during a run: bounds the committed rows held in memory (spillable)
# and the WAL a restart after a kill replays, far above the 16 MB default a file or two of rows passes.
RUN_CHECKPOINT_THRESHOLD = "1GB"


@contextmanager
def _one_checkpoint(engine: sa.Engine):
    """On DuckDB, checkpoint at most once per run rather than every file or two.

    DuckDB checkpoints when a commit leaves its WAL above `checkpoint_threshold` (16 MiB by default): with one
    transaction per file, nearly every commit of a full load rewrote the tables' last row groups and synced the
    database file. A committed file is durable in the WAL alone (replayed when the warehouse is next opened, as
    after a kill), so exactly-once is unchanged: the run raises the threshold (a database-wide, unpersisted
    setting; one writer at a time), and at its end puts it back and checkpoints if the WAL is past it, as the
    run's next commit would have (a small drop leaves its checkpoint to DuckDB, as before)."""
    database = engine.url.database
    if engine.dialect.name != "duckdb" or database in (None, "", ":memory:"):
        yield
        return
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT current_setting('checkpoint_threshold')").scalar_one()
        conn.exec_driver_sql(f"SET checkpoint_threshold = '{RUN_CHECKPOINT_THRESHOLD}'")
    try:
        yield
    except BaseException:
        with suppress(sa.exc.DBAPIError):  # a warehouse that failed may refuse this too: keep the first error
            _set_checkpoint_threshold(engine, before)
        raise
    _set_checkpoint_threshold(engine, before)
    wal = Path(f"{database}.wal")
    if wal.exists() and wal.stat().st_size > _size_bytes(before):
        with engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")


def _size_bytes(shown: str) -> int:
    """Bytes of a size as DuckDB shows a setting ('16.0 MiB', '953.6 MiB', '0 bytes')."""
    number, unit = shown.split()
    return int(float(number) * 1024 ** ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"].index(unit))


def _set_checkpoint_threshold(engine: sa.Engine, value: str) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SET checkpoint_threshold = '{value}'")


def ingest_folder(engine: sa.Engine, folder: LandingFolder, *, now: datetime,
                  on_file: Callable[[int, int, FileOutcome], None] | None = None,
                  rehash: bool = False) -> list[FileOutcome]:
    """Ingest every file in the landing folder that is not in progress (the headless run's path)."""
    page = folder.scan()
    return ingest_paths(engine, folder, [f.path for f in page.files], now=now, on_file=on_file, rehash=rehash)


def ingest_file(engine: sa.Engine, folder: LandingFolder, path: str, *, now: datetime) -> FileOutcome:
    [outcome] = ingest_paths(engine, folder, [path], now=now)
    return outcome


# How much older than the run that hashed it a file's mtime must be for (path, size, mtime) to vouch for its
# bytes: above the coarsest mtime resolution in common use (FAT: 2 s; ext3, HFS+: 1 s), with a margin.
SETTLED_NS = 3 * 10**9
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

Signature = tuple[str, int, int]  # (path, size, mtime_ns)


def _vouched_signatures(engine: sa.Engine, paths: set[str]) -> dict[Signature, dict | None]:
    """Manifest rows of these paths whose recorded (path, size, mtime) vouch for their bytes: hashed by a run
    that started at least `SETTLED_NS` after that mtime, so a later rewrite cannot share the mtime. A
    signature two such rows share with different bytes (an mtime set back by hand) vouches for nothing."""
    if not paths:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(files).where(files.c.mtime_ns.is_not(None)).order_by(files.c.file_id))
        found: dict[Signature, dict | None] = {}
        wall_ns = time.time_ns()  # a run dated in the future (a `now` not from the clock) vouches for nothing
        for row in rows.mappings():  # one row per file version: the manifest, not the data
            hashed_ns = _ns(row["ingested_at"])
            if row["path"] not in paths or not row["mtime_ns"] + SETTLED_NS <= hashed_ns <= wall_ns:
                continue
            key = (row["path"], row["size_bytes"], row["mtime_ns"])
            if key not in found:
                found[key] = dict(row)
            elif found[key] is not None and found[key]["sha256"] != row["sha256"]:
                found[key] = None
    return found


def _ns(moment: datetime) -> int:
    if moment.tzinfo is None:  # a backend that hands timestamps back naive stores them in UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _ingest_one(engine: sa.Engine, folder: LandingFolder, path: str, *, now: datetime,
                suppressions: SuppressionCache, vouched: dict[Signature, dict | None] | None) -> FileOutcome:
    try:
        landed = folder.stat(path)
        if vouched is not None and (row := vouched.get((path, landed.size, landed.mtime_ns))) is not None:
            return _outcome(row, already_known=True, hashed=False)
        sha = folder.sha256(path)
    except PathOutsideLanding as exc:
        return _record_without_content(engine, path, str(exc), now=now)
    place = classify(path)
    modified_at = datetime.fromtimestamp(landed.mtime_ns / 1e9, tz=timezone.utc)
    base = dict(path=path, brand=place.brand, entity=place.entity, sha256=sha, size_bytes=landed.size,
                format=place.format, modified_at=modified_at, mtime_ns=landed.mtime_ns, ingested_at=now)

    with _file_transaction(engine, path) as conn:
        known = conn.execute(
            sa.select(files).where(files.c.path == path, files.c.sha256 == sha).order_by(files.c.file_id)
        ).mappings().first()
        if known is not None:
            _remember_mtime(conn, known, landed)
            return _outcome(known, already_known=True)
        file_id = _next_file_id(conn)
        loaded_copy = conn.execute(
            sa.select(files.c.file_id, files.c.path)
            .where(files.c.sha256 == sha, files.c.status == "loaded").order_by(files.c.file_id)
        ).first()
        if loaded_copy is not None:
            row = dict(base, file_id=file_id, status="duplicate", duplicate_of=loaded_copy.file_id,
                       reason=f"same bytes as file {loaded_copy.file_id} ({loaded_copy.path}); not loaded again")
            return _insert_manifest(conn, row)
        if not place.accepted:
            return _insert_manifest(conn, dict(base, file_id=file_id, status="rejected", reason=place.reason))
        try:
            read = read_landed_file(folder.resolve(path), place.format, path)
            base["encoding"] = read.encoding
            rows, extras = conform(read.table, get_entity(place.entity), brand=place.brand,
                                   file_id=file_id, label=path)
        except FileRejected as exc:
            return _insert_manifest(conn, dict(base, file_id=file_id, status="rejected", reason=exc.reason))
        rows, suppressed = filter_landed_rows(rows, get_entity(place.entity), suppressions.current(conn))
        loaded = insert_arrow(conn, raw_tables[place.entity], rows)
        if suppressed:
            conn.execute(erasure_row_counts.insert().values(
                file_id=file_id, entity=place.entity, cause="suppressed_on_load", request_id=None,
                row_count=suppressed))
        reason = f"extra column(s) kept in _extra: {', '.join(extras)}" if extras else None
        return _insert_manifest(conn, dict(
            base, file_id=file_id, status="loaded", rows_read=read.table.num_rows, rows_loaded=loaded,
            reason=reason, extra_columns=json.dumps(extras),
        ))


def _remember_mtime(conn: sa.Connection, known, landed: LandedFile) -> None:
    """A row from before the manifest kept mtimes gets the mtime of the bytes just hashed, once: from then
    on they are vouched for like any other (if that mtime is older than the row's run, see SETTLED_NS)."""
    if known["mtime_ns"] is None and known["size_bytes"] == landed.size:
        conn.execute(files.update().where(files.c.file_id == known["file_id"], files.c.mtime_ns.is_(None))
                     .values(mtime_ns=landed.mtime_ns))


@contextmanager
def _file_transaction(engine: sa.Engine, path: str):
    """One file, one transaction; when the warehouse refuses it (disk full, lock, lost connection) the error
    names the file and nothing of it is kept."""
    try:
        with engine.begin() as conn:
            yield conn
    except sa.exc.DBAPIError as exc:
        raise WarehouseWriteFailed(path, exc) from exc


def _record_without_content(engine: sa.Engine, path: str, reason: str, *, now: datetime) -> FileOutcome:
    """A path we refuse to open (it leaves the landing folder) is still recorded, once."""
    with _file_transaction(engine, path) as conn:
        known = conn.execute(
            sa.select(files).where(files.c.path == path, files.c.sha256 == "")
        ).mappings().first()
        if known is not None:
            return _outcome(known, already_known=True)
        return _insert_manifest(conn, dict(
            file_id=_next_file_id(conn), path=path, sha256="", size_bytes=0, status="rejected",
            reason=reason, ingested_at=now,
        ))


def _next_file_id(conn: sa.Connection) -> int:
    # One writer at a time (DuckDB allows only one; the Dagster instance limits runs), so max + 1 is safe.
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(files.c.file_id), 0))).scalar_one()) + 1


def _insert_manifest(conn: sa.Connection, row: dict) -> FileOutcome:
    row.setdefault("extra_columns", json.dumps([]))
    conn.execute(files.insert().values(**row))
    return _outcome(row)


def _outcome(row, *, already_known: bool = False, hashed: bool = True) -> FileOutcome:
    return FileOutcome(
        file_id=row["file_id"], path=row["path"], brand=row.get("brand"), entity=row.get("entity"),
        sha256=row["sha256"], status=row["status"], rows_read=row.get("rows_read"),
        rows_loaded=row.get("rows_loaded"), reason=row.get("reason"),
        extra_columns=json.loads(row.get("extra_columns") or "[]"), duplicate_of=row.get("duplicate_of"),
        already_known=already_known, hashed=hashed,
    )
