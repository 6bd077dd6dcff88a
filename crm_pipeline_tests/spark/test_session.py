"""The Spark session's settings and the reason a machine without Spark gives (no JVM started here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crm_pipeline.warehouse.spark import session_config, unavailable_reason, warehouse_location


def test_every_session_cuts_days_in_utc_overwrites_partitions_and_carries_splinks_jar(tmp_path):
    config = session_config(str(tmp_path), driver_memory="3g", shuffle_partitions=6)
    assert config["spark.sql.session.timeZone"] == "UTC"
    assert config["spark.sql.sources.partitionOverwriteMode"] == "dynamic"
    assert Path(config["spark.jars"]).is_file() and config["spark.jars"].endswith(".jar")
    assert config["spark.driver.memory"] == "3g" and config["spark.sql.shuffle.partitions"] == "6"


def test_a_cluster_session_leaves_driver_memory_to_the_cluster():
    config = session_config("s3a://bucket/crm", local=False)
    assert "spark.driver.memory" not in config and "spark.sql.shuffle.partitions" not in config
    assert config["spark.sql.warehouse.dir"] == "s3a://bucket/crm"


def test_a_local_warehouse_folder_is_made_absolute_and_created_and_a_uri_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert warehouse_location("wh/spark") == str(tmp_path / "wh" / "spark") and (tmp_path / "wh/spark").is_dir()
    assert warehouse_location("s3a://bucket/crm/") == "s3a://bucket/crm"


def test_without_java_the_reason_says_what_to_install(tmp_path, monkeypatch):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # no bin/java there
    assert "openjdk-17-jre-headless" in unavailable_reason()


def test_without_pyspark_the_reason_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now raises ImportError
    assert unavailable_reason() == "pyspark is not installed (pip install '.[spark]')"
