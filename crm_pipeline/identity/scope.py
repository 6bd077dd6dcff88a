"""The touched part of the identity graph: what an incremental resolution recomputes, and the graph it keeps.

The stored result partitions the nodes into contacts (`identity_nodes`). A contact can change only if one of
its edges or nodes did, so a run compares this run's edges with the ones the last run clustered (kept in
`identity_graph`) and recomputes only the scope, `id_scope` (k): the nodes of every stored contact that a
changed edge touches or a removed node (an erasure, a withdrawn file) left, and the new nodes. Every edge of a
node in the scope ends in the scope (an unchanged edge joins two nodes of one stored contact; a changed one
puts both ends' contacts in the scope), so the components found on the scope alone are those of the whole
graph, and outside it the stored contacts, ids and match types stand as a full resolution would leave them.

`identity_graph` rows, by `kind`:
- `det`: a deterministic edge (an identifier the guards kept, as a star on the smallest node sharing it, a
  login, a must-link), node_a < node_b;
- `pair`: an accepted probabilistic edge, after reviewers' cannot-links, with its match_probability;
- `cluster`: node_a lies in the deterministic cluster named by its smallest node, node_b (the probabilistic
  pass reads every person's cluster, recomputed or stored);
- `email`, `phone`: node_a carries identifier value node_b; `login`: device node_a logged in to account node_b
  (the graph's inputs before the guards, `guards.load_edges`).

A full resolution (first run, `--full-refresh`, the periodic re-cluster) puts every node in the scope and
rewrites the table; an incremental one changes only the rows of its diff and its scope.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

GRAPH_KINDS = "('det', 'pair', 'cluster')"  # identity_graph's own rows; guards.py keeps the graph's inputs beside them

SCRATCH = ("id_det_now", "id_pair_now", "id_det_diff", "id_pair_diff", "id_node_changes", "id_removed",
           "id_touched_contacts", "id_touched_earlier", "id_scope", "id_person_nodes", "id_pair_nodes",
           "id_cluster_gone")
# The stored contacts whose nodes this run recomputes (and rewrites).
TOUCHED_CONTACTS = "SELECT contact_id FROM id_touched_contacts"
# The nodes on an edge gained or lost (the pairs' diff exists once the pairs are known).
_CHANGED = ("SELECT node_a AS node_id FROM id_det_diff UNION ALL SELECT node_b FROM id_det_diff "
            "UNION ALL SELECT node_a FROM id_pair_diff UNION ALL SELECT node_b FROM id_pair_diff")


@dataclass
class Scope:
    """Which nodes this run recomputes; `full`: all of them."""

    full: bool
    nodes: int = 0  # nodes in the scope (recomputed)
    contacts: int = 0  # stored contacts in the scope (their nodes recomputed or gone)
    scoped: bool = False  # the scope tables exist
    within: bool = False  # id_base_edges holds the scope's edges only (graph.deterministic_components)

    def after_deterministic_edges(self, conn: sa.Connection, affected: str | None = None,
                                  new_nodes: str | None = None) -> None:
        """`id_det_now` from `id_base_edges`, its diff with the stored edges, and the scope it makes.
        `affected` (a table of node_id): every edge that changed joins two of its nodes, and `id_base_edges`
        holds the edges among them; the stored edges are compared there only. `new_nodes` (a table of node_id):
        the nodes not stored, when no stored node went."""
        _run(conn, """
            CREATE TEMPORARY TABLE id_det_now AS
            SELECT DISTINCT LEAST(node_a, node_b) AS node_a, GREATEST(node_a, node_b) AS node_b
            FROM id_base_edges WHERE a <> b""")
        _run(conn, _diff_sql("id_det_diff", "det", "id_det_now", self.full, among=affected))
        _run(conn, "CREATE TEMPORARY TABLE id_pair_diff AS SELECT node_a, node_b, "
                   "CAST(NULL AS DOUBLE PRECISION) AS match_probability, present FROM id_det_diff WHERE 1 = 0")
        # Nodes gone since the last run (with their contact) and new ones (with their key), in one join; or the
        # new ones, when they are known (`new_nodes`) and none went; none on a full run, which recomputes all.
        _run(conn, "CREATE TEMPORARY TABLE id_node_changes AS SELECT p.node_id, p.contact_id, n.k "
                   "FROM identity_nodes p FULL OUTER JOIN id_nodes n ON n.node_id = p.node_id "
                   f"WHERE (p.node_id IS NULL OR n.node_id IS NULL) AND {'FALSE' if self.full else 'TRUE'}"
                   if new_nodes is None else
                   "CREATE TEMPORARY TABLE id_node_changes AS SELECT n.node_id, CAST(NULL AS VARCHAR) AS contact_id, "
                   f"n.k FROM {new_nodes} w JOIN id_nodes n ON n.node_id = w.node_id")
        _run(conn, "CREATE TEMPORARY TABLE id_removed AS SELECT node_id, contact_id FROM id_node_changes WHERE k IS NULL")
        self._rescope(conn)

    def after_pairs(self, conn: sa.Connection) -> bool:
        """`id_pair_now` from `id_pairs` and its diff with the stored pairs; True when the scope grew."""
        _run(conn, "DROP TABLE IF EXISTS id_pair_now")
        _run(conn, """
            CREATE TEMPORARY TABLE id_pair_now AS
            SELECT LEAST(node_a, node_b) AS node_a, GREATEST(node_a, node_b) AS node_b,
                   MAX(match_probability) AS match_probability
            FROM id_pairs GROUP BY LEAST(node_a, node_b), GREATEST(node_a, node_b)""")
        _run(conn, "DROP TABLE IF EXISTS id_pair_diff")
        _run(conn, _diff_sql("id_pair_diff", "pair", "id_pair_now", self.full, value="match_probability"))
        if self.full or not conn.execute(sa.text("SELECT COUNT(*) FROM id_pair_diff")).scalar_one():
            return False
        before = self.nodes
        self._rescope(conn)
        return self.nodes != before

    def _rescope(self, conn: sa.Connection) -> None:
        # The scope only grows within a run (a closed superset is as exact): a second call keeps the first's.
        earlier = " UNION ALL SELECT contact_id FROM id_touched_earlier" if self.scoped else ""
        _run(conn, "DROP TABLE IF EXISTS id_touched_earlier")
        if self.scoped:
            _run(conn, "CREATE TEMPORARY TABLE id_touched_earlier AS SELECT contact_id FROM id_touched_contacts")
        for table in ("id_touched_contacts", "id_scope"):
            _run(conn, f"DROP TABLE IF EXISTS {table}")
        if self.full:
            _run(conn, "CREATE TEMPORARY TABLE id_touched_contacts AS SELECT DISTINCT contact_id FROM identity_nodes")
            _run(conn, "CREATE TEMPORARY TABLE id_scope AS SELECT k FROM id_nodes")
        else:
            _run(conn, f"""
                CREATE TEMPORARY TABLE id_touched_contacts AS
                SELECT DISTINCT contact_id FROM (
                    SELECT p.contact_id FROM ({_CHANGED}) d JOIN identity_nodes p ON p.node_id = d.node_id
                    UNION ALL SELECT contact_id FROM id_removed{earlier}) t""")
            # The touched contacts' nodes by a join to their (distinct) ids, not `contact_id IN (subquery)` in
            # an arm of the UNION ALL (see `node_set`).
            _run(conn, """
                CREATE TEMPORARY TABLE id_scope AS
                SELECT n.k FROM identity_nodes p JOIN id_touched_contacts t ON t.contact_id = p.contact_id
                JOIN id_nodes n ON n.node_id = p.node_id
                UNION ALL SELECT k FROM id_node_changes WHERE k IS NOT NULL""")
        self.nodes, self.contacts = (int(v) for v in conn.execute(sa.text(
            f"SELECT (SELECT COUNT(*) FROM id_scope), (SELECT COUNT(*) FROM ({TOUCHED_CONTACTS}) t)")).one())
        self.scoped = True

    def edges(self, edges_sql: str) -> str:
        """`edges_sql` (a, b) restricted to the scope (all of it on a full run)."""
        if self.full:
            return edges_sql
        return (f"SELECT e.a, e.b FROM ({edges_sql}) e JOIN id_scope sa ON sa.k = e.a "
                "JOIN id_scope sb ON sb.k = e.b")

    def save(self, conn: sa.Connection) -> None:
        """Bring `identity_graph` to this run's edges and deterministic clusters (run after `id_det` is final)."""
        clusters = ("INSERT INTO identity_graph (node_a, node_b, kind, match_probability) "
                    "SELECT n.node_id, c.node_id, 'cluster', NULL FROM id_det d JOIN id_nodes n ON n.k = d.k "
                    "JOIN id_nodes c ON c.k = d.label")
        if self.full:
            _run(conn, f"DELETE FROM identity_graph WHERE kind IN {GRAPH_KINDS}")  # inputs: guards.py
            _run(conn, "INSERT INTO identity_graph (node_a, node_b, kind, match_probability) "
                       "SELECT node_a, node_b, 'det', NULL FROM id_det_now "
                       "UNION ALL SELECT node_a, node_b, 'pair', match_probability FROM id_pair_now")
            _run(conn, clusters)
            return
        for kind, diff, probability in (("det", "id_det_diff", "NULL"), ("pair", "id_pair_diff", "match_probability")):
            _run(conn, f"DELETE FROM identity_graph WHERE kind = '{kind}' AND (node_a, node_b) IN "
                       f"(SELECT node_a, node_b FROM {diff} WHERE NOT present)")
            _run(conn, "INSERT INTO identity_graph (node_a, node_b, kind, match_probability) "
                       f"SELECT node_a, node_b, '{kind}', {probability} FROM {diff} WHERE present")
        # The nodes whose stored cluster goes, gathered in a scratch table first: the DELETE's IN reads one small
        # table, not a UNION of a join (see `node_set`).
        gone = node_set(conn, "id_cluster_gone", "SELECT node_id FROM id_removed "
                                                 "UNION ALL SELECT n.node_id FROM id_nodes n JOIN id_scope s ON s.k = n.k")
        _run(conn, f"DELETE FROM identity_graph WHERE kind = 'cluster' AND node_a IN (SELECT node_id FROM {gone})")
        _run(conn, clusters)


def node_set(conn: sa.Connection, name: str, nodes_sql: str) -> str:
    """`name` (node_id): the distinct nodes `nodes_sql` yields, as a scratch table the reads below join.

    Not a filter by `IN (subquery)`: DuckDB 1.5 can park every thread for good on a UNION ALL whose arms filter
    by IN and NOT IN subqueries over the same scans (duckdb/duckdb#24961). A 1M-people full refresh hung so in
    `person_clusters` (threads idle in futex waits, the query's main thread in `Executor::WaitForTask`). Joins
    to small scratch tables and a LEFT JOIN anti-join leave no mark join to hang in."""
    _run(conn, f"DROP TABLE IF EXISTS {name}")
    _run(conn, f"CREATE TEMPORARY TABLE {name} AS SELECT DISTINCT node_id FROM ({nodes_sql}) x (node_id)")
    return name


# The current nodes outside the scope (`n`: id_nodes), as an anti-join rather than `NOT IN` (see `node_set`).
_OUTSIDE_SCOPE = "LEFT JOIN id_scope s ON s.k = n.k"


def stored_det_clusters_sql(nodes: str) -> str:
    """node_id, cluster_id (smallest node id of its deterministic cluster) of the current nodes outside the
    scope in table `nodes` (`node_set`), as the last run stored them."""
    return ("SELECT g.node_a AS node_id, g.node_b AS cluster_id FROM identity_graph g "
            f"JOIN {nodes} f ON f.node_id = g.node_a JOIN id_nodes n ON n.node_id = g.node_a {_OUTSIDE_SCOPE} "
            "WHERE g.kind = 'cluster' AND s.k IS NULL")


def labels_sql(components: str, nodes: str) -> str:
    """node_id, label of the current nodes in table `nodes` (`node_set`) in components `components` (id_det or
    id_final) over the whole graph: computed in the scope, stored outside it (equal labels: one component)."""
    stored = (f"SELECT node_id, 'd' || cluster_id FROM ({stored_det_clusters_sql(nodes)}) x"
              if components == "id_det" else
              f"SELECT p.node_id, 'c' || p.contact_id FROM identity_nodes p JOIN {nodes} f ON f.node_id = p.node_id "
              f"JOIN id_nodes n ON n.node_id = p.node_id {_OUTSIDE_SCOPE} WHERE s.k IS NULL")
    return (f"SELECT n.node_id, 'k' || CAST(c.label AS VARCHAR) AS label FROM id_nodes n "
            f"JOIN {nodes} f ON f.node_id = n.node_id JOIN {components} c ON c.k = n.k UNION ALL {stored}")


def _diff_sql(into: str, kind: str, now: str, full: bool, value: str | None = None, among: str | None = None) -> str:
    """`into` (node_a, node_b[, value], present): the edges of `kind` gained (present) or lost since the stored
    graph, in one join of the two sides (a pair whose probability moved is lost and gained); none compared on a
    full run, which rewrites them all. `among` (a table of node_id): only stored edges joining two of its nodes
    are compared (`now` holds only such edges), by joins to it (one row per node), not IN subqueries."""
    carried = f", COALESCE(n.{value}, o.{value}) AS {value}" if value else ""
    on = f" AND n.{value} = o.{value}" if value else ""
    among_both = ("" if among is None else
                  f" JOIN {among} wa ON wa.node_id = g.node_a JOIN {among} wb ON wb.node_id = g.node_b")
    return f"""
        CREATE TEMPORARY TABLE {into} AS
        SELECT COALESCE(n.node_a, o.node_a) AS node_a, COALESCE(n.node_b, o.node_b) AS node_b{carried},
               n.node_a IS NOT NULL AS present
        FROM (SELECT g.node_a, g.node_b{f", g.{value}" if value else ""} FROM identity_graph g{among_both}
              WHERE g.kind = '{kind}') o
        FULL OUTER JOIN {now} n ON n.node_a = o.node_a AND n.node_b = o.node_b{on}
        WHERE (o.node_a IS NULL OR n.node_a IS NULL) AND {'FALSE' if full else 'TRUE'}"""


def _run(conn: sa.Connection, sql: str) -> None:
    conn.execute(sa.text(sql))
