"""Charts on asset metadata, kept as files under `<home>/charts/<day>/` and drawn again only when their inputs change.

The run's charts (audience sizes, lifecycle moves) are SVG text (crm_pipeline/svg_chart.py), cheap to write, but a
run whose chart data did not change (a re-run of the day with nothing new) still shows the file an earlier run drew
from the same data, so the stored file and the metadata stay the same; the folder holds every chart the assets show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path


def stored_chart(folder: Path, name: str, inputs: str, draw: Callable[[], bytes]) -> bytes:
    """The chart file `folder/name`: read back when it was drawn from the same `inputs` (a text that fixes
    everything the chart shows: its data, labels and the drawing's version), else drawn by `draw()` and stored with
    their digest."""
    path, digest_path = folder / name, folder / f"{name}.inputs"
    digest = hashlib.sha256(inputs.encode()).hexdigest()
    if path.is_file() and digest_path.is_file() and digest_path.read_text() == digest:
        return path.read_bytes()
    chart = draw()
    folder.mkdir(parents=True, exist_ok=True)
    digest_path.unlink(missing_ok=True)      # a run stopped between the two writes leaves no digest: drawn again
    path.write_bytes(chart)
    digest_path.write_text(digest)
    return chart
