"""The text `crm-pipeline erase` prints: what was removed, per table and export file."""

from __future__ import annotations

import pandas as pd


def render_erasure(removed: pd.DataFrame, identifier_kind: str) -> str:
    """One line per table (or `export:<file>`, `dq_results:samples`) with the rows removed, then the total."""
    if removed.empty:
        kept_out = "" if identifier_kind.startswith("contact") else \
            f"; the {identifier_kind} is kept out of later loads"
        return f"nothing found for this {identifier_kind}{kept_out}"
    width = max(len("total"), int(removed["table"].str.len().max()))
    lines = [f"erased ({identifier_kind}): rows removed per table", *(
        f"  {table:<{width}}  {int(n):>8}" for table, n in zip(removed["table"], removed["rows_removed"]))]
    lines.append(f"  {'total':<{width}}  {int(removed['rows_removed'].sum()):>8}")
    return "\n".join(lines)
