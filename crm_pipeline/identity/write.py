"""Write a resolution's result by difference: only the rows that changed are deleted and inserted.

The resolution yields one row per graph node (contact id, match type, probability, first
seen) in a table of the writing connection. The stored state is compared with it in SQL: nodes that differ are replaced; an
`identity_map` row is replaced when its staged row is new or gone, or its node changed;
`contacts` rows are recomputed for the contacts those rows left or joined. Rewriting the
four million map rows of 100k people took a minute; a 1% drop now writes its 1%.
The contacts touched go to `identity_changes` under the run's number, for the stages after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import sqlalchemy as sa

from crm_pipeline.identity.nodes import RECORD_NODES, Since

_TEMPORARY = ("id_node_diff", "id_map_diff", "id_map_files", "id_map_whole", "id_map_new", "id_touched")


@dataclass
class ChangeCounts:
    run_number: int = 0
    nodes_written: int = 0
    records_added: int = 0
    records_removed: int = 0
    records_reassigned: int = 0
    contacts_created: int = 0
    contacts_changed: int = 0
    contacts_retired: int = 0

    @property
    def contacts_touched(self) -> int:
        return self.contacts_created + self.contacts_changed + self.contacts_retired


def write_by_difference(conn: sa.Connection, next_nodes: str | None, *, as_of: date, mode: str,
                        fingerprint: str, stored_scope: str | None = None, since: Since | None = None) -> ChangeCounts:
    """Bring identity_nodes, identity_map and contacts to the state of table `next_nodes` (node_id,
    contact_id, match_type, match_probability, first_seen_as_of; None: the nodes stand as stored);
    log the run and its contacts. `stored_scope` (a SELECT of contact ids): `next_nodes` replaces only the
    stored nodes of those contacts (an incremental run's scope); None: all of them. `since` (rows were only
    added since the last run, in later files: `runs.additions_since`): those files' rows are inserted whole,
    as only this function writes identity_map and it has not seen them (checked: when the map holds a row of
    one, say of a run that overlapped this one's fingerprint, every file is compared as without `since`)."""
    counts = ChangeCounts()
    _drop_scratch(conn)
    if since is not None and _map_holds_later_rows(conn, since):
        since = None
    # No node stored (a first run, or every contact erased): every node is new, and so is every contact.
    first = conn.execute(sa.text("SELECT 1 FROM identity_nodes LIMIT 1")).first() is None
    if next_nodes is None:  # the nodes stand as stored (same graph as the last run): no node differs
        conn.execute(sa.text("CREATE TEMPORARY TABLE id_node_diff AS SELECT node_id, contact_id AS old_contact, "
                             "contact_id AS new_contact, TRUE AS present FROM identity_nodes WHERE 1 = 0"))
    else:
        _write_nodes(conn, next_nodes, stored_scope)
    counts.nodes_written = int(conn.execute(sa.text("SELECT COUNT(*) FROM id_node_diff")).scalar_one())

    # A map row is named by its staged row's lineage (never changed in place). Files are compared by a summary
    # first: a file the map holds no row of (a new file; every file on a first run) is inserted whole, straight
    # from staging (`id_map_whole`); only the rows of files held but changed are compared one by one, on the two
    # integer columns alone (`id_map_diff`).
    conn.execute(sa.text("CREATE TEMPORARY TABLE id_map_diff (entity VARCHAR, _file_id INTEGER, _row_number INTEGER, "
                         "old_contact VARCHAR, is_new BOOLEAN)"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE id_map_whole (entity VARCHAR, _file_id INTEGER, n BIGINT)"))
    for entity, (_, _, where) in RECORD_NODES.items():
        _files_that_differ(conn, entity, where, None if since is None else since[entity])
        conn.execute(sa.text("INSERT INTO id_map_whole SELECT :e, _file_id, n FROM id_map_files WHERE whole"),
                     {"e": entity})
        if since is not None:  # no row was removed, and every file that gained rows is new
            continue
        conn.execute(sa.text(
            "INSERT INTO id_map_diff SELECT :e, m._file_id, m._row_number, m.contact_id, FALSE "
            f"FROM ({_map_rows}) m LEFT JOIN ({_staged_rows(entity, 'TRUE')}) t "
            "  ON t._file_id = m._file_id AND t._row_number = m._row_number WHERE t._file_id IS NULL"),
            {"e": entity})
        conn.execute(sa.text(
            "INSERT INTO id_map_diff SELECT :e, t._file_id, t._row_number, NULL, TRUE "
            f"FROM ({_staged_rows(entity, where)}) t LEFT JOIN ({_map_rows}) m "
            "  ON m._file_id = t._file_id AND m._row_number = t._row_number WHERE m._file_id IS NULL"), {"e": entity})
    whole_rows = dict(conn.execute(sa.text("SELECT entity, SUM(n) FROM id_map_whole GROUP BY entity")).all())
    diff_rows = {(entity, bool(is_new)): int(n) for entity, is_new, n in conn.execute(sa.text(
        "SELECT entity, is_new, COUNT(*) FROM id_map_diff GROUP BY entity, is_new")).all()}
    counts.records_added = sum(int(n) for n in whole_rows.values()) + \
        sum(n for (_, is_new), n in diff_rows.items() if is_new)
    counts.records_removed = sum(n for (_, is_new), n in diff_rows.items() if not is_new)
    if counts.records_removed:
        conn.execute(sa.text(
            "DELETE FROM identity_map WHERE (entity, _file_id, _row_number) IN "
            "(SELECT entity, _file_id, _row_number FROM id_map_diff WHERE NOT is_new)"))
    # Only nodes that had a contact have map rows to move (a new node's rows are inserted below).
    moved = conn.execute(sa.text("SELECT COUNT(*) FROM id_node_diff WHERE old_contact IS NOT NULL")).scalar_one()
    counts.records_reassigned = int(conn.execute(sa.text(
        "SELECT COUNT(*) FROM identity_map WHERE node_id IN (SELECT node_id FROM id_node_diff)")).scalar_one()) \
        if moved else 0
    if counts.records_reassigned:
        conn.execute(sa.text(
            "UPDATE identity_map SET contact_id = n.contact_id, match_type = n.match_type, "
            "match_probability = n.match_probability FROM identity_nodes n "
            "WHERE n.node_id = identity_map.node_id AND identity_map.node_id IN (SELECT node_id FROM id_node_diff)"))
    # On a drop (`since`) the new rows are kept with their contact first, so that the contacts they join are
    # known without a scan of the map; a run that may insert millions inserts them once.
    target = "identity_map" if since is None else "id_map_new"
    conn.execute(sa.text("CREATE TEMPORARY TABLE id_map_new AS SELECT * FROM identity_map WHERE 1 = 0"))
    for entity, (node, _, where) in RECORD_NODES.items():
        rows = (f"INSERT INTO {target} (brand, entity, source_key, node_id, contact_id, match_type, match_probability, "
                f"_file_id, _row_number) {_map_columns(entity)} FROM stg_{entity} t ")
        if whole_rows.get(entity):
            conn.execute(sa.text(
                f"{rows} JOIN identity_nodes n ON n.node_id = {node} "
                f"WHERE {where} AND t._file_id IN (SELECT _file_id FROM id_map_whole WHERE entity = :e)"), {"e": entity})
        if diff_rows.get((entity, True)):
            conn.execute(sa.text(
                f"{rows} JOIN id_map_diff d ON d.is_new AND d.entity = :e AND d._file_id = t._file_id "
                f"AND d._row_number = t._row_number JOIN identity_nodes n ON n.node_id = {node}"), {"e": entity})
    if since is not None:
        conn.execute(sa.text("INSERT INTO identity_map SELECT * FROM id_map_new"))
    _write_contacts(conn, gained=None if first else "SELECT contact_id FROM id_map_new" if since is not None else
                    "SELECT m.contact_id FROM id_map_whole w JOIN identity_map m ON m.entity = w.entity "
                    "AND m._file_id = w._file_id "
                    "UNION ALL SELECT m.contact_id FROM id_map_diff d JOIN identity_map m ON d.is_new "
                    "AND m.entity = d.entity AND m._file_id = d._file_id AND m._row_number = d._row_number")

    counts.run_number = int(conn.execute(sa.text(
        "SELECT COALESCE(MAX(run_number), 0) + 1 FROM identity_runs")).scalar_one())
    conn.execute(sa.text("""
        INSERT INTO identity_changes (run_number, contact_id, change)
        SELECT :run, t.contact_id,
               CASE WHEN c.contact_id IS NULL THEN 'retired' WHEN t.existed THEN 'changed' ELSE 'created' END
        FROM id_touched t LEFT JOIN contacts c ON c.contact_id = t.contact_id
        WHERE t.existed OR c.contact_id IS NOT NULL
    """), {"run": counts.run_number})
    for change, n in conn.execute(sa.text("SELECT change, COUNT(*) FROM identity_changes WHERE run_number = :run "
                                          "GROUP BY change"), {"run": counts.run_number}).all():
        setattr(counts, f"contacts_{change}", int(n))
    conn.execute(sa.text(
        "INSERT INTO identity_runs (run_number, as_of, mode, fingerprint, records_added_count, records_removed_count, "
        "records_reassigned_count, contacts_created_count, contacts_changed_count, contacts_retired_count, finished_at) "
        "VALUES (:run, :as_of, :mode, :fingerprint, :added, :removed, :reassigned, :created, :changed, :retired, "
        ":now)"), {"run": counts.run_number, "as_of": as_of, "mode": mode, "fingerprint": fingerprint,
                   "added": counts.records_added, "removed": counts.records_removed,
                   "reassigned": counts.records_reassigned, "created": counts.contacts_created,
                   "changed": counts.contacts_changed, "retired": counts.contacts_retired,
                   "now": datetime.now(timezone.utc)})
    _drop_scratch(conn)
    return counts


def _map_columns(entity: str) -> str:
    """The SELECT list of `entity`'s identity_map rows over its staged rows `t` and their nodes `n`."""
    _, key, _ = RECORD_NODES[entity]
    return (f"SELECT t._brand AS brand, :e AS entity, CAST({key} AS VARCHAR) AS source_key, n.node_id, n.contact_id, "
            "n.match_type, n.match_probability, t._file_id, t._row_number")


def map_rows_sql(entity: str, nodes: str = "identity_nodes") -> str:
    """Every identity_map row of `entity` (`:e`) once table `nodes` holds every node's contact: the whole map, as
    a full rewrite writes it (Spark overwrites the table with these rows; DuckDB inserts the new files' ones)."""
    node, _, where = RECORD_NODES[entity]
    return f"{_map_columns(entity)} FROM stg_{entity} t JOIN {nodes} n ON n.node_id = {node} WHERE {where}"


def contacts_sql(nodes: str = "identity_nodes", identity_map: str = "identity_map",
                 recomputed: str | None = None) -> str:
    """contacts rows from the nodes and map rows: of the contacts `recomputed` (a SELECT of contact_id) selects,
    or of every contact."""
    of_map = of_nodes = ""
    if recomputed is not None:
        of_map, of_nodes = f"WHERE contact_id IN ({recomputed}) ", f"WHERE n.contact_id IN ({recomputed}) "
    return ("SELECT n.contact_id, COUNT(*) AS node_count, COALESCE(MAX(r.records), 0) AS record_count, "
            "STRING_AGG(DISTINCT SPLIT_PART(n.node_id, '|', 1), ',' ORDER BY SPLIT_PART(n.node_id, '|', 1)) AS brands, "
            "MIN(n.match_type) AS match_type, MIN(n.first_seen_as_of) AS first_seen_as_of "
            f"FROM {nodes} n "
            f"LEFT JOIN (SELECT contact_id, COUNT(*) AS records FROM {identity_map} {of_map}GROUP BY contact_id) r "
            f"  ON r.contact_id = n.contact_id {of_nodes}GROUP BY n.contact_id")


def _write_contacts(conn: sa.Connection, gained: str | None) -> None:
    """`id_touched` (contact_id, existed: it had a contacts row before this run): the contacts a changed node
    or record left or joined, and their contacts rows. A contact whose nodes all stand and that only gained
    records (most of a drop's) has its record count raised by its new rows (`gained`: a SELECT of their
    contact_id; None when no node stood, on a first run: then every record's contact is a changed node's); the
    others (nodes changed, records removed, new) are computed again from their nodes and map rows, all of them
    without a filter when none stood."""
    gained_rows = "" if gained is None else f"UNION ALL SELECT DISTINCT contact_id, 1 FROM ({gained}) g"
    # Whether a contact existed: a LEFT JOIN of the grouped contacts to `contacts` (one row per contact), not a
    # correlated EXISTS over the UNION ALL (a shape DuckDB 1.5.6 can hang on under load, duckdb/duckdb#24961).
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE id_touched AS
        SELECT t.contact_id, c.contact_id IS NOT NULL AS existed, t.gained_only
        FROM (SELECT u.contact_id, MIN(u.gained) = 1 AS gained_only
              FROM (SELECT old_contact AS contact_id, 0 AS gained FROM id_node_diff
                    UNION ALL SELECT new_contact, 0 FROM id_node_diff
                    UNION ALL SELECT old_contact, 0 FROM id_map_diff
                    {gained_rows}) u
              WHERE u.contact_id IS NOT NULL GROUP BY u.contact_id) t
        LEFT JOIN contacts c ON c.contact_id = t.contact_id
    """))
    recomputed = "SELECT contact_id FROM id_touched WHERE NOT (gained_only AND existed)"
    conn.execute(sa.text(f"DELETE FROM contacts WHERE contact_id IN ({recomputed})"))
    conn.execute(sa.text(  # on a first run every contact is recomputed
        "INSERT INTO contacts (contact_id, node_count, record_count, brands, match_type, first_seen_as_of) "
        + contacts_sql(recomputed=None if gained is None else recomputed)))
    if gained is None or not conn.execute(sa.text(
            "SELECT COUNT(*) FROM id_touched WHERE gained_only AND existed")).scalar_one():
        return
    conn.execute(sa.text(
        "UPDATE contacts SET record_count = contacts.record_count + g.records "
        f"FROM (SELECT contact_id, COUNT(*) AS records FROM ({gained}) n GROUP BY contact_id) g "
        "WHERE g.contact_id = contacts.contact_id "
        "  AND g.contact_id IN (SELECT contact_id FROM id_touched WHERE gained_only AND existed)"))


# The rows of the files held but changed (id_map_files not whole), on either side: filtered before they are joined.
_CHANGED_FILES = "SELECT _file_id FROM id_map_files WHERE NOT whole"
_map_rows = ("SELECT _file_id, _row_number, contact_id FROM identity_map "
             f"WHERE entity = :e AND _file_id IN ({_CHANGED_FILES})")


def _staged_rows(entity: str, where: str) -> str:
    return (f"SELECT t._file_id, t._row_number FROM stg_{entity} t "
            f"WHERE t._file_id IN ({_CHANGED_FILES}) AND {where}")


# A file's rows as a set, summarised: count, sum, and a sum of pseudo-random images of the row numbers.
_LINEAGE_SUMMARY = ("COUNT(*) AS n, SUM(CAST(_row_number AS BIGINT)) AS s, "
                    "SUM((CAST(_row_number AS BIGINT) * 2654435761) % 4294967291) AS h")


def _map_holds_later_rows(conn: sa.Connection, since: Since) -> bool:
    """Whether identity_map holds a row of a file after `since` (per entity): then those files are not all new.
    One statement (PostgreSQL scans the map once); its lowest file id lets DuckDB skip every older row group."""
    later = {entity: int(last) for entity, last in since.items() if last is not None}
    if not later:
        return False
    names = {entity: i for i, entity in enumerate(later)}
    each = " OR ".join(f"(entity = :e{i} AND _file_id > :f{i})" for i in names.values())
    values = {**{f"e{i}": e for e, i in names.items()}, **{f"f{i}": later[e] for e, i in names.items()},
              "lowest": min(later.values())}
    return conn.execute(sa.text(f"SELECT 1 FROM identity_map WHERE _file_id > :lowest AND ({each}) LIMIT 1"),
                        values).first() is not None


def _files_that_differ(conn: sa.Connection, entity: str, where: str, since: int | None) -> None:
    """`id_map_files` (_file_id, whole, n): the files whose staged rows of `entity` are not the rows identity_map
    holds for them; `whole` when the map holds none of them (all `n` staged rows are new). Compared by a per-file
    summary (one columnar scan of two integer columns, as the run's fingerprint does), so that the row-by-row
    comparison reads only the files held but changed. With `since` (only files after it gained rows since the
    last run), those files, all new, without a scan of the map."""
    conn.execute(sa.text("DROP TABLE IF EXISTS id_map_files"))
    if since is not None:
        conn.execute(sa.text("CREATE TEMPORARY TABLE id_map_files AS SELECT _file_id, TRUE AS whole, COUNT(*) AS n "
                             f"FROM stg_{entity} t WHERE t._file_id > {int(since)} AND {where} GROUP BY _file_id"))
        return
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE id_map_files AS
        SELECT COALESCE(t._file_id, m._file_id) AS _file_id, m._file_id IS NULL AS whole, t.n
        FROM (SELECT _file_id, {_LINEAGE_SUMMARY} FROM stg_{entity} t WHERE {where} GROUP BY _file_id) t
        FULL OUTER JOIN (SELECT _file_id, {_LINEAGE_SUMMARY} FROM identity_map WHERE entity = :e GROUP BY _file_id) m
          ON m._file_id = t._file_id
        WHERE t._file_id IS NULL OR m._file_id IS NULL OR t.n <> m.n OR t.s <> m.s OR t.h <> m.h"""), {"e": entity})


def _write_nodes(conn: sa.Connection, next_nodes: str, stored_scope: str | None) -> None:
    """Replace the identity_nodes rows (of the contacts `stored_scope` selects) that differ from `next_nodes`;
    id_node_diff says which (old and new contact)."""
    stored = "identity_nodes" if stored_scope is None else \
        f"(SELECT * FROM identity_nodes WHERE contact_id IN ({stored_scope}))"
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE id_node_diff AS
        SELECT COALESCE(n.node_id, o.node_id) AS node_id, o.contact_id AS old_contact, n.contact_id AS new_contact,
               n.node_id IS NOT NULL AS present
        FROM {stored} o FULL OUTER JOIN {next_nodes} n ON n.node_id = o.node_id
        WHERE o.node_id IS NULL OR n.node_id IS NULL OR o.contact_id <> n.contact_id OR o.match_type <> n.match_type
           OR o.match_probability IS DISTINCT FROM n.match_probability OR o.first_seen_as_of <> n.first_seen_as_of
    """))
    conn.execute(sa.text("DELETE FROM identity_nodes WHERE node_id IN (SELECT node_id FROM id_node_diff)"))
    conn.execute(sa.text(
        "INSERT INTO identity_nodes (node_id, contact_id, match_type, match_probability, first_seen_as_of) "
        f"SELECT node_id, contact_id, match_type, match_probability, first_seen_as_of FROM {next_nodes} "
        "WHERE node_id IN (SELECT node_id FROM id_node_diff WHERE present)"))


def _drop_scratch(conn: sa.Connection) -> None:
    for table in _TEMPORARY:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
