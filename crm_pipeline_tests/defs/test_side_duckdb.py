"""A second DuckDB instance in the run's process (Splink's pass) never destroys what the warehouse spilled."""

import duckdb
import sqlalchemy as sa

from crm_pipeline.defs.resources import WarehouseResource
from crm_pipeline.identity.resolve import PASS_MEMORY_SHARE
from crm_pipeline.warehouse.engine import memory_bytes, memory_lent

ROWS = 2_000_000  # wide enough rows to pass a 128MB memory limit, so both instances spill


def _spill_and_close(settings: dict) -> None:
    """Open, spill and close a connection as the probabilistic pass opens its own (identity.probabilistic)."""
    con = duckdb.connect(":memory:", config={k: str(v) for k, v in settings.items() if v})
    con.execute(f"CREATE TABLE x AS SELECT i, md5(i::VARCHAR) || md5((i + 7)::VARCHAR) AS s FROM range({ROWS}) t(i)")
    con.execute("SELECT COUNT(*) FROM (SELECT * FROM x ORDER BY s)").fetchall()
    con.close()


def test_the_warehouses_spilled_rows_survive_a_side_instance_that_spills_and_closes(tmp_path):
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}", memory_limit="128MB", threads=2,
                                  temp_directory=str(tmp_path / "duckdb_tmp"))
    side = warehouse.side_duckdb_settings("probabilistic")
    assert side["memory_limit"] == "115MB" and side["threads"] == 2  # bounded by the warehouse's limit
    with warehouse.engine.connect() as conn:
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE kept AS SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) "
                             f"AS s FROM range({ROWS}) t(i)"))
        assert any((tmp_path / "duckdb_tmp").iterdir())  # the warehouse spilled its temporary table

        _spill_and_close(side)

        count, largest = conn.execute(sa.text("SELECT COUNT(*), MAX(i) FROM kept")).one()
    assert (count, largest) == (ROWS, ROWS - 1)


def test_the_probabilistic_pass_spills_to_its_own_folder_under_the_warehouses(tmp_path):
    from crm_pipeline.defs.identity_assets import _find_pairs

    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}", memory_limit="1GB",
                                  temp_directory=str(tmp_path / "duckdb_tmp"))

    settings = _find_pairs(warehouse).keywords["duckdb_settings"]

    assert settings["memory_limit"] == "900MB"  # PASS_MEMORY_SHARE of the warehouse's limit
    assert settings["temp_directory"] == str(tmp_path / "duckdb_tmp" / "probabilistic")


def test_while_the_pass_runs_the_warehouse_and_the_pass_share_one_memory_limit(tmp_path):
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}", memory_limit="128MB",
                                  temp_directory=str(tmp_path / "duckdb_tmp"))
    side = memory_bytes(warehouse.side_duckdb_settings("probabilistic")["memory_limit"])
    with warehouse.engine.connect() as conn:
        def limit() -> int:
            return memory_bytes(conn.execute(sa.text("SELECT current_setting('memory_limit')")).scalar_one())

        conn.execute(sa.text(f"CREATE TEMPORARY TABLE kept AS SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) "
                             f"AS s FROM range({ROWS}) t(i)"))
        before = limit()
        with memory_lent(conn, PASS_MEMORY_SHARE):
            lowered = limit()
            _spill_and_close(warehouse.side_duckdb_settings("probabilistic"))
        after = limit()
        count, largest = conn.execute(sa.text("SELECT COUNT(*), MAX(i) FROM kept")).one()
    assert lowered + side <= memory_bytes("128MB") < lowered + side + 2 * 2**20  # together: the one limit
    assert abs(after - before) <= 0.001 * before  # set back (to DuckDB's shown precision)
    assert (count, largest) == (ROWS, ROWS - 1)  # the warehouse's temporary rows came back from the spill


def test_memory_sizes_read_as_the_settings_and_duckdb_write_them():
    assert memory_bytes("4GB") == 4 * 10**9
    assert memory_bytes("3.7 GiB") == int(3.7 * 2**30)
    assert memory_bytes("512 MiB") == 512 * 2**20 and memory_bytes("750MB") == 750 * 10**6
