"""A file about to land: its place, its columns (contract names, text) and who is behind each row.

Generators produce these; bad_rows plants defects into them; writers put them on disk and
derive the truth files from them, so the truth always describes exactly the bytes written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.contract.entities import ENTITIES
from crm_pipeline.contract.layout import file_format
from crm_pipeline.synth.columns import STR, join


@dataclass
class LandedFile:
    brand: str
    entity: str
    name: str
    columns: dict[str, pa.Array]
    person: np.ndarray                       # person index per row, -1 when none (products)
    ts_style: dict[str, str] = field(default_factory=dict)  # timestamp column -> timestamps style
    bad_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # 0-based rows
    bad_reasons: np.ndarray = field(default_factory=lambda: np.zeros(0, object))              # reason per bad row
    dup_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # exact re-sent copies
    dup_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def path(self) -> str:
        return f"{self.brand}/{self.entity}/{self.name}"

    @property
    def format(self) -> str:
        return file_format(self.name)

    @property
    def n_rows(self) -> int:
        return int(self.person.size)

    def table(self) -> pa.Table:
        names = ENTITIES[self.entity].column_names
        return pa.table({c: self.columns.get(c, pa.nulls(self.n_rows, STR)) for c in names})

    def source_key(self) -> pa.Array:
        """The natural key as written (composite keys joined by ':'), '' where empty."""
        key = ENTITIES[self.entity].key
        parts = [pc.fill_null(self.columns[k], "") for k in key]
        return parts[0] if len(parts) == 1 else join(parts[0], ":", *parts[1:])


def split_files(brand: str, entity: str, columns: dict[str, pa.Array], person: np.ndarray,
                group: np.ndarray, names: list[str], sort_key: np.ndarray,
                ts_style: dict[str, str] | None = None) -> list[LandedFile]:
    """One file per group code (e.g. per quarter), rows in `sort_key` order within each file."""
    order = np.lexsort((sort_key, group))
    g = group[order]
    bounds = np.flatnonzero(np.diff(g)) + 1
    files = []
    for chunk in np.split(order, bounds):
        if chunk.size == 0:
            continue
        idx = pa.array(chunk)
        files.append(LandedFile(brand, entity, names[int(group[chunk[0]])],
                                {k: v.take(idx) for k, v in columns.items()}, person[chunk],
                                dict(ts_style or {})))
    return files


def quarter_labels(secs: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Group code per timestamp and the `YYYYQn` labels of the codes."""
    months = np.asarray(secs, dtype="int64").astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    quarter = months // 3                      # quarters since 1970
    first = int(quarter.min()) if quarter.size else 0
    labels = [f"{1970 + q // 4}Q{q % 4 + 1}" for q in range(first, int(quarter.max()) + 1)] if quarter.size else []
    return quarter - first, labels
