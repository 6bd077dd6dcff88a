"""The one non-portable piece of the audience SQL: a hex SHA-256 of text, spelled per backend."""

from __future__ import annotations

import sqlalchemy as sa


def sha256_hex(bind: sa.Connection | sa.Engine, expr: str) -> str:
    """SQL for the lowercase hex SHA-256 of the UTF-8 text `expr` (a fixed expression, never user input)."""
    name = bind.dialect.name
    if name == "duckdb":
        return f"sha256({expr})"
    if name == "postgresql":
        return f"encode(sha256(convert_to({expr}, 'UTF8')), 'hex')"
    if name in ("trino", "spark", "databricks"):
        return f"lower(to_hex(sha256(to_utf8({expr}))))" if name == "trino" else f"sha2({expr}, 256)"
    raise NotImplementedError(f"sha256_hex: no spelling for the {name} backend yet")
