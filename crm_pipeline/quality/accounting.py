"""The accounting invariant, counted independently: rows read = staged + quarantined + deduplicated.

Rows read come from the raw table (what was loaded), the other three from the
published tables, so a row lost or doubled anywhere between them shows up here.
And the file itself balances: its rows = rows in raw + rows kept out by erasure (suppressed on
load, or erased later), so even a person's removal is on the books, as a count.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES


@dataclass(frozen=True)
class FileBalance:
    file_id: int
    file: str
    entity: str
    rows_read: int
    staged: int
    quarantined: int
    deduplicated: int
    held: bool
    superseded: bool
    top_rules: str | None
    rows_in_file: int = 0
    kept_out: int = 0

    @property
    def balanced(self) -> bool:
        return (self.rows_read == self.staged + self.quarantined + self.deduplicated
                and self.rows_in_file == self.rows_read + self.kept_out)

    def problem(self) -> str | None:
        """Why this file fails the check, naming the file and its top rules; None when it passes."""
        if self.superseded:
            return None  # a newer version of the same file replaced it
        if self.held:
            return (f"{self.file}: held whole, {self.quarantined} of {self.rows_read} rows quarantined "
                    f"(top rules: {self.top_rules}); fix and re-drop the file")
        if self.rows_in_file != self.rows_read + self.kept_out:
            return (f"{self.file}: {self.rows_in_file} rows in the file but {self.rows_read} in raw + "
                    f"{self.kept_out} kept out by erasure")
        if not self.balanced:
            return (f"{self.file}: {self.rows_read} rows read but {self.staged} staged + {self.quarantined} "
                    f"quarantined + {self.deduplicated} deduplicated")
        return None


def file_balances(conn: sa.Connection, entity: str, file_ids: list[int] | tuple[int, ...] | None = None
                  ) -> list[FileBalance]:
    """Per loaded file of `entity`: rows in raw, in stg, in quarantine (distinct rows), in the dedup log.

    With `file_ids` (the files a run's publish rewrote) only those files are recounted from the
    tables; every other file keeps the counts `file_quality` took when its rows last changed (its
    rows in raw, stg, quarantine and dedup log have not moved since), so its verdict, held files
    included, still shows without rescanning history.
    """
    if entity not in ENTITIES:
        raise KeyError(entity)
    if file_ids is None:
        only, only_q, counted = "", "", "TRUE"
    else:
        only, only_q, counted = "WHERE _file_id IN :ids", "AND file_id IN :ids", "f.file_id IN :ids"
    query = sa.text(f"""
        WITH raw AS (SELECT _file_id, COUNT(*) AS n FROM raw_{entity} {only} GROUP BY _file_id),
             stg AS (SELECT _file_id, COUNT(*) AS n FROM stg_{entity} {only} GROUP BY _file_id),
             q AS (SELECT file_id, COUNT(DISTINCT row_number) AS n FROM quarantine
                   WHERE entity = :e {only_q} GROUP BY file_id),
             d AS (SELECT file_id, COUNT(*) AS n FROM dedup_log WHERE entity = :e {only_q} GROUP BY file_id),
             e AS (SELECT file_id, SUM(row_count) AS n FROM erasure_row_counts GROUP BY file_id)
        SELECT f.file_id, f.path,
               CASE WHEN {counted} THEN COALESCE(raw.n, 0) ELSE COALESCE(fq.rows_read, 0) END,
               CASE WHEN {counted} THEN COALESCE(stg.n, 0) ELSE COALESCE(fq.staged, 0) END,
               CASE WHEN {counted} THEN COALESCE(q.n, 0) ELSE COALESCE(fq.quarantined, 0) END,
               CASE WHEN {counted} THEN COALESCE(d.n, 0) ELSE COALESCE(fq.deduplicated, 0) END,
               COALESCE(fq.held, FALSE), COALESCE(fq.superseded, FALSE), fq.top_rules,
               COALESCE(f.rows_read, 0), COALESCE(e.n, 0)
        FROM files f
        LEFT JOIN raw ON raw._file_id = f.file_id
        LEFT JOIN stg ON stg._file_id = f.file_id
        LEFT JOIN q ON q.file_id = f.file_id
        LEFT JOIN d ON d.file_id = f.file_id
        LEFT JOIN e ON e.file_id = f.file_id
        LEFT JOIN file_quality fq ON fq.file_id = f.file_id
        WHERE f.status = 'loaded' AND f.entity = :e
        ORDER BY f.file_id
    """)
    params = {"e": entity}
    if file_ids is not None:
        query = query.bindparams(sa.bindparam("ids", list(file_ids) or [-1], expanding=True))
    rows = conn.execute(query, params).all()
    return [FileBalance(r[0], r[1], entity, int(r[2]), int(r[3]), int(r[4]), int(r[5]), bool(r[6]), bool(r[7]), r[8],
                        int(r[9]), int(r[10])) for r in rows]
