"""The non-portable pieces of the audience SQL: a hex SHA-256 of text and a row digest, spelled per backend."""

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


def row_digest(bind: sa.Connection | sa.Engine, terms: list) -> sa.ColumnElement:
    """A BIGINT digest of the values `terms` (SQL expressions) of a row, spelled per backend: DuckDB's 64-bit `hash`
    halved into BIGINT's range, 60 bits of PostgreSQL's MD5 of the row's text, Spark's `xxhash64`. Compared with
    the digest of the same row on the same backend only (the stage's memory of its last run)."""
    name = bind.dialect.name
    if name == "duckdb":
        return sa.cast(sa.func.hash(*terms).op(">>")(1), sa.BigInteger())
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import BIT  # noqa: PLC0415 (the one backend that needs it)

        md5 = sa.func.md5(sa.cast(sa.func.ROW(*terms), sa.Text()))
        return sa.cast(sa.cast(sa.literal("x", sa.Text()).concat(sa.func.substr(md5, 1, 15)), BIT(60)),
                       sa.BigInteger())
    if name in ("spark", "databricks"):
        return sa.func.xxhash64(*terms)
    raise NotImplementedError(f"row_digest: no spelling for the {name} backend yet")
