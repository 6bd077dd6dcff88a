"""Charts on asset metadata, kept as PNGs under `<home>/charts/<day>/` and drawn again only when their inputs change.

Drawing means importing matplotlib (seconds) and rendering; a run whose chart data did not change (a re-run of the
day with nothing new) shows the PNG an earlier run drew from the same data instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path


def stored_png(folder: Path, name: str, inputs: str, draw: Callable[[], bytes]) -> bytes:
    """The PNG `folder/name`: read back when it was drawn from the same `inputs` (a text that fixes everything the
    chart shows: its data, labels and the drawing's version), else drawn by `draw()` and stored with their digest."""
    path, digest_path = folder / name, folder / f"{name}.inputs"
    digest = hashlib.sha256(inputs.encode()).hexdigest()
    if path.is_file() and digest_path.is_file() and digest_path.read_text() == digest:
        return path.read_bytes()
    png = draw()
    folder.mkdir(parents=True, exist_ok=True)
    digest_path.unlink(missing_ok=True)      # a run stopped between the two writes leaves no digest: drawn again
    path.write_bytes(png)
    digest_path.write_text(digest)
    return png
