"""One local Spark session (`local[2]`) for every test in this folder: a JVM start costs tens of seconds."""

from __future__ import annotations

import itertools

import pytest

from crm_pipeline.warehouse.spark import SparkWarehouse, build_session, unavailable_reason

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no Spark here: {reason}")
    # The quick JIT tier and the serial collector: the suite's Spark work is many small queries, where C2
    # compilation and parallel GC threads cost about 40% of the JVM's CPU and save none of its time. The many
    # query shapes (publishing's above all) fill the JIT's default 48 MB code cache, and a full one stops the
    # JIT for good: the rest of the session runs interpreted (publishing on Spark took 58 s there, 42 s with room).
    session = build_session(tmp_path_factory.mktemp("spark_warehouse"), master="local[2]", driver_memory="1g", shuffle_partitions=1,
                            java_options="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m")
    # No generated code: the tests' queries read a few hundred rows each, and compiling every query's Java
    # (whole-stage and per-expression, by Janino) cost more than running it. Spark's interpreted evaluation
    # gives the same rows (its own test suites run every expression both ways); production keeps codegen.
    # A first publish on Spark measured 59 -> 41 s of JVM CPU (warm JVM, alternating runs).
    session.conf.set("spark.sql.codegen.wholeStage", "false")
    session.conf.set("spark.sql.codegen.factoryMode", "NO_CODEGEN")
    yield session
    session.stop()


@pytest.fixture
def spark_warehouse(spark, tmp_path) -> SparkWarehouse:
    """An empty warehouse: its own folder and its own catalog database in the shared session."""
    return SparkWarehouse(spark, tmp_path / "spark_warehouse", database=f"crm_test_{next(_databases)}")
