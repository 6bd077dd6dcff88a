"""The erasure suppression list (hashed identifiers of erased people) and the filter ingestion applies.

A landed row is kept out of `raw_<entity>` when any identifier it carries (email, its match key,
E.164 phone, or a brand-scoped customer / subscriber / order / cookie key) hashes to a value on
the list. So an old file re-dropped after an erasure loads everyone but the erased person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.contract import Entity
from crm_pipeline.erasure.identifiers import landed_identifiers, sha256_series, sha256_text
from crm_pipeline.warehouse.erasure_schema import SUPPRESSION_KINDS, erasure_suppressions

_IDENTIFYING_COLUMNS = ("_brand", "email", "phone", "country", "shipping_country", "customer_id", "subscriber_id",
                        "order_id", "cookie_id")


@dataclass(frozen=True)
class Suppressions:
    """Hex SHA-256 digests per kind (see `erasure_schema.SUPPRESSION_KINDS`)."""

    hashes: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: sa.Connection) -> Suppressions:
        if not sa.inspect(conn).has_table(erasure_suppressions.name):
            return cls()
        rows = pd.DataFrame(conn.execute(sa.select(erasure_suppressions.c.kind,
                                                   erasure_suppressions.c.value_sha256)).all(),
                            columns=["kind", "value_sha256"])
        return cls(rows.groupby("kind")["value_sha256"].agg(frozenset).to_dict())

    @classmethod
    def of_values(cls, values: dict[str, set[str]]) -> Suppressions:
        """From clear normalized values (held in memory only)."""
        return cls({kind: frozenset(sha256_text(v) for v in vals) for kind, vals in values.items() if vals})

    def __bool__(self) -> bool:
        return any(self.hashes.values())

    def row_mask(self, entity: Entity, rows: pd.DataFrame) -> np.ndarray:
        """True for each row (raw layout, text as landed) that carries a suppressed identifier."""
        hit = np.zeros(len(rows), dtype=bool)
        kinds = {kind for kind, digests in self.hashes.items() if digests}
        if not kinds or not len(rows):
            return hit
        for kind, values in landed_identifiers(entity, rows, kinds).items():
            hit |= sha256_series(values).isin(self.hashes[kind]).fillna(False).to_numpy(dtype=bool)
        return hit


class SuppressionCache:
    """The list as of the caller's transaction, re-read only when it grew (one COUNT per file; the list
    only ever grows, so its size is its version).

    Checked inside each file's load transaction, so an erasure that commits between two files of
    one ingestion run still keeps its person out of the second file.
    """

    def __init__(self) -> None:
        self._size: int | None = None
        self._suppressions = Suppressions()

    def current(self, conn: sa.Connection) -> Suppressions:
        size = conn.execute(sa.select(sa.func.count()).select_from(erasure_suppressions)).scalar_one()
        if size != self._size:
            self._suppressions, self._size = (Suppressions.load(conn) if size else Suppressions()), size
        return self._suppressions


def filter_landed_rows(rows: pa.Table, entity: Entity, suppressions: Suppressions) -> tuple[pa.Table, int]:
    """(the rows to load, how many were suppressed); lineage (`_row_number`) of the kept rows is unchanged."""
    if not suppressions or rows.num_rows == 0:
        return rows, 0
    present = [c for c in _IDENTIFYING_COLUMNS if c in rows.column_names]
    frame = rows.select(present).to_pandas()
    hit = suppressions.row_mask(entity, frame)
    if not hit.any():
        return rows, 0
    return rows.filter(pa.array(~hit)), int(hit.sum())


def add_suppressions(conn: sa.Connection, values: dict[str, set[str]], *, request_id: int,
                     added_at: datetime) -> int:
    """Put the hashes of `values` (kind -> clear normalized values) on the list; returns how many were new."""
    unknown = set(values) - set(SUPPRESSION_KINDS)
    if unknown:
        raise ValueError(f"unknown suppression kind(s): {', '.join(sorted(unknown))}")
    wanted = Suppressions.of_values(values).hashes
    existing = Suppressions.load(conn).hashes
    new = [{"kind": kind, "value_sha256": digest, "request_id": request_id, "added_at": added_at}
           for kind, digests in sorted(wanted.items())
           for digest in sorted(digests - existing.get(kind, frozenset()))]
    if new:
        conn.execute(erasure_suppressions.insert(), new)
    return len(new)
