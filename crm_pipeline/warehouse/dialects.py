"""One source of stage SQL for every engine: written once, rendered for DuckDB, PostgreSQL or Spark SQL.

Stage SQL is written once, in the subset of SQL DuckDB and PostgreSQL both run (the PostgreSQL parity
suite holds it to that), with SQLAlchemy's `:name` bound parameters. DuckDB and PostgreSQL run it as
written. Spark SQL gets it transpiled by SQLGlot from the DuckDB dialect, plus the few rewrites SQLGlot
leaves out (below); `:name` parameters stay, since `SparkSession.sql(text, args=...)` binds them by name.

What does not carry over is refused here rather than failing inside Spark: Spark's Parquet tables have
no DELETE, UPDATE or MERGE (no Delta Lake here), so a stage replaces what it rewrites by overwriting a
table or a partition (`crm_pipeline.warehouse.spark`), not by delete-then-insert.
"""

from __future__ import annotations

from functools import lru_cache

# SQLGlot is imported where Spark needs it: DuckDB and PostgreSQL run the SQL as written, and its import
# (0.2-0.3 s of CPU) would otherwise be paid by every `crm-pipeline run`.

ENGINES = ("duckdb", "postgres", "spark")
SOURCE_DIALECT = "duckdb"


class NotPortable(ValueError):
    """A statement the target engine cannot run as such; the message says what to do instead."""


def engine_name(bind) -> str:
    """The engine a SQLAlchemy engine/connection or a SparkSession runs ('duckdb', 'postgres', 'spark')."""
    dialect = getattr(bind, "dialect", None)
    if dialect is not None:
        return "postgres" if dialect.name == "postgresql" else dialect.name
    if type(bind).__name__ == "SparkSession":  # classic or Spark Connect, without importing pyspark
        return "spark"
    raise TypeError(f"not a warehouse connection: {type(bind).__name__}")


def render(sql: str, engine: str) -> str:
    """`sql` (one or more statements, DuckDB dialect, `:name` parameters) as `engine` runs it."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if engine != "spark":
        return sql  # the common subset runs on both as written
    return _to_spark(sql)


@lru_cache(maxsize=512)
def _to_spark(sql: str) -> str:
    """Cached: stages render the same few statements on every run."""
    import sqlglot

    statements = [s for s in sqlglot.parse(sql, read=SOURCE_DIALECT) if s is not None]
    return ";\n".join(_refuse_row_edits(s).transform(_spark_rewrite).sql(dialect="spark") for s in statements)


def qualify_tables(spark_sql: str, database: str) -> str:
    """Spark SQL with every table it names, other than its CTEs, in `database`. A catalog view needs it: its
    body is resolved whenever it is read, and an unqualified name would then find a session's temporary view
    of that name before the table."""
    import sqlglot
    from sqlglot import exp

    statements = []
    for statement in sqlglot.parse(spark_sql, read="spark"):
        ctes = {cte.alias for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if not table.args.get("db") and table.name not in ctes:
                table.set("db", exp.to_identifier(database))
        statements.append(statement.sql(dialect="spark"))
    return ";\n".join(statements)


def _refuse_row_edits(statement):
    from sqlglot import exp

    if isinstance(statement, exp.Delete | exp.Update | exp.Merge):
        kind = type(statement).__name__.upper()
        raise NotPortable(f"{kind} does not run on Spark's Parquet tables: compute the rows to keep as a SELECT and "
                          "overwrite the table or partition with it (crm_pipeline.warehouse.spark)")
    return statement


def _spark_rewrite(node):
    """Rewrites SQLGlot does not make for Spark.

    EXTRACT(EPOCH FROM ts): Spark has no EPOCH field. The same seconds as a DOUBLE (with fractions, as
    DuckDB and PostgreSQL give them) are its microseconds since the epoch / 1e6; a DATE is taken at
    midnight UTC (the session time zone, see `spark.session_config`)."""
    from sqlglot import exp

    if isinstance(node, exp.Extract) and node.this.name.upper() == "EPOCH":
        micros = exp.func("UNIX_MICROS", exp.cast(node.expression, exp.DataType.Type.TIMESTAMP))
        return exp.Div(this=exp.cast(micros, exp.DataType.Type.DOUBLE), expression=exp.Literal.number(1_000_000))
    return node


def column_type(sa_type, engine: str) -> str:
    """A SQLAlchemy column type as `engine` spells it in DDL (the table definitions stay in `warehouse/*_schema`)."""
    from sqlalchemy.dialects import postgresql
    from duckdb_engine import Dialect as DuckDBDialect
    from sqlglot import exp

    if engine == "postgres":
        return sa_type.compile(dialect=postgresql.dialect())
    duck = sa_type.compile(dialect=DuckDBDialect())
    return duck if engine == "duckdb" else exp.DataType.build(duck, dialect=SOURCE_DIALECT).sql(dialect="spark")
