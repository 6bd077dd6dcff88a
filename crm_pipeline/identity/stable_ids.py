"""Stable contact ids, assigned in the warehouse: a cluster keeps its id across runs; on a merge the oldest survives.

Ids are `C` + a zero-padded sequence number, so "oldest" is simply the smallest number.
Each previous id is owned by the new cluster holding most of its nodes (ties: the cluster with
the smallest node id); a cluster that owns several previous ids keeps the oldest and records the
others as merged into it; a cluster that owns none gets a new id, numbered after the highest ever
issued in the order of the clusters' smallest node ids (any keys ordered as the node ids, in blocks:
`KEY_BLOCK`), and any previous ids among its nodes are recorded as split from it.

The statements read the final components `id_final` (k, label) and the node keys `id_nodes` of
`graph.py` and the stored `identity_nodes`, and leave `id_contact_of` (component, contact_id) and
`id_log` (kind, old_contact_id, new_contact_id): portable SQL, one CREATE TABLE AS per step.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

ID_PREFIX = "C"
ID_DIGITS = 10
# New ids are numbered within blocks of this many node keys, each block after the ones before it (their counts
# summed over the few blocks), so no step ranks every new cluster in one sorted list: on Spark that is one task.
# DuckDB and PostgreSQL number nodes 1..n (one block); Spark numbers them per sorted partition, the partition in
# the bits above 2^33 (`monotonically_increasing_id`, spark/identity.py), so a block is a partition there.
KEY_BLOCK = 2 ** 33
SCRATCH = ("id_holding", "id_owners", "id_contact_of", "id_log")


def id_number(contact_ids: pd.Series) -> pd.Series:
    return contact_ids.str.slice(len(ID_PREFIX)).astype("int64")


def id_number_sql(column: str) -> str:
    return f"CAST(SUBSTR({column}, {len(ID_PREFIX) + 1}) AS BIGINT)"


def format_id_sql(number: str) -> str:
    """The contact id of sequence number `number` (LPAD alone would cut a number longer than the padding)."""
    text = f"CAST({number} AS VARCHAR)"
    return (f"'{ID_PREFIX}' || CASE WHEN LENGTH({text}) >= {ID_DIGITS} THEN {text} "
            f"ELSE LPAD({text}, {ID_DIGITS}, '0') END")


def assignment_statements(create: str = "CREATE TEMPORARY TABLE") -> list[str]:
    """The statements, in order; `:next_number` is the first number a new id may take."""
    return [
        # Which previous ids' nodes each component holds, and how many.
        f"""{create} id_holding AS
        SELECT p.contact_id AS previous, f.label AS component, COUNT(*) AS nodes
        FROM identity_nodes p JOIN id_nodes n ON n.node_id = p.node_id JOIN id_final f ON f.k = n.k
        GROUP BY p.contact_id, f.label""",
        # Each previous id's owner: the component holding most of its nodes.
        f"""{create} id_owners AS
        SELECT previous, component, number FROM (
            SELECT previous, component, {id_number_sql('previous')} AS number,
                   ROW_NUMBER() OVER (PARTITION BY previous ORDER BY nodes DESC, component) AS r
            FROM id_holding) h
        WHERE r = 1""",
        # A component keeps the oldest id it owns; the others get new numbers in component order.
        f"""{create} id_contact_of AS
        WITH kept AS (
            SELECT component, previous FROM (
                SELECT component, previous, ROW_NUMBER() OVER (PARTITION BY component ORDER BY number) AS r
                FROM id_owners) o
            WHERE r = 1),
        fresh_components AS (
            SELECT c.component, c.component - c.component % {KEY_BLOCK} AS block
            FROM (SELECT DISTINCT label AS component FROM id_final) c
            LEFT JOIN kept k ON k.component = c.component WHERE k.component IS NULL),
        blocks AS (
            SELECT block, SUM(COUNT(*)) OVER (ORDER BY block) - COUNT(*) AS earlier
            FROM fresh_components GROUP BY block),
        fresh AS (
            SELECT f.component,
                   CAST(b.earlier AS BIGINT) + ROW_NUMBER() OVER (PARTITION BY f.block ORDER BY f.component) - 1
                       AS fresh_rank
            FROM fresh_components f JOIN blocks b ON b.block = f.block)
        SELECT component, previous AS contact_id FROM kept
        UNION ALL
        SELECT component, {format_id_sql(':next_number + fresh_rank')} FROM fresh""",
        # Merges: owned ids a component did not keep. Splits: ids whose nodes went to other components too.
        f"""{create} id_log AS
        SELECT 'merge' AS kind, o.previous AS old_contact_id, c.contact_id AS new_contact_id
        FROM id_owners o JOIN id_contact_of c ON c.component = o.component WHERE o.previous <> c.contact_id
        UNION ALL
        SELECT DISTINCT 'split', h.previous, c.contact_id
        FROM id_holding h JOIN id_owners o ON o.previous = h.previous
        JOIN id_contact_of c ON c.component = h.component WHERE h.component <> o.component""",
    ]


def next_number_sql() -> str:
    """The first number never issued: past every id held by a node or retired in the merge log."""
    return (f"SELECT COALESCE(MAX(number), 0) + 1 FROM ("
            f"SELECT {id_number_sql('contact_id')} AS number FROM identity_nodes "
            f"UNION ALL SELECT {id_number_sql('old_contact_id')} FROM merge_log) ids")


def assign_contact_ids(conn: sa.Connection, *, at_least: int = 1) -> int:
    """Run the assignment on `conn` (whose `id_final` and `id_nodes` are this run's); returns the first new
    number it could give (`at_least` raises it, e.g. past erased people's ids)."""
    for table in SCRATCH:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    next_number = max(int(conn.execute(sa.text(next_number_sql())).scalar_one()), at_least)
    for statement in assignment_statements():
        conn.execute(sa.text(statement), {"next_number": next_number})
    return next_number
