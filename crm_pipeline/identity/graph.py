"""The identity graph in the warehouse: integer node keys, its edges, its components and how each node matched.

A resolution keeps the graph in session-private scratch tables on its connection, so that clustering,
match types and contact ids (`stable_ids.py`) are computed where the data is and Python sees only
small sets (alerts, reviewers' decisions) and the model's pairs:
- `id_nodes` (node_id, k): every node, keyed by its rank in node id order, so the
  smallest key of a component is its smallest node id, as the contact id rules order components;
- `id_base_edges` (a, b; node_a, node_b their node ids): the deterministic edges (what the guards kept, `guards.py`, and reviewers'
  must-links); nodes sharing an identifier are tied to the smallest of them (a star per identifier
  value: the same components as the node-value graph, with one edge per node instead of one per pair);
- `id_det` and `id_final` (k, label): components without and with the accepted probabilistic pairs
  (`id_pairs`), labelled by their smallest key (`components.py`; `id_final` from the parts of `id_det` the
  pairs join);
- `id_typed` (k, component, match_type, match_probability): how each node joined its final cluster.

Components, match types and ids are computed for the nodes of the run's scope only (`scope.py`: every
node on a full run; on an incremental one, the stored contacts that changed edges or nodes touch, and the
new nodes); `id_det`, `id_final` and `id_typed` hold those nodes.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.identity.components import label_components, sqlalchemy_runner
from crm_pipeline.identity.guards import (
    KEPT_IDENTIFIERS, KEPT_LOGINS, SCRATCH as GUARD_SCRATCH, kept_identifiers_sql,
)
from crm_pipeline.identity.nodes import PERSON_NODES_SQL, Since, all_nodes_sql, person_records_sql
from crm_pipeline.identity.scope import (
    SCRATCH as SCOPE_SCRATCH,
    Scope,
    labels_sql,
    node_set,
    stored_det_clusters_sql,
)
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame

_scratch = sa.MetaData()
# The model's accepted pairs: the one part of the graph that Python holds (Splink's output).
_pairs = sa.Table("id_pairs", _scratch, sa.Column("node_a", sa.String), sa.Column("node_b", sa.String),
                  sa.Column("match_probability", sa.Double), prefixes=["TEMPORARY"])
NEW_NODES = "id_new_nodes"  # with rows only added since the last run: the nodes not stored (`load_nodes`)
SCRATCH = ("id_nodes", NEW_NODES, "id_base_edges", "id_scope_nodes", "id_within_values", "id_det", "id_pairs",
           "id_part_edges", "id_parts", "id_part_labels", "id_final", "id_typed", *GUARD_SCRATCH, *SCOPE_SCRATCH)

MUST_LINKS = "SELECT node_a, node_b FROM identity_decisions WHERE decision = 'must_link'"
CANNOT_LINKS = "SELECT node_a, node_b FROM identity_decisions WHERE decision = 'cannot_link'"
_PAIR_EDGES = ("SELECT na.k AS a, nb.k AS b FROM id_pairs p JOIN id_nodes na ON na.node_id = p.node_a "
               "JOIN id_nodes nb ON nb.node_id = p.node_b")


def drop_scratch(conn: sa.Connection) -> None:
    for table in SCRATCH:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


def load_nodes(conn: sa.Connection, since: Since | None = None) -> None:
    """`id_nodes`: every node and its key; from staging, or (`since`: rows were only added since the last run,
    in files after it) the stored nodes and the new files' ones."""
    nodes = all_nodes_sql()
    if since is not None:  # the new files' nodes not stored (no node went: no row did)
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {NEW_NODES} AS SELECT r.node_id FROM ({all_nodes_sql(since)}) r "
                             "WHERE NOT EXISTS (SELECT 1 FROM identity_nodes p WHERE p.node_id = r.node_id)"))
        nodes = f"SELECT node_id FROM identity_nodes UNION ALL SELECT node_id FROM {NEW_NODES}"
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE id_nodes AS SELECT node_id, "
                         f"ROW_NUMBER() OVER (ORDER BY node_id) AS k FROM ({nodes}) n"))


def deterministic_components(conn: sa.Connection, scope: Scope, affected: str | None = None) -> int:
    """`id_base_edges` from the identifiers and logins the guards kept and the reviewers' must-links (as certain
    as a shared identifier: the pair is one cluster before scoring), the scope they make, and `id_det` over
    the scope; returns the rounds.

    `affected` (a table of node_id, k holding both ends of every edge that may have changed since the last run,
    `guards.affected_nodes`): the edges are built and compared with the stored ones among those nodes only,
    then built again for the scope's nodes (`Scope.within`), not over the whole graph.
    """
    _base_edges(conn, affected)
    scope.after_deterministic_edges(conn, affected, new_nodes=NEW_NODES if affected is not None else None)
    if affected is not None:
        scope.within = True
        _base_edges(conn, _scope_nodes(conn))
    return _label_deterministic(conn, scope)


def _base_edges(conn: sa.Connection, within: str | None) -> None:
    """`id_base_edges`: every deterministic edge, or (`within`: a table of node_id, k) those joining two of its
    nodes (a star's centre is still the smallest node of all that keep its value).

    Node ids for the comparison with the stored edges (scope.py), keys for the components: the few values and
    edges first, their nodes' keys last (a join with every node per edge kind costs more).
    """
    conn.execute(sa.text("DROP TABLE IF EXISTS id_base_edges"))
    identifiers, nodes = KEPT_IDENTIFIERS, "id_nodes"
    if within is not None:
        conn.execute(sa.text("DROP TABLE IF EXISTS id_within_values"))
        conn.execute(sa.text("CREATE TEMPORARY TABLE id_within_values AS SELECT DISTINCT i.kind, i.value "
                             f"FROM id_identifiers i JOIN {within} w ON w.node_id = i.node_id"))
        identifiers, nodes = kept_identifiers_sql("id_within_values"), within  # edges end on `nodes` below
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE id_base_edges AS
        WITH star AS (
            SELECT e.node_id AS node_a, MIN(e.node_id) OVER (PARTITION BY e.kind, e.value) AS node_b
            FROM ({identifiers}) e),
        edges AS (SELECT node_a, node_b FROM star UNION ALL {KEPT_LOGINS} UNION ALL {MUST_LINKS})
        SELECT wa.k AS a, wb.k AS b, e.node_a, e.node_b
        FROM edges e JOIN {nodes} wa ON wa.node_id = e.node_a JOIN {nodes} wb ON wb.node_id = e.node_b"""))


def _scope_nodes(conn: sa.Connection) -> str:
    conn.execute(sa.text("DROP TABLE IF EXISTS id_scope_nodes"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE id_scope_nodes AS "
                         "SELECT n.node_id, n.k FROM id_scope s JOIN id_nodes n ON n.k = s.k"))
    return "id_scope_nodes"


def _label_deterministic(conn: sa.Connection, scope: Scope) -> int:
    return label_components(*sqlalchemy_runner(conn), nodes="id_scope", out="id_det", prefix="id_cc",
                            edges=scope.edges("SELECT a, b FROM id_base_edges"))


# The column of `clustered_person_records` that names a record's cluster by its smallest person node.
PERSON_CLUSTER = "person_cluster_id"


def clustered_person_records(conn: sa.Connection) -> pd.DataFrame:
    """The probabilistic pass's input: the named records (`person_records_sql`), each with `cluster_id` (its
    deterministic component's smallest node id: computed in the scope, as stored outside it) and
    `PERSON_CLUSTER` (the smallest person node of that cluster, for the pass's digest).

    Joined and named in SQL: at 1M people, reading the records and the clusters as two frames, merging them
    and grouping the merge in pandas held about 3 GB of Python memory for one frame's worth of rows."""
    people = node_set(conn, "id_person_nodes", PERSON_NODES_SQL)
    return read_frame(conn, sa.text(f"""
        WITH clusters AS (
            SELECT n.node_id, c.node_id AS cluster_id FROM id_nodes n JOIN {people} p ON p.node_id = n.node_id
            JOIN id_det d ON d.k = n.k JOIN id_nodes c ON c.k = d.label
            UNION ALL {stored_det_clusters_sql(people)})
        SELECT r.*, c.cluster_id,
               CASE WHEN c.cluster_id IS NOT NULL
                    THEN MIN(r.node_id) OVER (PARTITION BY c.cluster_id) END AS {PERSON_CLUSTER}
        FROM ({person_records_sql()}) r LEFT JOIN clusters c ON c.node_id = r.node_id"""))


def final_components(conn: sa.Connection, pairs: pd.DataFrame, scope: Scope) -> int:
    """`id_pairs` and `id_final` over the scope (grown by the pairs that changed; `id_det` follows): the
    deterministic edges plus `pairs` (node_a, node_b, match_probability).

    A final component is a union of deterministic ones (`id_det`, each labelled by its smallest key), so the
    components are found on the few parts the pairs join, each part one node keyed by its label (the
    smallest key of a union of parts is the smallest of their labels), not on the whole graph again.
    """
    conn.execute(sa.text("DROP TABLE IF EXISTS id_pairs"))
    _pairs.create(conn)
    insert_arrow(conn, _pairs, pa.Table.from_pandas(
        pd.DataFrame({"node_a": pairs["node_a"].astype("string"), "node_b": pairs["node_b"].astype("string"),
                      "match_probability": pairs["match_probability"].astype(float)}), preserve_index=False))
    return components_with_pairs(conn, scope)


def components_with_pairs(conn: sa.Connection, scope: Scope) -> int:
    """`final_components` once `id_pairs` holds the pairs: on Spark `id_pairs` is made there (no Python frame
    of pairs), the rest is the same statements."""
    grown = scope.after_pairs(conn)
    if grown and scope.within:  # the scope's new nodes' edges
        _base_edges(conn, _scope_nodes(conn))
    rounds = _label_deterministic(conn, scope) if grown else 0
    # The pairs between parts (id_det holds the scope's nodes only, so a pair leaving the scope drops out).
    for table in ("id_part_edges", "id_parts"):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE id_part_edges AS
        SELECT da.label AS a, db.label AS b FROM ({_PAIR_EDGES}) e
        JOIN id_det da ON da.k = e.a JOIN id_det db ON db.k = e.b"""))
    conn.execute(sa.text("CREATE TEMPORARY TABLE id_parts AS SELECT a AS k FROM id_part_edges "
                         "UNION SELECT b FROM id_part_edges"))
    rounds += label_components(*sqlalchemy_runner(conn), nodes="id_parts", out="id_part_labels", prefix="id_cc",
                               edges="SELECT a, b FROM id_part_edges")
    conn.execute(sa.text("DROP TABLE IF EXISTS id_final"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE id_final AS SELECT d.k, COALESCE(p.label, d.label) AS label "
                         "FROM id_det d LEFT JOIN id_part_labels p ON p.k = d.label"))
    return rounds


def pairs_in_one_component(conn: sa.Connection, components: str, pairs_sql: str) -> pd.DataFrame:
    """node_a, node_b of the pairs `pairs_sql` yields whose two nodes share a component of `components`
    (id_det or id_final, over the whole graph: see `scope.labels_sql`)."""
    nodes = node_set(conn, "id_pair_nodes",
                     f"SELECT node_a FROM ({pairs_sql}) p UNION SELECT node_b FROM ({pairs_sql}) p")
    return read_frame(conn, sa.text(
        f"WITH labels AS ({labels_sql(components, nodes)}) "
        f"SELECT p.node_a, p.node_b FROM ({pairs_sql}) p "
        "JOIN labels la ON la.node_id = p.node_a JOIN labels lb ON lb.node_id = p.node_b WHERE la.label = lb.label"))


def type_matches(conn: sa.Connection) -> None:
    """`id_typed`: deterministic / probabilistic / singleton per node, with the probability that joined it.

    The anchor of a final cluster is its largest deterministic part (ties: the smallest key); its nodes are
    deterministic (singleton when the cluster is one node), the other parts joined probabilistically, with
    the highest probability among the accepted pairs touching their part.
    """
    conn.execute(sa.text("""
        CREATE TEMPORARY TABLE id_typed AS
        WITH f AS (
            SELECT d.k, d.label AS det, f.label AS component,
                   COUNT(*) OVER (PARTITION BY d.label) AS det_size, COUNT(*) OVER (PARTITION BY f.label) AS final_size
            FROM id_det d JOIN id_final f ON f.k = d.k),
        anchors AS (
            SELECT component, det FROM (
                SELECT component, det, ROW_NUMBER() OVER (PARTITION BY component ORDER BY det_size DESC, det) AS r
                FROM (SELECT DISTINCT component, det, det_size FROM f) parts) ranked
            WHERE r = 1),
        touched AS (
            SELECT d.label AS det, MAX(t.p) AS p FROM (
                SELECT node_a AS node_id, match_probability AS p FROM id_pairs
                UNION ALL SELECT node_b, match_probability FROM id_pairs) t
            JOIN id_nodes n ON n.node_id = t.node_id JOIN id_det d ON d.k = n.k
            GROUP BY d.label),
        typed AS (
            SELECT f.k, f.component, f.det,
                   CASE WHEN f.final_size = 1 THEN 'singleton'
                        WHEN f.det = a.det AND (f.det_size > 1 OR f.final_size = f.det_size) THEN 'deterministic'
                        ELSE 'probabilistic' END AS match_type
            FROM f JOIN anchors a ON a.component = f.component)
        SELECT y.k, y.component, y.match_type,
               CASE WHEN y.match_type = 'probabilistic' THEN t.p END AS match_probability
        FROM typed y LEFT JOIN touched t ON t.det = y.det"""))
