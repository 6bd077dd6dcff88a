"""Identity's warehouse SQL (connected components, stable contact ids) runs on Spark SQL as rendered from the one
source, with DuckDB's results.

The graph: a long shuffled chain (many rounds), a cycle, a star and isolated nodes; the previous run's ids
are laid so that one cluster merges two ids, one id splits over two clusters and new clusters get new ids.
"""

from __future__ import annotations

import random

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.identity.components import label_components, sqlalchemy_runner
from crm_pipeline.identity.stable_ids import assignment_statements
from crm_pipeline.warehouse.dialects import render
from crm_pipeline.warehouse.engine import make_engine

N = 300
_order = list(range(200))
random.Random(7).shuffle(_order)
EDGES = ([(_order[i], _order[i + 1]) for i in range(199)]  # one component 0..199, reached by a 199-step path
         + [(200 + i, 200 + (i + 1) % 10) for i in range(10)]  # a cycle 200..209
         + [(220, j) for j in range(221, 240)])  # a star 220..239; 240..299 alone
NODES = pd.DataFrame({"node_id": [f"n{k:04d}" for k in range(N)], "k": range(N)})
# Last run: 0..99 were C1 and 100..199 C2 (now one cluster: a merge); 200..204 and 220..224 were C3 (a split).
PREVIOUS = pd.DataFrame({"node_id": [f"n{k:04d}" for k in [*range(200), *range(200, 205), *range(220, 225)]],
                         "contact_id": ["C0000000001"] * 100 + ["C0000000002"] * 100 + ["C0000000003"] * 10})
NEXT_NUMBER = 4
RESULTS = ("SELECT k, label FROM id_final ORDER BY k",
           "SELECT component, contact_id FROM id_contact_of ORDER BY component",
           "SELECT kind, old_contact_id, new_contact_id FROM id_log ORDER BY kind, old_contact_id, new_contact_id")


def resolve(execute, count, query, *, temporary: bool) -> tuple[int, list[pd.DataFrame]]:
    rounds = label_components(execute, count, nodes="id_nodes", edges="SELECT a, b FROM t_edges", out="id_final",
                              prefix="id_cc", temporary=temporary)
    for statement in assignment_statements("CREATE TEMPORARY TABLE" if temporary else "CREATE TABLE"):
        execute(statement)
    return rounds, [query(sql) for sql in RESULTS]


def on_duckdb(tmp_path) -> tuple[int, list[pd.DataFrame]]:
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        for name, frame in {"id_nodes": NODES, "identity_nodes": PREVIOUS,
                            "t_edges": pd.DataFrame(EDGES, columns=["a", "b"])}.items():
            raw.register(f"{name}_frame", frame)
            raw.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_frame")
        execute, count = sqlalchemy_runner(conn)
        bound = lambda sql: conn.execute(sa.text(sql), {"next_number": NEXT_NUMBER})  # noqa: E731
        result = resolve(bound, count, lambda sql: pd.read_sql(sa.text(sql), conn), temporary=True)
    engine.dispose()
    return result


def test_components_and_contact_ids_on_spark_equal_duckdbs(spark, tmp_path):
    spark.sql("CREATE DATABASE IF NOT EXISTS identity_sql_test")
    spark.catalog.setCurrentDatabase("identity_sql_test")
    spark.createDataFrame(NODES.astype({"k": "int64"})).createOrReplaceTempView("id_nodes")
    spark.createDataFrame(PREVIOUS).createOrReplaceTempView("identity_nodes")
    spark.createDataFrame(pd.DataFrame(EDGES, columns=["a", "b"]).astype("int64")).createOrReplaceTempView("t_edges")
    statements: list[str] = []

    def execute(sql: str) -> None:
        statements.append(render(sql, "spark"))
        spark.sql(statements[-1], args={"next_number": NEXT_NUMBER} if ":next_number" in sql else None)

    def count(sql: str) -> int:
        return int(spark.sql(render(sql, "spark")).collect()[0][0])

    def query(sql: str) -> pd.DataFrame:
        return spark.sql(render(sql, "spark")).toPandas()

    rounds, got = resolve(execute, count, query, temporary=False)
    expected_rounds, expected = on_duckdb(tmp_path)
    assert rounds == expected_rounds >= 5  # the 199-step path takes several rounds on either engine
    assert not any(s.upper().startswith(("DELETE", "UPDATE", "MERGE")) for s in statements)
    for left, right in zip(got, expected):
        pd.testing.assert_frame_equal(left.astype(right.dtypes.to_dict()), right)
    labels, contacts, log = expected
    assert set(labels["label"]) == {0, 200, 220, *range(210, 220), *range(240, N)}
    assert dict(zip(contacts["component"], contacts["contact_id"]))[0] == "C0000000001"  # the oldest survives
    assert log.values.tolist() == [["merge", "C0000000002", "C0000000001"], ["split", "C0000000003", "C0000000014"]]
    # New ids follow the highest issued, in the order of the clusters' smallest nodes: 210..219, then 220.
    ids = dict(zip(contacts["component"], contacts["contact_id"]))
    assert (ids[210], ids[219], ids[220]) == ("C0000000004", "C0000000013", "C0000000014")
    for table in ("id_final", "id_holding", "id_owners", "id_contact_of", "id_log"):
        spark.sql(f"DROP TABLE IF EXISTS {table}")
    for view in ("id_nodes", "identity_nodes", "t_edges"):  # the session is shared: leave no table's namesake
        spark.catalog.dropTempView(view)
    spark.catalog.setCurrentDatabase("default")
