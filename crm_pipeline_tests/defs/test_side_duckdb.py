"""A second DuckDB instance in the run's process (Splink's pass) never destroys what the warehouse spilled."""

import duckdb
import sqlalchemy as sa

from crm_pipeline.defs.resources import WarehouseResource

ROWS = 2_000_000  # wide enough rows to pass a 64MB memory limit, so both instances spill


def _spill_and_close(settings: dict) -> None:
    """Open, spill and close a connection as the probabilistic pass opens its own (identity.probabilistic)."""
    con = duckdb.connect(":memory:", config={k: str(v) for k, v in settings.items() if v})
    con.execute(f"CREATE TABLE x AS SELECT i, md5(i::VARCHAR) || md5((i + 7)::VARCHAR) AS s FROM range({ROWS}) t(i)")
    con.execute("SELECT COUNT(*) FROM (SELECT * FROM x ORDER BY s)").fetchall()
    con.close()


def test_the_warehouses_spilled_rows_survive_a_side_instance_that_spills_and_closes(tmp_path):
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}", memory_limit="64MB", threads=2,
                                  temp_directory=str(tmp_path / "duckdb_tmp"))
    side = warehouse.side_duckdb_settings("probabilistic")
    assert side["memory_limit"] == "64MB" and side["threads"] == 2  # bounded as the warehouse is
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

    assert settings["memory_limit"] == "1GB"
    assert settings["temp_directory"] == str(tmp_path / "duckdb_tmp" / "probabilistic")
