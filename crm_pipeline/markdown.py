"""Markdown for people: tables and inline chart images, for the CLI and Dagster metadata."""

from __future__ import annotations

import base64

import pandas as pd


def to_markdown(frame: pd.DataFrame) -> str:
    """A plain Markdown table (no extra dependency), for the CLI and Dagster metadata."""
    if frame.empty:
        return "_no rows_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def figure_png(figure, **savefig) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed, so a long-running process does not leak them."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig)
    plt.close(figure)
    return buffer.getvalue()


def image(data: bytes, title: str, mime: str = "image/png") -> str:
    """A chart inline as a data URI, so it travels inside Markdown metadata: Dagster's UI shows `data:` images (its
    sanitizer allows the scheme for `src`), and a browser renders an SVG in an <img> without running anything in it."""
    return f"![{title}](data:{mime};base64,{base64.b64encode(data).decode()})"


def svg_image(svg: bytes, title: str) -> str:
    return image(svg, title, "image/svg+xml")
