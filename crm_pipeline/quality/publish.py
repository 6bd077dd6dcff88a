"""Publish staging from the typed rows, in SQL: rules across rows, holds, dedup, accounting.

Every typed row gets exactly one outcome in `row_outcomes`: `quarantined` (it broke
a hard rule; `rule_hits` says which), `held` (its file broke too many), `staged`
(the surviving row of its key) or `deduplicated` (another row of the same key won:
the newest `updated_at`, then the newest file, then the later row). `dedup_log`,
`quarantine` and `file_quality` are derived from it, and each typed row is in `stg_<entity>`
if it is staged, in `unstaged_<entity>` if not: publishing moves only the rows whose place
changes (typing writes new rows to staging), never copying the staged rows again.

By default a run re-resolves only the keys that changed (see `quality/scope.py`): their rows
in every one of those tables are deleted and inserted again, all entities in one
transaction; nothing else is rewritten. `full_refresh` re-resolves every key with the same
statements, so both give identical tables, and a re-run gives identical tables.

Each table's rows are one SELECT of their own (`rule_hit_selects`, `outcomes_sql`, `dedup_log_sql`,
`quarantine_sql`, `file_quality_sql` ...), which this module deletes-then-inserts around and
`spark/publish.py` renders for Spark SQL, where whole partitions are overwritten instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES, Entity
from crm_pipeline.contract import violations as rules
from crm_pipeline.quality.scope import LAST_LOADED_PER_PATH, UNPUBLISHED_FILES, Scope
from crm_pipeline.warehouse.quality_schema import create_quality_tables

ORDER_OF_ENTITIES = ("customers", "products", "orders", "order_items", "subscribers", "email_events", "web_events")


@dataclass(frozen=True)
class Republished:
    """What one entity's publish re-resolved: natural keys, their typed rows, and how many of those are staged."""

    keys: int
    rows: int
    staged_rows_written: int
    files: tuple[int, ...] | None = ()  # files whose accounting was rewritten; None: every file (full refresh)


@dataclass(frozen=True)
class PublishReport:
    mode: str  # "incremental" or "full"
    entities: dict[str, Republished]


def conflict_rule(entity: Entity) -> str:
    """The rule name for a second, different row under a key its file already used."""
    return rules.DUPLICATED_ORDER_ID if entity.name == "orders" else rules.DUPLICATED_ANY_KEY


def source_key_sql(entity: Entity, alias: str = "t") -> str:
    """The natural key as written in the file (`order_id:line_number` for a composite key)."""
    parts = [f"CAST({alias}.{_q(k)} AS VARCHAR)" for k in entity.key]
    return parts[0] if len(parts) == 1 else " || ':' || ".join(parts)


def publish(engine: sa.Engine, *, hold_share: float, full_refresh: bool = False,
            on_entity: Callable[[int, int, int], None] | None = None) -> PublishReport:
    """Bring staging, quarantine, dedup log and per-file accounting up to date with the typed rows.

    Incremental unless `full_refresh`: only keys touched by new files, newly superseded files,
    files whose held state changed and (for order lines) re-resolved orders are re-resolved. An entity never
    published before (a first run) takes the full statements: its scope would be every key anyway.
    `on_entity(files done, files in all, rows re-resolved)` after each entity: progress counted in the loaded,
    typed files of the entities published so far (the run re-resolves some or all of their keys).
    """
    create_quality_tables(engine)
    done: dict[str, Republished] = {}
    with engine.begin() as conn:
        per_entity = _typed_files_per_entity(conn) if on_entity is not None else {}
        files_done, rows_done = 0, 0
        scopes: dict[str, Scope] = {}
        for name in ORDER_OF_ENTITIES:
            whole = (full_refresh or _never_published(conn, name)
                     or (name == "order_items" and scopes["orders"].full))  # lines follow a full re-resolve of orders
            scope = scopes[name] = Scope(ENTITIES[name], full=whole)
            scope.start(conn, scopes["orders"] if name == "order_items" else None)
            done[name] = _publish_entity(conn, ENTITIES[name], hold_share, scope)
            if on_entity is not None:
                files_done, rows_done = files_done + per_entity.get(name, 0), rows_done + done[name].rows
                on_entity(files_done, sum(per_entity.values()), rows_done)
        for scope in scopes.values():
            scope.drop(conn)
    return PublishReport("full" if full_refresh else "incremental", done)


def _typed_files_per_entity(conn: sa.Connection) -> dict[str, int]:
    return dict(conn.execute(sa.text(
        "SELECT f.entity, COUNT(*) FROM files f JOIN typed_files tf ON tf.file_id = f.file_id "
        "WHERE f.status = 'loaded' GROUP BY f.entity")).all())


def _never_published(conn: sa.Connection, entity: str) -> bool:
    """No file of the entity has accounting yet (a first run): every typed row is new, so the incremental scope
    would hold every key, and the full statements give the same tables without building and joining it."""
    return not conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM file_quality WHERE entity = :e)"),
                            {"e": entity}).scalar_one()


def _publish_entity(conn: sa.Connection, entity: Entity, hold_share: float, scope: Scope) -> Republished:
    e = entity.name
    params = publish_params(e, hold_share)
    untouched = not scope.full and scope.is_empty(conn)
    if not untouched:
        _find_rule_hits(conn, entity, scope, params)
    if not scope.full:
        flipped = list(conn.execute(sa.text(held_state_changed_sql(scope)), params).scalars())
        if flipped:  # every row of those files changes outcome: widen to their keys (in every file)
            scope.add_files(conn, flipped)
            _find_rule_hits(conn, entity, scope, params)
        elif untouched:  # nothing to re-resolve: no statement reads the entity's rows
            return Republished(0, 0, 0)
    for table in ("row_outcomes", "dedup_log", "quarantine"):
        lineage = ("_file_id", "_row_number") if table == "row_outcomes" else ("file_id", "row_number")
        conn.execute(sa.text(f"DELETE FROM {table} WHERE entity = :e AND {scope.has_row(table, *lineage)}"), params)
    scope.gather_accounted_files(conn)
    conn.execute(sa.text(f"DELETE FROM file_quality WHERE {replaced_file_quality(scope)}"), params)
    if scope.full:
        conn.execute(sa.text(f"INSERT INTO row_outcomes ({OUTCOME_COLUMNS}) {outcomes_sql(entity, scope)}"), params)
    else:
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {scope.outcomes} AS {outcomes_sql(entity, scope)}"), params)
        conn.execute(sa.text(f"INSERT INTO row_outcomes ({OUTCOME_COLUMNS}) "
                             f"SELECT {OUTCOME_COLUMNS} FROM {scope.outcomes}"))
    _move_rows(conn, e, scope, params)
    conn.execute(sa.text(f"INSERT INTO dedup_log ({DEDUP_LOG_COLUMNS}) {dedup_log_sql(scope)}"), params)
    conn.execute(sa.text(f"INSERT INTO quarantine ({QUARANTINE_COLUMNS}) {quarantine_sql(scope)}"), params)
    conn.execute(sa.text(f"INSERT INTO file_quality ({FILE_QUALITY_COLUMNS}) {file_quality_sql(scope)}"), params)
    keys, rows = scope.counts(conn)
    written = conn.execute(sa.text(staged_count_sql(scope)), params).scalar_one()
    return Republished(int(keys), int(rows), int(written), scope.file_ids(conn))


# Each statement below is the SELECT of rows one publish table gets, with the parameters of `publish_params`; DuckDB
# and PostgreSQL insert them after deleting the re-resolved rows, Spark overwrites partitions (`spark.publish`).
OUTCOME_COLUMNS = "entity, _file_id, _row_number, _brand, source_key, outcome, kept_file_id, kept_row_number, reason"
RULE_HIT_COLUMNS = 'entity, _file_id, _row_number, "column", rule, raw_value'
DEDUP_LOG_COLUMNS = "entity, brand, source_key, file_id, row_number, kept_file_id, kept_row_number, reason"
QUARANTINE_COLUMNS = ('entity, brand, file_id, file, row_number, source_key, "column", rule, raw_value, status, '
                      'resolved_by_file_id')
FILE_QUALITY_COLUMNS = ("file_id, file, brand, entity, rows_read, staged, quarantined, deduplicated, held, superseded, "
                        "top_rules")
# Files whose share of quarantined rows passes the threshold are held whole. Lines held for their
# order's sake do not count: the fault is in the orders file, and holding theirs would not fix it.
HELD_FILES = """
        SELECT f.file_id FROM files f
        JOIN (SELECT _file_id, COUNT(DISTINCT _row_number) AS n FROM rule_hits
              WHERE entity = :e AND rule <> :follows GROUP BY _file_id) h
          ON h._file_id = f.file_id
        WHERE f.rows_loaded > 0 AND CAST(h.n AS DOUBLE PRECISION) / f.rows_loaded > :share
    """


def publish_params(entity: str, hold_share: float) -> dict:
    """The bound parameters every publish statement of `entity` takes."""
    return {"e": entity, "share": hold_share, "follows": rules.ORDER_QUARANTINED}


def replaced_file_quality(scope: Scope) -> str:
    """The condition on a `file_quality` row that a run replaces: entity :e's accounting of every file with a
    re-resolved row, and of files no longer loaded (all of :e's on a full refresh). Their ids found by LEFT JOINs
    first, not by `IN (subquery) OR NOT EXISTS (subquery)` (two mark joins, a shape DuckDB 1.5.6 can park every
    thread on for good, duckdb/duckdb#24961)."""
    stale = "" if scope.full else (
        " AND file_id IN ("
        f"SELECT fq.file_id FROM file_quality fq LEFT JOIN {scope.accounted} a ON a.file_id = fq.file_id "
        "LEFT JOIN (SELECT f.file_id FROM files f JOIN typed_files tf ON tf.file_id = f.file_id "
        "           WHERE f.status = 'loaded' AND f.entity = :e) l ON l.file_id = fq.file_id "
        "WHERE fq.entity = :e AND (a.file_id IS NOT NULL OR l.file_id IS NULL))")
    return f"entity = :e{stale}"


def outcomes_sql(entity: Entity, scope: Scope) -> str:
    """The re-resolved rows' outcomes (`OUTCOME_COLUMNS`), from their typed rows and rule hits. An incremental run
    keeps them in a small table of its own too (`scope.outcomes`), so the tables derived next read them there
    instead of scanning all of row_outcomes."""
    key_cols = ", ".join(f"t.{_q(k)}" for k in entity.key)
    updated = "t.updated_at" if entity.has_column("updated_at") else "CAST(NULL AS TIMESTAMP)"
    typed = f"typed_{entity.name}"
    # Only the columns ranking reads: the scan of a wide typed table stays narrow.
    needed = ", ".join(f"t.{_q(c)}" for c in ("_file_id", "_row_number", "_brand", *entity.key, "_row_hash")
                       + (("updated_at",) if entity.has_column("updated_at") else ()))
    window = (f"PARTITION BY t._brand, {key_cols} ORDER BY {updated} DESC NULLS LAST, "
              "t._file_id DESC, t._row_number DESC")
    # Only keys with more than one candidate row need ranking: they are among the keys with more than one row
    # (`Scope.find_repeated_keys`, most keys have one), and the window sorts their rows alone; a row alone
    # under its key wins.
    # A row with an empty key part stays with the ranked ones (PARTITION BY puts such rows together).
    # Each candidate is marked `contested` by a LEFT JOIN to the keys to rank, and the two arms of `ranked` split on
    # that mark: not by `IN (SELECT * FROM repeated) OR ...` and `NOT IN (...)` in the arms of one UNION ALL over
    # the typed rows, the shape DuckDB 1.5.6 can park every thread on for good (duckdb/duckdb#24961).
    key_present = " AND ".join(f"t.{_q(k)} IS NOT NULL" for k in entity.key)
    key_missing = " OR ".join(f"t.{_q(k)} IS NULL" for k in entity.key)
    key_match_r = " AND ".join(f"r.{_q(k)} = t.{_q(k)}" for k in entity.key)
    return f"""
        WITH hits AS (SELECT DISTINCT _file_id, _row_number FROM rule_hits WHERE entity = :e),
             held AS ({HELD_FILES}),
             marked AS (
               SELECT {needed}, CASE WHEN h._file_id IS NOT NULL THEN 'quarantined'
                                WHEN hf.file_id IS NOT NULL THEN 'held' END AS fixed
               FROM {typed} t {scope.join_rows('t')}
               LEFT JOIN hits h ON h._file_id = t._file_id AND h._row_number = t._row_number
               LEFT JOIN held hf ON hf.file_id = t._file_id),
             candidates AS (SELECT * FROM marked t WHERE t.fixed IS NULL),
             repeated AS (
               SELECT t._brand, {key_cols} FROM candidates t {scope.join_repeated_keys('t')}
               WHERE {key_present}
               GROUP BY t._brand, {key_cols} HAVING COUNT(*) > 1),
             flagged AS (
               SELECT t.*, CASE WHEN r._brand IS NOT NULL OR {key_missing} THEN 1 ELSE 0 END AS contested
               FROM candidates t LEFT JOIN repeated r ON r._brand = t._brand AND {key_match_r}),
             ranked AS (
               SELECT t._file_id, t._row_number, t._brand, {source_key_sql(entity)} AS source_key, t._row_hash,
                      ROW_NUMBER() OVER ({window}) AS rn,
                      FIRST_VALUE(t._file_id) OVER ({window}) AS kept_file_id,
                      FIRST_VALUE(t._row_number) OVER ({window}) AS kept_row_number,
                      FIRST_VALUE(t._row_hash) OVER ({window}) AS kept_hash
               FROM flagged t WHERE t.contested = 1
               UNION ALL
               SELECT t._file_id, t._row_number, t._brand, {source_key_sql(entity)}, t._row_hash,
                      1, t._file_id, t._row_number, t._row_hash
               FROM flagged t WHERE t.contested = 0)
        SELECT CAST(:e AS VARCHAR) AS entity, _file_id, _row_number, _brand, source_key,
               CASE WHEN rn = 1 THEN 'staged' ELSE 'deduplicated' END AS outcome,
               CASE WHEN rn = 1 THEN NULL ELSE kept_file_id END AS kept_file_id,
               CASE WHEN rn = 1 THEN NULL ELSE kept_row_number END AS kept_row_number,
               CASE WHEN rn = 1 THEN NULL WHEN _row_hash = kept_hash THEN 'identical_row' ELSE 'superseded' END
                 AS reason
        FROM ranked
        UNION ALL
        SELECT :e, t._file_id, t._row_number, t._brand, {source_key_sql(entity)}, t.fixed, NULL, NULL, NULL
        FROM marked t WHERE t.fixed IS NOT NULL
    """


def dedup_log_sql(scope: Scope) -> str:
    """The re-resolved rows another row of their key won over (`DEDUP_LOG_COLUMNS`)."""
    return f"""
        SELECT entity, _brand, source_key, _file_id, _row_number, kept_file_id, kept_row_number, reason
        FROM {scope.outcomes} o WHERE entity = :e AND outcome = 'deduplicated'
    """


def quarantine_sql(scope: Scope) -> str:
    """The re-resolved quarantined rows' rule hits (`QUARANTINE_COLUMNS`), open or resolved.

    A quarantined row is resolved when a later file staged the same key, or replaced its whole file. Only the
    staged rows of the quarantined rows' keys are looked at (a few, not every staged row's key). The re-resolved
    rows with a rule hit are exactly the ones quarantined (`outcomes_sql`'s `marked`): read by their outcome, not
    by joining the rule hits to every outcome."""
    return f"""
        WITH hit AS (
          SELECT o._file_id, o._row_number, o._brand, o.source_key
          FROM {scope.outcomes} o WHERE o.entity = :e AND o.outcome = 'quarantined'),
        staged_keys AS (
          SELECT s._brand, s.source_key, s._file_id FROM {scope.outcomes} s
          WHERE s.entity = :e AND s.outcome = 'staged'
            AND (s._brand, s.source_key) IN (SELECT _brand, source_key FROM hit)),
        fixes AS (
          SELECT r._file_id, r._row_number,
                 MIN(CASE WHEN s._file_id > r._file_id THEN s._file_id END) AS by_key,
                 MIN(nf.file_id) AS by_file
          FROM hit r
          JOIN files f ON f.file_id = r._file_id
          LEFT JOIN staged_keys s ON s._brand = r._brand AND s.source_key = r.source_key
          LEFT JOIN files nf ON nf.path = f.path AND nf.file_id > f.file_id AND nf.status = 'loaded'
          GROUP BY r._file_id, r._row_number)
        SELECT h.entity, o._brand, h._file_id, f.path, h._row_number, o.source_key, h."column", h.rule, h.raw_value,
               CASE WHEN COALESCE(x.by_key, x.by_file) IS NULL THEN 'open' ELSE 'resolved' END,
               COALESCE(x.by_key, x.by_file)
        FROM rule_hits h
        JOIN hit o ON o._file_id = h._file_id AND o._row_number = h._row_number
        JOIN files f ON f.file_id = h._file_id
        JOIN fixes x ON x._file_id = h._file_id AND x._row_number = h._row_number
        WHERE h.entity = :e
    """


def file_quality_sql(scope: Scope) -> str:
    """The accounting (`FILE_QUALITY_COLUMNS`) of the loaded, typed files of :e whose accounting is rewritten.

    A file is superseded when a later file of its path is loaded: the path's last loaded file is later (a join
    to one row per path, not a correlated EXISTS in the select list)."""
    return f"""
        WITH counts AS (
          SELECT o._file_id,
                 SUM(CASE WHEN outcome = 'staged' THEN 1 ELSE 0 END) AS staged,
                 SUM(CASE WHEN outcome = 'quarantined' THEN 1 ELSE 0 END) AS quarantined,
                 SUM(CASE WHEN outcome = 'deduplicated' THEN 1 ELSE 0 END) AS deduplicated,
                 SUM(CASE WHEN outcome = 'held' THEN 1 ELSE 0 END) AS held
          FROM row_outcomes o {scope.join_accounted_files('o', '_file_id')}
          WHERE o.entity = :e GROUP BY o._file_id),
        rule_counts AS (
          SELECT r._file_id, r.rule, COUNT(DISTINCT r._row_number) AS n,
                 ROW_NUMBER() OVER (PARTITION BY r._file_id ORDER BY COUNT(DISTINCT r._row_number) DESC, r.rule) AS rk
          FROM rule_hits r {scope.join_accounted_files('r', '_file_id')}
          WHERE r.entity = :e GROUP BY r._file_id, r.rule),
        top AS (
          SELECT _file_id, STRING_AGG(rule || ' (' || CAST(n AS VARCHAR) || ')', ', ' ORDER BY rk) AS top_rules
          FROM rule_counts WHERE rk <= 3 GROUP BY _file_id),
        last_loaded AS ({LAST_LOADED_PER_PATH})
        SELECT f.file_id, f.path, f.brand, f.entity, f.rows_loaded,
               COALESCE(c.staged, 0), COALESCE(c.quarantined, 0), COALESCE(c.deduplicated, 0),
               COALESCE(c.held, 0) > 0,
               CASE WHEN ll.file_id > f.file_id THEN TRUE ELSE FALSE END,
               tp.top_rules
        FROM files f
        JOIN typed_files tf ON tf.file_id = f.file_id
        {scope.join_accounted_files('f')}
        LEFT JOIN counts c ON c._file_id = f.file_id
        LEFT JOIN top tp ON tp._file_id = f.file_id
        LEFT JOIN last_loaded ll ON ll.path = f.path
        WHERE f.status = 'loaded' AND f.entity = :e
    """


def staged_count_sql(scope: Scope) -> str:
    """How many re-resolved rows are staged."""
    return f"SELECT COUNT(*) FROM {scope.outcomes} o WHERE entity = :e AND outcome = 'staged'"


def _move_rows(conn: sa.Connection, e: str, scope: Scope, params: dict) -> None:
    """Each re-resolved row to the table of its outcome: `stg_<e>` when staged, `unstaged_<e>` when not.

    Only rows whose place changes move (a first run: the few not staged, out of staging). Rows come back to
    staging first, while `unstaged_<e>` holds only the rows earlier runs left there (none on a first run)."""
    def rows_not_staged(table: str) -> str:
        return (f"({table}._file_id, {table}._row_number) IN (SELECT _file_id, _row_number FROM {scope.outcomes} "
                f"WHERE entity = :e AND outcome <> 'staged')")

    unstaged = f"unstaged_{e}"
    if scope.full:
        # Every row has an outcome: staged is "not anything else". The few rows not staged are the lookup, not
        # the millions staged (a hash of every staged row took seconds at 100k people, for a table often empty).
        back = f"NOT {rows_not_staged(unstaged)}"
    else:
        back = (f"({unstaged}._file_id, {unstaged}._row_number) IN (SELECT _file_id, _row_number FROM "
                f"{scope.outcomes} WHERE entity = :e AND outcome = 'staged')")
    _move(conn, unstaged, f"stg_{e}", back, params)
    _move(conn, f"stg_{e}", unstaged, rows_not_staged(f"stg_{e}"), params)


def _move(conn: sa.Connection, source: str, target: str, where: str, params: dict | None = None) -> None:
    """The rows of `source` matching `where` to `target` (the same columns: `stg_<e>` and `unstaged_<e>`)."""
    conn.execute(sa.text(f"INSERT INTO {target} SELECT * FROM {source} WHERE {where}"), params or {})
    conn.execute(sa.text(f"DELETE FROM {source} WHERE {where}"), params or {})


def withdraw_unpublished(engine: sa.Engine) -> None:
    """Move the rows of files typed but never published out of staging, into `unstaged_<entity>`.

    Typing writes new rows straight into `stg_<entity>` and commits them batch by batch; publishing then
    resolves them (duplicates, quarantine, holds). A stage that fails in between would leave unresolved
    rows where the stages after it read: this takes them out again. The next publish re-resolves those
    files (they have no `file_quality` row yet) and moves their staged rows back."""
    with engine.begin() as conn:
        for e in ORDER_OF_ENTITIES:
            _move(conn, f"stg_{e}", f"unstaged_{e}", f"_file_id IN ({UNPUBLISHED_FILES})", {"e": e})


def _find_rule_hits(conn: sa.Connection, entity: Entity, scope: Scope, params: dict) -> None:
    """Replace the rule hits of the re-resolved rows: their own violations plus the rules across rows."""
    conn.execute(sa.text(f"DELETE FROM rule_hits WHERE entity = :e AND {scope.has_row('rule_hits')}"), params)
    scope.find_repeated_keys(conn)
    for select, extra in rule_hit_selects(entity, scope):
        conn.execute(sa.text(f"INSERT INTO rule_hits ({RULE_HIT_COLUMNS}) {select}"), {**params, **extra})


def rule_hit_selects(entity: Entity, scope: Scope) -> list[tuple[str, dict]]:
    """The re-resolved rows' rule hits (`RULE_HIT_COLUMNS`), as SELECTs with the parameters each takes beyond
    `publish_params`. The conflict rule reads `scope.repeated`: `Scope.find_repeated_keys` first."""
    e, typed = entity.name, f"typed_{entity.name}"
    key_match = " AND ".join(f"p.{_q(k)} = t.{_q(k)}" for k in entity.key)
    same_updated = "p.updated_at IS NOT DISTINCT FROM t.updated_at" if entity.has_column("updated_at") else "1 = 1"
    # Rules a row breaks on its own (found when its file was typed).
    selects = [(
        'SELECT entity, _file_id, _row_number, "column", rule, raw_value FROM row_violations v '
        f'WHERE entity = :e AND {scope.has_row("v")}', {})]
    # A second, different row under a key the same file already used, with nothing saying which is newer.
    # Only keys a file repeats can conflict, so the pairs are looked for among those rows: keys with more than
    # one row in all (`Scope.find_repeated_keys`, few), grouped by file, find them, and only their rows are
    # read whole and checked for a violation of their own. A join, not a correlated EXISTS: DuckDB 1.5.6 answers
    # `EXISTS (... p.r < t.r AND p.h <> t.h)` with no rows at all. The scope, the repeated keys and the rows with a
    # violation are joined too (the last as a LEFT JOIN ... IS NULL anti-join), not IN / NOT EXISTS subqueries: the
    # shapes DuckDB 1.5.6 can park every thread on for good (duckdb/duckdb#24961).
    key_cols_t = ", ".join(f"t.{_q(k)}" for k in entity.key)
    key_match_r = " AND ".join(f"r.{_q(k)} = t.{_q(k)}" for k in entity.key)
    updated = ", t.updated_at" if entity.has_column("updated_at") else ""
    selects.append((f"""
        WITH repeats AS (
          SELECT t._file_id, t._brand, {key_cols_t} FROM {typed} t {scope.join_rows('t')}
          {scope.join_repeated_keys('t')}
          GROUP BY t._file_id, t._brand, {key_cols_t} HAVING COUNT(*) > 1),
        violated AS (SELECT DISTINCT _file_id, _row_number FROM row_violations WHERE entity = :e),
        repeated AS (
          SELECT t._file_id, t._row_number, t._brand, {key_cols_t}, t._row_hash{updated},
                 {source_key_sql(entity)} AS source_key
          FROM {typed} t {scope.join_rows('t')}
          JOIN repeats r ON r._file_id = t._file_id AND r._brand = t._brand AND {key_match_r}
          LEFT JOIN violated v ON v._file_id = t._file_id AND v._row_number = t._row_number
          WHERE v._file_id IS NULL)
        SELECT DISTINCT CAST(:e AS VARCHAR), t._file_id, t._row_number, CAST(:key_name AS VARCHAR),
               CAST(:rule AS VARCHAR), t.source_key
        FROM repeated t
        JOIN repeated p ON p._file_id = t._file_id AND p._brand = t._brand AND {key_match}
                       AND p._row_number < t._row_number AND p._row_hash <> t._row_hash AND {same_updated}
    """, {"key_name": "|".join(entity.key), "rule": conflict_rule(entity)}))
    if e == "order_items":
        # An order line whose order no orders file of the brand has (checked again whenever an order of
        # the brand with that id is re-resolved, so lines that arrive before their order are released).
        selects.append((f"""
            SELECT CAST(:e AS VARCHAR), t._file_id, t._row_number, 'order_id', CAST(:rule AS VARCHAR), t.order_id
            FROM {typed} t {scope.join_rows('t')}
            LEFT JOIN (SELECT DISTINCT _brand, order_id FROM typed_orders) o
              ON o._brand = t._brand AND o.order_id = t.order_id
            WHERE t.order_id IS NOT NULL AND o.order_id IS NULL
        """, {"rule": rules.ORPHAN_ORDER_ITEM}))
        # An order line whose order is in a file but not staged (every row of it quarantined, or its
        # file held): held back with it, and released on the run after a corrected order lands.
        # stg_orders is already up to date: ORDER_OF_ENTITIES publishes orders first, in this transaction.
        selects.append((f"""
            SELECT CAST(:e AS VARCHAR), t._file_id, t._row_number, 'order_id', CAST(:rule AS VARCHAR), t.order_id
            FROM {typed} t {scope.join_rows('t')}
            JOIN (SELECT DISTINCT _brand, order_id FROM typed_orders) o
              ON o._brand = t._brand AND o.order_id = t.order_id
            LEFT JOIN (SELECT DISTINCT _brand, order_id FROM stg_orders) s
              ON s._brand = t._brand AND s.order_id = t.order_id
            WHERE s.order_id IS NULL
        """, {"rule": rules.ORDER_QUARANTINED}))
    return selects


def held_state_changed_sql(scope: Scope) -> str:
    """Published files (file_id) outside the scope whose `held` flag would now differ (a file with only
    quarantined rows has none held): their rows must all be re-resolved."""
    return f"""
        WITH held AS ({HELD_FILES}),
             hit AS (SELECT _file_id, COUNT(DISTINCT _row_number) AS n FROM rule_hits
                     WHERE entity = :e GROUP BY _file_id)
        SELECT fq.file_id FROM file_quality fq
        JOIN typed_files tf ON tf.file_id = fq.file_id
        LEFT JOIN held h ON h.file_id = fq.file_id
        LEFT JOIN hit q ON q._file_id = fq.file_id
        LEFT JOIN {scope.files} s ON s.file_id = fq.file_id
        WHERE fq.entity = :e AND s.file_id IS NULL
          AND fq.held <> (CASE WHEN h.file_id IS NOT NULL AND COALESCE(q.n, 0) < tf.rows_typed
                               THEN TRUE ELSE FALSE END)
        ORDER BY fq.file_id
    """


def _q(name: str) -> str:
    return '"' + name + '"'
