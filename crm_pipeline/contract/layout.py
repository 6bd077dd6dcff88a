"""Where a file lands and what it must be called: `landing/<brand>/<entity>/<file>.<ext>`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from crm_pipeline.contract.entities import ENTITIES

# Longest suffix first so `x.csv.gz` is read as gzip-compressed CSV, not as `.gz`.
FORMATS: dict[str, str] = {".csv.gz": "csv.gz", ".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
BRAND_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Names writers use while a file is still being written: ignored until renamed.
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart", "~")


@dataclass(frozen=True)
class FilePlace:
    """What a landed file's place says about it, or why it fits no entity."""

    path: str  # relative to the landing folder, with '/' separators
    brand: str | None
    entity: str | None
    format: str | None
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None


def is_in_progress(name: str) -> bool:
    """Dotfiles and temp names are files still being written (or not ours): wait, don't read."""
    return name.startswith(".") or name.startswith("~") or name.lower().endswith(IN_PROGRESS_SUFFIXES)


def file_format(name: str) -> str | None:
    lower = name.lower()
    for suffix, fmt in FORMATS.items():
        if lower.endswith(suffix):
            return fmt
    return None


def classify(relative_path: str) -> FilePlace:
    """Read brand, entity and format off a path relative to the landing folder."""
    parts = PurePosixPath(relative_path).parts
    if len(parts) != 3:
        return FilePlace(relative_path, None, None, None,
                         f"{relative_path}: not in the <brand>/<entity>/<file> layout")
    brand, entity, name = parts
    fmt = file_format(name)
    if not BRAND_PATTERN.match(brand):
        return FilePlace(relative_path, None, None, fmt,
                         f"{relative_path}: brand folder {brand!r} is not a lowercase slug (a-z, 0-9, _ and -)")
    if entity not in ENTITIES:
        return FilePlace(relative_path, brand, None, fmt,
                         f"{relative_path}: {entity!r} is not an entity of the contract ({', '.join(ENTITIES)})")
    if fmt is None:
        return FilePlace(relative_path, brand, entity, None,
                         f"{relative_path}: unsupported file type; expected one of {', '.join(FORMATS)}")
    return FilePlace(relative_path, brand, entity, fmt)
