"""Guards against over-merging, in the warehouse: junk identifiers, identifiers and devices shared by too many people.

The graph's raw edges stay in session-private scratch tables (`id_identifiers`: node_id, kind, value;
`id_logins`: node_a the device, node_b the account it logged in to); the guards leave the small sets
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
from crm_pipeline.identity.nodes import direct_edges_sql, identifier_edges_sql, person_records_sql
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.dialects import engine_name

SCRATCH = ("id_identifiers", "id_logins", "id_person_keys", "id_junk", "id_capped", "id_shared")
_REJECTED = ("NOT EXISTS (SELECT 1 FROM id_junk j WHERE j.kind = e.kind AND j.value = e.value) "
             "AND NOT EXISTS (SELECT 1 FROM id_capped c WHERE c.kind = e.kind AND c.value = e.value)")
KEPT_IDENTIFIERS = (f"SELECT e.node_id, e.kind, e.value FROM id_identifiers e WHERE {_REJECTED} "
                    "AND NOT EXISTS (SELECT 1 FROM id_shared s WHERE s.device = e.node_id)")
KEPT_LOGINS = ("SELECT d.node_a, d.node_b FROM id_logins d "
               "WHERE NOT EXISTS (SELECT 1 FROM id_shared s WHERE s.device = d.node_a)")


@dataclass
class Rejected:
    junk: pd.DataFrame  # kind, value, nodes: dropped as junk
    capped: pd.DataFrame  # kind, value, people: dropped for joining too many distinct people
    shared: pd.DataFrame  # device, people: devices whose logins span too many people


def load_edges(conn: sa.Connection) -> None:
    """`id_identifiers` and `id_logins` from staging, and `id_person_keys` (node_id, person) of named records."""
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE id_identifiers AS {identifier_edges_sql()}"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE id_logins AS {direct_edges_sql()}"))
    conn.execute(sa.text(
        "CREATE TEMPORARY TABLE id_person_keys AS "
        "SELECT node_id, LOWER(last_name) || '|' || LOWER(SUBSTR(COALESCE(first_name, ''), 1, 1)) AS person "
        f"FROM ({person_records_sql()}) p WHERE last_name IS NOT NULL"))


def apply_guards(conn: sa.Connection, config: IdentityConfig) -> Rejected:
    """`id_junk`, `id_capped` and `id_shared` by the settings; returns them (small: what the alerts list)."""
    patterns = {f"junk_pattern_{i}": p.pattern for i, p in enumerate(config.junk_email_patterns)}
    matches = [_regex_match(conn, "e.value", f":{name}") for name in patterns] or ["FALSE"]
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE id_junk AS
        SELECT e.kind, e.value, COUNT(*) AS nodes FROM id_identifiers e
        WHERE (e.kind = 'email' AND (e.value IN :junk_emails OR {' OR '.join(matches)}))
           OR (e.kind <> 'email' AND e.value IN :junk_phones)
        GROUP BY e.kind, e.value""").bindparams(sa.bindparam("junk_emails", expanding=True),
                                                 sa.bindparam("junk_phones", expanding=True)),
                 {"junk_emails": sorted(config.junk_emails), "junk_phones": sorted(config.junk_phones), **patterns})
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE id_capped AS
        SELECT e.kind, e.value, COUNT(DISTINCT p.person) AS people
        FROM id_identifiers e JOIN id_person_keys p ON p.node_id = e.node_id
        WHERE NOT EXISTS (SELECT 1 FROM id_junk j WHERE j.kind = e.kind AND j.value = e.value)
        GROUP BY e.kind, e.value HAVING COUNT(DISTINCT p.person) > :cap"""),
                 {"cap": config.max_people_per_identifier})
    # A family computer or a shop's tablet logs in to several people's accounts: it joins nobody, and
    # neither do the identifiers typed on it.
    conn.execute(sa.text("""
        CREATE TEMPORARY TABLE id_shared AS
        SELECT d.node_a AS device, COUNT(DISTINCT p.person) AS people
        FROM id_logins d JOIN id_person_keys p ON p.node_id = d.node_b
        GROUP BY d.node_a HAVING COUNT(DISTINCT p.person) > :cap"""), {"cap": config.max_people_per_device})
    return Rejected(*(read_frame(conn, sa.text(f"SELECT * FROM {t} ORDER BY 1, 2"))
                      for t in ("id_junk", "id_capped", "id_shared")))


def _regex_match(conn: sa.Connection, column: str, pattern: str) -> str:
    """`column` contains a match of regular expression `pattern` (Python's re.search for these patterns)."""
    engine = engine_name(conn)
    if engine == "postgres":
        return f"{column} ~ {pattern}"
    if engine == "spark":
        return f"{column} RLIKE {pattern}"
    return f"regexp_matches({column}, {pattern})"  # DuckDB (RE2)
