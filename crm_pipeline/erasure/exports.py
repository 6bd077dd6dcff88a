"""Audience export files on disk (`crm-pipeline audiences export --out F`), rewritten without the person.

Exports are written wherever the user pointed `--out` (see `crm_pipeline/audiences/export.py`),
so erasure is told the folder that holds them. Every `.csv` and `.parquet` file under it with
an identifying column is read; rows matching the person (contact id; email or its match key,
normalized; phone as E.164, after undoing the CSV formula escape; the `hashed` format's SHA-256
columns) are dropped. Rewrites go to a hidden file beside the original first and replace it
only after the warehouse transaction commits, so a failed erasure leaves every export as it was.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crm_pipeline.erasure.identifiers import sha256_series
from crm_pipeline.erasure.plan import Person
from crm_pipeline.quality.standardize import standardize_email, standardize_phone

_IDENTIFYING = {"contact_id", "email", "phone", "email_sha256", "phone_sha256"}


@dataclass(frozen=True)
class StagedExport:
    path: Path
    staged: Path
    rows_removed: int

    def label(self, root: Path) -> str:
        return f"export:{self.path.relative_to(root).as_posix()}"

    def commit(self) -> None:
        os.replace(self.staged, self.path)

    def discard(self) -> None:
        self.staged.unlink(missing_ok=True)


def stage_export_rewrites(exports_dir: Path | None, person: Person) -> list[StagedExport]:
    """Write a copy without the person beside every export file that has them; nothing is replaced yet."""
    if exports_dir is None or not Path(exports_dir).is_dir():
        return []
    staged: list[StagedExport] = []
    try:
        for path in sorted(Path(exports_dir).rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix == ".csv":
                staged += _stage_csv(path, person)
            elif path.suffix == ".parquet":
                staged += _stage_parquet(path, person)
    except BaseException:
        for item in staged:
            item.discard()
        raise
    return staged


def person_rows(frame: pd.DataFrame, person: Person) -> np.ndarray:
    """True for rows of an export frame (text columns) that belong to the person."""
    hit = np.zeros(len(frame), dtype=bool)
    values = person.values
    emails = values.get("email", set()) | values.get("email_key", set())
    phones = values.get("phone", set())
    if "contact_id" in frame:
        hit |= frame["contact_id"].astype("string").isin(person.contact_ids).fillna(False).to_numpy(bool)
    if "email" in frame:
        email, _valid, key = standardize_email(frame["email"].astype("string"))
        hit |= (email.isin(emails) | key.isin(emails)).fillna(False).to_numpy(bool)
    if "phone" in frame:
        unescaped = frame["phone"].astype("string").str.removeprefix("'")
        hit |= standardize_phone(unescaped)[0].isin(phones).fillna(False).to_numpy(bool)
    for column, clear in (("email_sha256", values.get("email", set())), ("phone_sha256", phones)):
        if column in frame:
            digests = set(sha256_series(pd.Series(sorted(clear), dtype="string")))
            hit |= frame[column].astype("string").str.lower().isin(digests).fillna(False).to_numpy(bool)
    return hit


def _stage_csv(path: Path, person: Person) -> list[StagedExport]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not _IDENTIFYING & set(frame.columns):
        return []
    hit = person_rows(frame.mask(frame == ""), person)
    if not hit.any():
        return []
    buffer = io.StringIO()  # the same dialect export_audience writes; cells were escaped when first written
    frame[~hit].to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    staged = path.with_name(f".{path.name}.erasure")
    staged.write_text(buffer.getvalue(), encoding="utf-8")
    return [StagedExport(path, staged, int(hit.sum()))]


def _stage_parquet(path: Path, person: Person) -> list[StagedExport]:
    table = pq.read_table(path)
    present = [c for c in table.column_names if c in _IDENTIFYING]
    if not present:
        return []
    hit = person_rows(table.select(present).to_pandas().astype("string"), person)
    if not hit.any():
        return []
    staged = path.with_name(f".{path.name}.erasure")
    pq.write_table(table.filter(pa.array(~hit)), str(staged))
    return [StagedExport(path, staged, int(hit.sum()))]
