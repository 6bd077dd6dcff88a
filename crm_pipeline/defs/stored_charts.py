"""Charts on asset metadata, kept as files under `<home>/charts/<day>/` and drawn again only when their inputs change.

A PNG chart means importing matplotlib (seconds) and rendering; a run whose chart data did not change (a re-run of
the day with nothing new) shows the file an earlier run drew from the same data instead. An SVG chart (written as
text, no import) is kept the same way, so the folder holds every chart the assets show.
"""

from __future__ import annotations

import base64
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


stored_png = stored_chart   # the name the audiences asset calls


def svg_image(svg: bytes, title: str) -> str:
    """An SVG inline as a data URI in Markdown: Dagster's UI shows `data:` images (its sanitizer allows the scheme
    for `src`), and a browser renders an SVG in an <img> without running anything in it."""
    return f"![{title}](data:image/svg+xml;base64,{base64.b64encode(svg).decode()})"
