"""Guards against over-merging, in the warehouse: junk identifiers, identifiers and devices shared by too many people.

The graph's raw edges stay in session-private scratch tables (`id_identifiers`: node_id, kind, value;
`id_logins`: node_a the device, node_b the account it logged in to), kept in `identity_graph` between runs
so that a drop reads only its new files' rows (`load_edges`); the guards leave the small sets
they reject, which the run reports as alerts: `id_junk` (kind, value, nodes), `id_capped` (kind, value,
people) and `id_shared` (device, people). `KEPT_IDENTIFIERS` and `KEPT_LOGINS` are the edges that may join.

"Distinct people" are distinct (last name, first initial) among the named records (customers,
subscribers) involved, so one person's several accounts count once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.identity.config import IdentityConfig
from crm_pipeline.identity.nodes import (
    IDENTIFIER_KINDS, Since, direct_edges_sql, identifier_edges_sql, person_records_sql,
)
from crm_pipeline.identity.scope import GRAPH_KINDS
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.dialects import engine_name

SCRATCH = ("id_identifiers", "id_logins", "id_new_identifiers", "id_new_logins", "id_person_keys", "id_junk",
           "id_capped", "id_shared", "id_affected_named", "id_affected_devices", "id_affected_values", "id_affected",
           "id_inputs_gone")


def kept_identifiers_sql(values: str | None = None) -> str:
    """SELECT node_id, kind, value of the identifiers the guards kept (of the values table `values` (kind, value)
    holds only, when given: joined before the guards' checks).

    The rejected sets (small, one row per key) are kept out by LEFT JOIN ... IS NULL anti-joins, not NOT EXISTS:
    these edges are an arm of the base edges' UNION ALL (`graph._base_edges`), where DuckDB 1.5.6 can park every
    thread for good on a subquery's mark join (duckdb/duckdb#24961)."""
    among = "" if values is None else f" JOIN {values} v ON v.kind = e.kind AND v.value = e.value"
    return (f"SELECT e.node_id, e.kind, e.value FROM id_identifiers e{among} "
            "LEFT JOIN id_junk j ON j.kind = e.kind AND j.value = e.value "
            "LEFT JOIN id_capped c ON c.kind = e.kind AND c.value = e.value "
            "LEFT JOIN id_shared s ON s.device = e.node_id "
            "WHERE j.kind IS NULL AND c.kind IS NULL AND s.device IS NULL")


KEPT_IDENTIFIERS = kept_identifiers_sql()
_KINDS = "(" + ", ".join(f"'{k}'" for k in IDENTIFIER_KINDS) + ")"
KEPT_LOGINS = ("SELECT d.node_a, d.node_b FROM id_logins d "
               "LEFT JOIN id_shared s ON s.device = d.node_a WHERE s.device IS NULL")


@dataclass
class Rejected:
    junk: pd.DataFrame  # kind, value, nodes: dropped as junk
    capped: pd.DataFrame  # kind, value, people: dropped for joining too many distinct people
    shared: pd.DataFrame  # device, people: devices whose logins span too many people


def load_edges(conn: sa.Connection, since: Since | None = None) -> None:
    """`id_identifiers` and `id_logins` from staging, and `id_person_keys` (node_id, person) of named records.

    With `since` (rows were only added since the last run, in files after it: `runs.additions_since`) they are
    the stored ones (identity_graph) and the new files' (`id_new_identifiers`, `id_new_logins`), without
    reading the rows read before.
    """
    if since is None:
        _run(conn, f"CREATE TEMPORARY TABLE id_identifiers AS {identifier_edges_sql()}")
        _run(conn, f"CREATE TEMPORARY TABLE id_logins AS {direct_edges_sql()}")
    else:
        _run(conn, "CREATE TEMPORARY TABLE id_new_identifiers AS SELECT e.node_id, e.kind, e.value "
                   f"FROM ({identifier_edges_sql(since)}) e WHERE NOT EXISTS (SELECT 1 FROM identity_graph g "
                   "WHERE g.kind = e.kind AND g.node_a = e.node_id AND g.node_b = e.value)")
        _run(conn, "CREATE TEMPORARY TABLE id_new_logins AS SELECT e.node_a, e.node_b "
                   f"FROM ({direct_edges_sql(since)}) e WHERE NOT EXISTS (SELECT 1 FROM identity_graph g "
                   "WHERE g.kind = 'login' AND g.node_a = e.node_a AND g.node_b = e.node_b)")
        _run(conn, "CREATE TEMPORARY TABLE id_identifiers AS SELECT node_a AS node_id, kind, node_b AS value "
                   f"FROM identity_graph WHERE kind IN {_KINDS} UNION ALL SELECT * FROM id_new_identifiers")
        _run(conn, "CREATE TEMPORARY TABLE id_logins AS SELECT node_a, node_b FROM identity_graph "
                   "WHERE kind = 'login' UNION ALL SELECT * FROM id_new_logins")
    _run(conn,
         "CREATE TEMPORARY TABLE id_person_keys AS "
         "SELECT node_id, LOWER(last_name) || '|' || LOWER(SUBSTR(COALESCE(first_name, ''), 1, 1)) AS person "
         f"FROM ({person_records_sql()}) p WHERE last_name IS NOT NULL")


def affected_nodes(conn: sa.Connection, since: Since, new_nodes: str, must_links: str) -> str:
    """`id_affected` (node_id, k): on a run whose rows were only added (in files after `since`, decisions and
    settings as before), the nodes at both ends of every deterministic edge gained or lost; returns its name.

    Only these can change: the star of an identifier value some new record carries, or that a node whose
    guard counts moved carries (a device with new logins, or logging in to a newly named account; a newly
    named node), and the logins of those devices and of devices logging in to a new node (`new_nodes`, a
    table of node_id), and the must-links (`must_links`, a SELECT of node_a, node_b) of new nodes. Every other
    value has the same nodes, the same guard verdict and so the same star; every other device the same logins,
    accounts and verdict.
    """
    _run(conn, f"CREATE TEMPORARY TABLE id_affected_named AS SELECT node_id FROM ({person_records_sql(since)}) p")
    # A login to an account that was no node (no record) joins nobody until the account's first record.
    _run(conn, "CREATE TEMPORARY TABLE id_affected_devices AS SELECT node_a AS node_id FROM id_new_logins "
               "UNION SELECT l.node_a FROM id_logins l JOIN id_affected_named n ON n.node_id = l.node_b "
               f"UNION SELECT l.node_a FROM id_logins l JOIN {new_nodes} n ON n.node_id = l.node_b")
    _run(conn, """
        CREATE TEMPORARY TABLE id_affected_values AS
        SELECT kind, value FROM id_new_identifiers
        UNION SELECT i.kind, i.value FROM id_identifiers i
              JOIN (SELECT node_id FROM id_affected_devices UNION SELECT node_id FROM id_affected_named) t
                ON t.node_id = i.node_id""")
    _run(conn, f"""
        CREATE TEMPORARY TABLE id_affected AS
        SELECT n.node_id, n.k FROM id_nodes n JOIN (
            SELECT i.node_id FROM id_identifiers i JOIN id_affected_values v ON v.kind = i.kind AND v.value = i.value
            UNION SELECT l.node_a FROM id_logins l JOIN id_affected_devices d ON d.node_id = l.node_a
            UNION SELECT l.node_b FROM id_logins l JOIN id_affected_devices d ON d.node_id = l.node_a
            UNION SELECT m.node_a FROM ({must_links}) m JOIN {new_nodes} w ON w.node_id IN (m.node_a, m.node_b)
            UNION SELECT m.node_b FROM ({must_links}) m JOIN {new_nodes} w ON w.node_id IN (m.node_a, m.node_b)) a
          ON a.node_id = n.node_id""")
    return "id_affected"


def save_inputs(conn: sa.Connection, replace: bool) -> None:
    """Keep this run's identifiers and logins in identity_graph for the next run's `load_edges`: all of them
    (`replace`: they were read from staging; by difference, as a full refresh mostly finds them stored, and
    plainly when none is stored, as on a first run), or the new files' ones."""
    insert = "INSERT INTO identity_graph (node_a, node_b, kind, match_probability) "
    if not replace:
        _run(conn, f"{insert} SELECT node_id, value, kind, CAST(NULL AS DOUBLE PRECISION) FROM id_new_identifiers "
                   "UNION ALL SELECT node_a, node_b, 'login', CAST(NULL AS DOUBLE PRECISION) FROM id_new_logins")
        return
    if conn.execute(sa.text(f"SELECT 1 FROM identity_graph WHERE kind NOT IN {GRAPH_KINDS} LIMIT 1")).first() is None:
        _run(conn, f"{insert} SELECT node_id, value, kind, CAST(NULL AS DOUBLE PRECISION) FROM id_identifiers "
                   "UNION ALL SELECT node_a, node_b, 'login', CAST(NULL AS DOUBLE PRECISION) FROM id_logins")
        return
    # By difference, by LEFT JOIN ... IS NULL anti-joins on equal (kind, node_a, node_b) between the stored inputs
    # and this run's (a UNION ALL of plain scans): no correlated NOT EXISTS over the UNION ALL, a shape DuckDB
    # 1.5.6 can park every thread on for good under load (duckdb/duckdb#24961). The stored inputs that go (every
    # kind but the graph's own is a kept input: one the extraction no longer makes goes too) are gathered in a
    # scratch table first, which the DELETE reads. (Two LEFT JOINs instead, one per side, the logins' on
    # `g.kind = 'login' AND ...`, took 31.7 CPU s at 100k people against 0.4 s for this one.)
    now = ("(SELECT node_id AS node_a, value AS node_b, kind FROM id_identifiers "
           "UNION ALL SELECT node_a, node_b, 'login' FROM id_logins) n")
    stored = f"(SELECT node_a, node_b, kind FROM identity_graph WHERE kind NOT IN {GRAPH_KINDS}) g"
    same = "n.kind = g.kind AND n.node_a = g.node_a AND n.node_b = g.node_b"
    _run(conn, "DROP TABLE IF EXISTS id_inputs_gone")
    _run(conn, f"CREATE TEMPORARY TABLE id_inputs_gone AS SELECT g.node_a, g.node_b, g.kind FROM {stored} "
               f"LEFT JOIN {now} ON {same} WHERE n.node_a IS NULL")
    if conn.execute(sa.text("SELECT 1 FROM id_inputs_gone LIMIT 1")).first() is not None:
        _run(conn, f"DELETE FROM identity_graph WHERE kind NOT IN {GRAPH_KINDS} AND (kind, node_a, node_b) IN "
                   "(SELECT kind, node_a, node_b FROM id_inputs_gone)")
    _run(conn, "DROP TABLE id_inputs_gone")
    _run(conn, f"{insert} SELECT n.node_a, n.node_b, n.kind, CAST(NULL AS DOUBLE PRECISION) FROM {now} "
               f"LEFT JOIN {stored} ON {same} WHERE g.node_a IS NULL")


def apply_guards(conn: sa.Connection, config: IdentityConfig) -> Rejected:
    """`id_junk`, `id_capped` and `id_shared` by the settings; returns them (small: what the alerts list)."""
    for table, select, params in guard_selects(config, engine_name(conn)):
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {table} AS {select}"), params)
    return Rejected(*(read_frame(conn, sa.text(f"SELECT * FROM {t} ORDER BY 1, 2"))
                      for t in ("id_junk", "id_capped", "id_shared")))


def guard_selects(config: IdentityConfig, engine: str) -> list[tuple[str, str, dict]]:
    """(table, SELECT, parameters) of `id_junk`, `id_capped` and `id_shared`, in order: each a SELECT of its own
    so that Spark materializes it as DuckDB and PostgreSQL create it. The junk lists are bound one parameter
    per value (`:junk_email_0` ...), not as one expanding list parameter, which Spark's named parameters lack."""
    patterns = {f"junk_pattern_{i}": p.pattern for i, p in enumerate(config.junk_email_patterns)}
    matches = [_regex_match(engine, "e.value", f":{name}") for name in patterns] or ["FALSE"]
    emails, email_params = _in_list("e.value", "junk_email", sorted(config.junk_emails))
    phones, phone_params = _in_list("e.value", "junk_phone", sorted(config.junk_phones))
    junk = f"""
        SELECT e.kind, e.value, COUNT(*) AS nodes FROM id_identifiers e
        WHERE (e.kind = 'email' AND ({emails} OR {' OR '.join(matches)}))
           OR (e.kind <> 'email' AND {phones})
        GROUP BY e.kind, e.value"""
    capped = """
        SELECT e.kind, e.value, COUNT(DISTINCT p.person) AS people
        FROM id_identifiers e JOIN id_person_keys p ON p.node_id = e.node_id
        LEFT JOIN id_junk j ON j.kind = e.kind AND j.value = e.value
        WHERE j.kind IS NULL
        GROUP BY e.kind, e.value HAVING COUNT(DISTINCT p.person) > :cap"""
    # A family computer or a shop's tablet logs in to several people's accounts: it joins nobody, and
    # neither do the identifiers typed on it.
    shared = """
        SELECT d.node_a AS device, COUNT(DISTINCT p.person) AS people
        FROM id_logins d JOIN id_person_keys p ON p.node_id = d.node_b
        GROUP BY d.node_a HAVING COUNT(DISTINCT p.person) > :cap"""
    return [("id_junk", junk, {**email_params, **phone_params, **patterns}),
            ("id_capped", capped, {"cap": config.max_people_per_identifier}),
            ("id_shared", shared, {"cap": config.max_people_per_device})]


def _in_list(column: str, prefix: str, values: list[str]) -> tuple[str, dict]:
    """`column IN (:prefix_0, ...)` and its parameters; FALSE for no values."""
    if not values:
        return "FALSE", {}
    params = {f"{prefix}_{i}": value for i, value in enumerate(values)}
    return f"{column} IN ({', '.join(':' + name for name in params)})", params


def _regex_match(engine: str, column: str, pattern: str) -> str:
    """`column` contains a match of regular expression `pattern` (Python's re.search for these patterns)."""
    if engine == "postgres":
        return f"{column} ~ {pattern}"
    return f"regexp_matches({column}, {pattern})"  # DuckDB (RE2); Spark through `dialects.render` (RLIKE)


def _run(conn: sa.Connection, sql: str) -> None:
    conn.execute(sa.text(sql))
