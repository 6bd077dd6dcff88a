"""The comparison budget counts only pairs that will be scored: records already in one deterministic cluster
(a person's customer and subscriber records, sharing a name) are never scored, so they spend no budget."""

from __future__ import annotations

import duckdb

from crm_pipeline.identity.blocking import BlockingBudget, plan_blocking

RULES = (("last", "first"),)
OTHER_CLUSTER = "l.cluster <> r.cluster"


def _table(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE people (id VARCHAR, cluster VARCHAR, last VARCHAR, first VARCHAR)")
    con.executemany("INSERT INTO people VALUES (?, ?, ?, ?)", rows)
    return con


def _scored(con) -> set[tuple[str, str]]:
    return set(con.sql("SELECT l.id, r.id FROM people l JOIN people r ON l.block_0 = r.block_0 "
                       f"AND {OTHER_CLUSTER} AND l.id < r.id").fetchall())


def test_pairs_inside_one_cluster_are_not_counted_and_a_block_of_one_cluster_pairs_nobody():
    # smith/ann: 4 records in 2 clusters of 2 (6 pairs, 2 inside a cluster); jones/bob: 3 records of one person.
    rows = [("a1", "c1", "smith", "ann"), ("a2", "c1", "smith", "ann"), ("a3", "c2", "smith", "ann"),
            ("a4", "c2", "smith", "ann"), ("b1", "c3", "jones", "bob"), ("b2", "c3", "jones", "bob"),
            ("b3", "c3", "jones", "bob")]
    con = _table(rows)
    plan = plan_blocking(con, "people", RULES, BlockingBudget(), extra_condition=OTHER_CLUSTER, group="cluster")

    assert plan.comparisons == 4 == len(_scored(con))
    assert con.sql("SELECT count(*) FROM people WHERE id LIKE 'b%' AND block_0 IS NOT NULL").fetchone()[0] == 0


def test_a_budget_spent_only_on_scored_pairs_keeps_a_block_the_raw_count_would_cut():
    # One block of 10 records, 8 of them one person's records: 45 pairs, of which 28 inside that cluster.
    rows = [(f"p{i}", "c0", "smith", "ann") for i in range(8)] + [("q1", "c1", "smith", "ann"),
                                                                   ("q2", "c2", "smith", "ann")]
    budget = BlockingBudget(comparisons_per_record=2)  # 20 pairs allowed
    counted = plan_blocking(_table(rows), "people", RULES, budget, extra_condition=OTHER_CLUSTER, group="cluster")
    raw = plan_blocking(_table(rows), "people", RULES, budget, extra_condition=OTHER_CLUSTER)

    assert counted.report.loc[0, "status"] == "kept" and counted.comparisons == 45 - 28
    assert raw.report.loc[0, "status"] == "skipped" and raw.comparisons == 0
