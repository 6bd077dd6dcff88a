"""Figures about ingestion a data engineer reads at a glance."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from crm_pipeline.landing.ingest import FileOutcome
from crm_pipeline.warehouse.schema import files, raw_tables


def outcome_counts(outcomes: list[FileOutcome]) -> dict[str, int]:
    """Files handled by this run per status; files an earlier run already handled count as `known`."""
    counts = Counter("known" if o.already_known else o.status for o in outcomes)
    return {status: counts.get(status, 0) for status in ("loaded", "duplicate", "rejected", "known")}


def outcomes_markdown(outcomes: list[FileOutcome], limit: int = 50) -> str:
    fresh = [o for o in outcomes if not o.already_known]
    if not fresh:
        return "No new files in this run."
    lines = ["| file | entity | status | rows | reason |", "|---|---|---|---|---|"]
    for o in fresh[:limit]:
        reason = (o.reason or "").replace("|", "\\|")
        lines.append(f"| {o.path} | {o.entity or ''} | {o.status} | {o.rows_loaded or 0} | {reason} |")
    if len(fresh) > limit:
        lines.append(f"| ... {len(fresh) - limit} more | | | | |")
    return "\n".join(lines)


def file_counters(outcomes: list[FileOutcome]) -> dict[str, int]:
    """What a run's cost follows: files seen, read to be hashed, vouched for unread, and loaded."""
    return {
        "files_seen": len(outcomes),
        "files_hashed": sum(o.hashed for o in outcomes),
        "files_skipped_as_known": sum(not o.hashed for o in outcomes),
        "files_loaded": sum(o.status == "loaded" and not o.already_known for o in outcomes),
    }


def raw_row_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per raw table, counted (a scan of each on most engines: a full refresh's recount)."""
    return {entity: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for entity, table in raw_tables.items()}


def loaded_row_totals(conn: sa.Connection) -> dict[str, int]:
    """Rows per raw table from the manifest (`rows_loaded` of loaded files, kept right by erasure too):
    the same figures as `raw_row_counts` whenever `raw_rows_match_manifest` holds, without reading raw."""
    rows = conn.execute(
        sa.select(files.c.entity, sa.func.coalesce(sa.func.sum(files.c.rows_loaded), 0))
        .where(files.c.status == "loaded").group_by(files.c.entity)).all()
    found = {entity: int(n) for entity, n in rows}
    return {entity: found.get(entity, 0) for entity in raw_tables}


def manifest_counts(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(files.c.status, sa.func.count()).group_by(files.c.status)).all()
    return {status: int(n) for status, n in rows}


def first_file_id_of_run(conn: sa.Connection, outcomes: list[FileOutcome]) -> int:
    """The lowest file id a run's new manifest rows took; past every id when it added none. Ids are handed out
    in order by the one writer, so every id from there on is this run's (or a row no file accounts for)."""
    new_ids = [o.file_id for o in outcomes if not o.already_known]
    if new_ids:
        return min(new_ids)
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(files.c.file_id), 0))).scalar_one()) + 1


def raw_rows_not_matching_manifest(conn: sa.Connection, from_file_id: int | None = None) -> list[str]:
    """Loaded files whose raw row count differs from the manifest's rows_loaded, and raw rows of no loaded
    file (should be none). With `from_file_id`, only the files and raw rows from that id on (one run's):
    the files of earlier runs were checked by their runs, and a DuckDB table appended in file order
    skips the older row groups by their min/max."""
    problems = []
    for entity, table in raw_tables.items():
        raw_filter = sa.true() if from_file_id is None else table.c._file_id >= from_file_id
        file_filter = sa.true() if from_file_id is None else files.c.file_id >= from_file_id
        counted = (sa.select(table.c._file_id, sa.func.count().label("n")).where(raw_filter)
                   .group_by(table.c._file_id).subquery())
        query = (
            sa.select(files.c.path, files.c.rows_loaded, sa.func.coalesce(counted.c.n, 0))
            .select_from(files.outerjoin(counted, counted.c._file_id == files.c.file_id))
            .where(files.c.status == "loaded", files.c.entity == entity, file_filter,
                   files.c.rows_loaded != sa.func.coalesce(counted.c.n, 0))
        )
        problems += [f"{path}: manifest says {expected} rows, raw_{entity} has {actual}"
                     for path, expected, actual in conn.execute(query)]
        orphans = conn.execute(
            sa.select(sa.func.count()).select_from(table)
            .where(raw_filter,
                   ~sa.exists().where(files.c.file_id == table.c._file_id, files.c.status == "loaded"))
        ).scalar_one()
        if orphans:
            problems.append(f"raw_{entity}: {orphans} rows whose _file_id is not a loaded file")
    return problems
