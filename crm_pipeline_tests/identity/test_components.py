"""Connected components in the warehouse: every node labelled with its component's smallest key, in few rounds.

The labels are checked against a plain union-find on graphs of every shape the identity graph takes
(chains, stars, cycles, isolated nodes, duplicate and reversed edges, self-loops), on DuckDB and on
PostgreSQL, which run the same statements.
"""

from __future__ import annotations

import math
import random

import pytest
import sqlalchemy as sa

from crm_pipeline.identity.components import ComponentsDidNotConverge, label_components, sqlalchemy_runner


@pytest.fixture
def conn(backend):
    """A connection to a warehouse on each engine (the `backend` fixture)."""
    with backend.connect() as connection:
        yield connection


def smallest_of_component(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """The oracle: union-find, each node named by the smallest node of its set."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [root(x) for x in range(n)]  # the smaller root always wins, so a root is its set's minimum


def components(conn, n: int, edges: list[tuple[int, int]], **options) -> tuple[list[int], int]:
    conn.execute(sa.text("DROP TABLE IF EXISTS t_nodes"))
    conn.execute(sa.text("DROP TABLE IF EXISTS t_edges"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE t_nodes (k BIGINT)"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE t_edges (a BIGINT, b BIGINT)"))
    conn.execute(sa.text("INSERT INTO t_nodes (k) VALUES (:k)"), [{"k": k} for k in range(n)])
    if edges:
        conn.execute(sa.text("INSERT INTO t_edges (a, b) VALUES (:a, :b)"), [{"a": a, "b": b} for a, b in edges])
    rounds = label_components(*sqlalchemy_runner(conn), nodes="t_nodes", edges="SELECT a, b FROM t_edges",
                              out="t_labels", prefix="t_cc", **options)
    labels = conn.execute(sa.text("SELECT k, label FROM t_labels ORDER BY k")).all()
    assert [k for k, _ in labels] == list(range(n))  # every node once
    return [label for _, label in labels], rounds


def test_a_long_chain_is_one_component_after_a_logarithmic_number_of_rounds(conn):
    n = 1024
    order = list(range(n))
    random.Random(3).shuffle(order)  # a path visiting the keys in random order: no help from their ranks
    chain = [(order[i], order[i + 1]) for i in range(n - 1)]
    labels, rounds = components(conn, n, chain)
    assert labels == [0] * n
    # Plain min-label propagation would need up to n - 1 rounds on this path.
    assert 3 <= rounds <= 2 * math.ceil(math.log2(n)), rounds


def test_labels_are_each_components_smallest_key_on_every_shape(conn):
    rng = random.Random(11)
    n = 120
    edges = [(i, i + 1) for i in range(0, 30)]  # a chain
    edges += [(40, j) for j in range(41, 60)]  # a star
    edges += [(60 + i, 60 + (i + 1) % 15) for i in range(15)]  # a cycle
    edges += [(80, 80), (81, 82), (82, 81), (81, 82)]  # a self-loop, a reversed and a duplicated edge
    edges += [(rng.randrange(85, 120), rng.randrange(85, 120)) for _ in range(25)]  # sparse random: several parts
    labels, _ = components(conn, n, edges)
    assert labels == smallest_of_component(n, edges)
    assert labels[83] == 83 and labels[80] == 80  # isolated, and only tied to itself


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_match_union_find(conn, seed):
    rng = random.Random(seed)
    n = rng.randrange(50, 400)
    edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randrange(n // 2, 2 * n))]
    assert components(conn, n, edges)[0] == smallest_of_component(n, edges)


def test_no_edges_leaves_every_node_alone_and_scratch_tables_go(conn):
    labels, rounds = components(conn, 5, [])
    assert (labels, rounds) == ([0, 1, 2, 3, 4], 0)
    names = conn.execute(sa.text("SELECT table_name FROM information_schema.tables")).scalars().all()
    assert sorted(n for n in names if n.startswith("t_")) == ["t_edges", "t_labels", "t_nodes"]


def test_a_round_limit_is_enforced_not_exceeded_silently(conn):
    with pytest.raises(ComponentsDidNotConverge, match="no fixed point after 2 rounds"):
        components(conn, 256, [(i, i + 1) for i in range(255)], max_rounds=2)
