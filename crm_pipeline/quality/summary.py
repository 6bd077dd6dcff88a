"""The Markdown summary of Great Expectations results the quality check shows: pandas only, so a run that
validated nothing new does not import Great Expectations to show it."""

from __future__ import annotations

import pandas as pd


def summarize_markdown(results: pd.DataFrame) -> str:
    """A compact Markdown table of validation results for Dagster check metadata."""
    if results.empty:
        return "_no expectations evaluated_"
    several_files = results["file"].nunique() > 1
    lines = ["| expectation | ok | unexpected | % |", "| --- | :-: | --: | --: |"]
    for row in results.itertuples(index=False):
        name = str(row.expectation).replace("|", "\\|")
        if several_files:
            name = f"{row.file}: {name}"
        mark = "✓" if row.success else "✗"
        lines.append(f"| {name} | {mark} | {int(row.unexpected_count):,} | {float(row.unexpected_percent):.2f} |")
    return "\n".join(lines)
