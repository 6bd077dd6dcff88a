"""Warehouse tuning and the partitions' first day: settings that reach the engine and the Dagster definitions."""

import subprocess
import sys
from datetime import date

import pytest
import sqlalchemy as sa

from crm_pipeline.defs.resources import default_resources
from crm_pipeline.settings import SettingsError, load_settings
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the session's server)


def _duckdb_settings(conn: sa.Connection) -> tuple:
    return conn.execute(sa.text("SELECT current_setting('memory_limit'), current_setting('threads'), "
                                "current_setting('temp_directory')")).one()


def test_memory_threads_and_spill_folder_reach_every_duckdb_connection(tmp_path):
    config = tmp_path / "crm.yaml"
    config.write_text("warehouse_memory_limit: 1GiB\nwarehouse_threads: 1\n", encoding="utf-8")
    settings = load_settings(config, env={"CRM_HOME_DIR": str(tmp_path / "home")},
                             warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    expected = ("1.0 GiB", 1, str(tmp_path / "home" / "duckdb_tmp"))
    engine = make_engine(settings.warehouse_url, **settings.engine_options)  # the command line's engines
    with engine.connect() as first, engine.connect() as second:
        assert _duckdb_settings(first) == expected and _duckdb_settings(second) == expected
    engine.dispose()
    resource = default_resources(settings)["warehouse"]  # the engine every asset uses
    with resource.engine.connect() as conn:
        assert _duckdb_settings(conn) == expected
    resource.engine.dispose()


def test_without_tuning_duckdb_keeps_its_own_defaults_and_spills_under_the_home_folder(tmp_path):
    settings = load_settings(env={}, home_dir=tmp_path, warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert settings.warehouse_memory_limit == "" and settings.warehouse_threads == 0
    bare = make_engine(f"duckdb:///{tmp_path / 'bare.duckdb'}")
    with bare.connect() as conn:
        default_limit, default_threads, _ = _duckdb_settings(conn)
    bare.dispose()
    engine = make_engine(settings.warehouse_url, **settings.engine_options)
    with engine.connect() as conn:
        assert _duckdb_settings(conn) == (default_limit, default_threads, str(tmp_path / "duckdb_tmp"))
    engine.dispose()


def test_a_query_larger_than_the_memory_limit_spills_into_a_fresh_home_folder(tmp_path):
    settings = load_settings(env={}, home_dir=tmp_path / "new" / "home", warehouse_memory_limit="32MB",
                             warehouse_threads=1, warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    engine = make_engine(settings.warehouse_url, **settings.engine_options)
    with engine.connect() as conn:  # a sort of about 50 MB: it must spill to <home_dir>/duckdb_tmp
        sorted_rows = conn.execute(sa.text("SELECT COUNT(*) FROM (SELECT i, md5(CAST(i AS VARCHAR)) AS h "
                                           "FROM range(1000000) t(i) ORDER BY h OFFSET 1) s")).scalar_one()
    engine.dispose()
    assert sorted_rows == 999_999


@pytest.mark.parametrize("yaml_text, key", [
    ("warehouse_memory_limit: lots\n", "warehouse_memory_limit"),
    ("warehouse_memory_limit: \"1GB'; DROP TABLE files; --\"\n", "warehouse_memory_limit"),
    ("warehouse_threads: -1\n", "warehouse_threads"),
    ("partition_start_date: long ago\n", "partition_start_date"),
])
def test_bad_warehouse_or_partition_settings_name_the_key(tmp_path, yaml_text, key):
    config = tmp_path / "crm.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(SettingsError, match=key):
        load_settings(config, env={})


def test_the_daily_partitions_start_on_the_configured_day(tmp_path):
    assert load_settings(env={}).partition_start_date == date(1990, 1, 1)
    config = tmp_path / "crm.yaml"
    config.write_text("partition_start_date: 1985-03-01\n", encoding="utf-8")
    # Dagster reads the definitions (and so the partitions) when it loads the code: a fresh process.
    shown = subprocess.run(
        [sys.executable, "-c", "from crm_pipeline.defs.partitions import DAILY; "
                               "print(DAILY.get_first_partition_key(), DAILY.has_partition_key('1985-02-28'))"],
        env={"CRM_CONFIG": str(config), "PATH": ""}, capture_output=True, text=True, timeout=120)
    assert shown.stdout.split() == ["1985-03-01", "False"], shown.stderr


def test_postgresql_ignores_the_duckdb_tuning(tmp_path, postgres_server):
    settings = load_settings(env={}, home_dir=tmp_path, warehouse_url=postgres_server.create_database("tuning"),
                             warehouse_memory_limit="1GB", warehouse_threads=1)
    engine = make_engine(settings.warehouse_url, **settings.engine_options)
    with engine.connect() as conn:  # PostgreSQL would refuse `SET memory_limit`: nothing of it is sent
        assert conn.execute(sa.text("SELECT current_setting('TimeZone')")).scalar_one() == "UTC"
    engine.dispose()


def test_settings_built_directly_with_text_paths_spill_under_their_home(tmp_path):
    from crm_pipeline.settings import Settings

    settings = Settings(home_dir=str(tmp_path), warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert settings.engine_options["temp_directory"] == str(tmp_path / "duckdb_tmp")
