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


def raw_row_counts(conn: sa.Connection) -> dict[str, int]:
    return {entity: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for entity, table in raw_tables.items()}


def manifest_counts(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(files.c.status, sa.func.count()).group_by(files.c.status)).all()
    return {status: int(n) for status, n in rows}


def raw_rows_not_matching_manifest(conn: sa.Connection) -> list[str]:
    """Loaded files whose raw row count differs from the manifest's rows_loaded (should be none)."""
    problems = []
    for entity, table in raw_tables.items():
        counted = (sa.select(table.c._file_id, sa.func.count().label("n"))
                   .group_by(table.c._file_id).subquery())
        query = (
            sa.select(files.c.path, files.c.rows_loaded, sa.func.coalesce(counted.c.n, 0))
            .select_from(files.outerjoin(counted, counted.c._file_id == files.c.file_id))
            .where(files.c.status == "loaded", files.c.entity == entity,
                   files.c.rows_loaded != sa.func.coalesce(counted.c.n, 0))
        )
        problems += [f"{path}: manifest says {expected} rows, raw_{entity} has {actual}"
                     for path, expected, actual in conn.execute(query)]
        orphans = conn.execute(
            sa.select(sa.func.count()).select_from(table)
            .where(~sa.exists().where(files.c.file_id == table.c._file_id, files.c.status == "loaded"))
        ).scalar_one()
        if orphans:
            problems.append(f"raw_{entity}: {orphans} rows whose _file_id is not a loaded file")
    return problems
