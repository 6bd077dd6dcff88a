"""Looking at the drop folder: which files are there, safely inside it, in a stable order.

The folder is reached through `LandingFolder` so the Dagster layer can swap a local
folder for object storage later without touching the domain code.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_module
from dataclasses import dataclass
from pathlib import Path

from crm_pipeline.contract import is_in_progress

_HASH_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class LandedFile:
    path: str  # relative to the landing folder, '/' separated
    size: int
    mtime_ns: int

    @property
    def signature(self) -> str:
        """Changes whenever the file is rewritten; cheap to compare across sensor ticks."""
        return f"{self.size}:{self.mtime_ns}"


@dataclass(frozen=True)
class ScanPage:
    files: list[LandedFile]  # candidates in path order (in-progress names already left out)
    in_progress: list[str]  # temp names and dotfiles seen on this page: not yet ours to read
    refused: list[tuple[str, str]]  # (path, reason): links that lead out of the folder
    next_after: str | None  # where the next page starts; None when the folder was read to its end


class PathOutsideLanding(ValueError):
    """A path that resolves outside the landing folder (`..` or a symlink out)."""


class LandingFolder:
    """A local drop folder: list, stat, hash and resolve files, never leaving the folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def resolve(self, relative_path: str) -> Path:
        """The real path of a file in the folder; refuses anything that escapes it."""
        candidate = (self.root / relative_path).resolve()
        if not candidate.is_relative_to(self.root):
            raise PathOutsideLanding(f"{relative_path}: resolves outside the landing folder {self.root}")
        return candidate

    def list_paths(self) -> list[str]:
        """Every file path below the root, sorted; dot-folders are skipped (tooling, not drops)."""
        if not self.root.is_dir():
            return []
        found: list[str] = []
        for folder, dirs, names in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel_folder = Path(folder).relative_to(self.root).as_posix()
            prefix = "" if rel_folder == "." else rel_folder + "/"
            found.extend(prefix + name for name in names)
        found.sort()
        return found

    def scan(self, *, after: str | None = None, limit: int | None = None) -> ScanPage:
        """One page of the folder in path order, starting after `after`.

        The walk does not follow links into folders, so only a file that is itself a link needs
        resolving to be sure it stays inside the folder (a sensor tick may page 50,000 files)."""
        paths = [p for p in self.list_paths() if after is None or p > after]
        page = paths if limit is None else paths[:limit]
        next_after = page[-1] if limit is not None and len(paths) > limit else None
        files, in_progress, refused = [], [], []
        for rel in page:
            if is_in_progress(rel.rsplit("/", 1)[-1]):
                in_progress.append(rel)
                continue
            try:
                found = os.lstat(self.root / rel)
                if stat_module.S_ISLNK(found.st_mode):  # only a link can lead out of the folder
                    found = self.resolve(rel).stat()
            except PathOutsideLanding as exc:
                refused.append((rel, str(exc)))
                continue
            except FileNotFoundError:  # removed, or a dangling link, between listing and stat
                continue
            if stat_module.S_ISREG(found.st_mode):
                files.append(LandedFile(rel, found.st_size, found.st_mtime_ns))
        return ScanPage(files, in_progress, refused, next_after)

    def stat(self, relative_path: str) -> LandedFile:
        stat = self.resolve(relative_path).stat()
        return LandedFile(relative_path, stat.st_size, stat.st_mtime_ns)

    def sha256(self, relative_path: str) -> str:
        digest = hashlib.sha256()
        with self.resolve(relative_path).open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
