"""Connected components of the identity graph, computed in the warehouse in portable SQL.

The graph never leaves the engine: nodes are integer keys, edges a table of key pairs, and the
components come from alternating *large-star* and *small-star* rounds (Kiveris et al., "Connected
Components in MapReduce and Beyond", 2014), each a CREATE TABLE AS over the edge set. Every round keeps
the graph's connectivity and moves each node's edges towards the smallest key it can see; the rounds end
when every component is a star around its smallest key, which takes O(log² n) rounds (a chain of n nodes,
the worst shape for plain min-label propagation, converges in about log₂ n). The labels are therefore the
smallest key of each component, whatever the input order, as SciPy's labelling gave before.

The same statements run on DuckDB and PostgreSQL as written and on Spark SQL through
`crm_pipeline.warehouse.dialects.render` (no UPDATE or DELETE: each round is a new table). DuckDB and
PostgreSQL get session-private temporary tables; Spark's temporary views are lazy (each round would
re-plan every earlier one), so there the rounds are plain tables (`temporary=False`).
"""

from __future__ import annotations

from collections.abc import Callable

MAX_ROUNDS = 64  # far above the O(log² n) a graph of billions of nodes needs; a bug, not data, would pass it


class ComponentsDidNotConverge(RuntimeError):
    """The rounds exceeded MAX_ROUNDS (they cannot on a finite graph unless the SQL is wrong)."""


def label_components(execute: Callable[[str], object], count: Callable[[str], int], *, nodes: str, edges: str,
                     out: str, prefix: str, temporary: bool = True, max_rounds: int = MAX_ROUNDS) -> int:
    """Create table `out` (k, label): for every key `k` of table `nodes`, the smallest key of its component.

    `edges` is a SELECT of key pairs (a, b) in any direction, duplicates and self-loops allowed; pairs
    whose keys are not in `nodes` must not be given. `execute` runs one statement, `count` returns the
    single integer a query yields. Scratch tables are named `<prefix>_*` and dropped at the end.
    Returns the number of rounds (one large-star and one small-star each).
    """
    create = "CREATE TEMPORARY TABLE" if temporary else "CREATE TABLE"
    scratch = [f"{prefix}_e", f"{prefix}_d", f"{prefix}_l", f"{prefix}_s"]
    for table in (*scratch, out):
        execute(f"DROP TABLE IF EXISTS {table}")
    # The edges once, as given: an `a <> b` over a join of `edges` could otherwise be pushed into it, and
    # with no statistics on scratch tables DuckDB then joins the node table with itself (a nested loop).
    execute(f"{create} {prefix}_e AS SELECT a, b FROM ({edges}) e")
    # Both directions of every edge, once: a node's neighbourhood is then the rows where it is `u`.
    execute(f"{create} {prefix}_d AS SELECT a AS u, b AS v FROM {prefix}_e WHERE a <> b "
            f"UNION SELECT b, a FROM {prefix}_e WHERE a <> b")
    execute(f"DROP TABLE {prefix}_e")
    rounds = 0
    while count(f"SELECT COUNT(*) FROM {prefix}_d") and not _is_star_forest(count, f"{prefix}_d"):
        rounds += 1
        if rounds > max_rounds:
            raise ComponentsDidNotConverge(f"connected components: no fixed point after {max_rounds} rounds")
        # Large star: every neighbour larger than u is tied to the smallest of u and its neighbours.
        execute(f"DROP TABLE IF EXISTS {prefix}_l")
        execute(f"""{create} {prefix}_l AS
            WITH m AS (SELECT u, MIN(v) AS m FROM {prefix}_d GROUP BY u),
            s AS (SELECT d.v AS x, LEAST(m.m, d.u) AS y FROM {prefix}_d d JOIN m ON m.u = d.u WHERE d.v > d.u)
            SELECT x AS u, y AS v FROM s UNION SELECT y, x FROM s""")
        # Small star: u and its smaller neighbours are all tied to the smallest of them.
        execute(f"DROP TABLE IF EXISTS {prefix}_s")
        execute(f"""{create} {prefix}_s AS
            WITH m AS (SELECT u, MIN(v) AS m FROM {prefix}_l WHERE v < u GROUP BY u),
            s AS (SELECT l.v AS x, m.m AS y FROM {prefix}_l l JOIN m ON m.u = l.u WHERE l.v < l.u AND l.v <> m.m
                  UNION ALL SELECT u, m FROM m)
            SELECT x AS u, y AS v FROM s UNION SELECT y, x FROM s""")
        execute(f"DROP TABLE {prefix}_d")
        execute(f"{create} {prefix}_d AS SELECT u, v FROM {prefix}_s")
    execute(f"""{create} {out} AS
        SELECT n.k, COALESCE(s.v, n.k) AS label FROM {nodes} n
        LEFT JOIN (SELECT u, MIN(v) AS v FROM {prefix}_d WHERE v < u GROUP BY u) s ON s.u = n.k""")
    for table in scratch:
        execute(f"DROP TABLE IF EXISTS {table}")
    return rounds


def _is_star_forest(count: Callable[[str], int], d: str) -> bool:
    """Every component a star around its smallest key: no node has two smaller neighbours, and no node is both
    a smaller neighbour (a centre) and has a smaller neighbour itself. Linear: a hub's edges are never paired."""
    return not count(f"""SELECT COUNT(*) FROM (
        SELECT u FROM {d} WHERE v < u GROUP BY u HAVING COUNT(*) > 1
        UNION ALL
        SELECT c.u FROM (SELECT DISTINCT u FROM {d} WHERE v < u) c
        JOIN (SELECT DISTINCT v FROM {d} WHERE v < u) p ON p.v = c.u) bad""")


def sqlalchemy_runner(conn) -> tuple[Callable[[str], object], Callable[[str], int]]:
    """`execute` and `count` for `label_components` on a SQLAlchemy connection (DuckDB, PostgreSQL)."""
    import sqlalchemy as sa

    return (lambda sql: conn.execute(sa.text(sql)),
            lambda sql: int(conn.execute(sa.text(sql)).scalar_one()))
