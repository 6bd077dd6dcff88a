"""Reading the same tables from a DuckDB warehouse and a Spark one, and what differs between them (the Spark
parity tests' one comparison: the PostgreSQL parity suite's, with floats to the issue's 1e-6)."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

import crm_pipeline_tests.postgres.test_parity as parity
from crm_pipeline.warehouse.spark import SparkWarehouse


def duckdb_tables(engine: sa.Engine, names: list[str]) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        return {name: pd.read_sql(sa.text(f'SELECT * FROM "{name}"'), conn) for name in names}


def spark_tables(warehouse: SparkWarehouse, names: list[str]) -> dict[str, pd.DataFrame]:
    return {name: warehouse.spark.table(warehouse.qualified(name)).toPandas() for name in names}


def mismatches(duck: dict[str, pd.DataFrame], spark: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Per table what differs, floats to a relative 1e-6 ('PostgreSQL' in the messages is the Spark side)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parity, "FLOAT_RTOL", 1e-6)
        return {name: found for name in duck if (found := parity.compare(duck[name], spark[name]))}
