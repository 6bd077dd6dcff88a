"""Publish staging from the typed rows, in SQL: rules across rows, holds, dedup, accounting.

Every typed row gets exactly one outcome in `row_outcomes`: `quarantined` (it broke
a hard rule; `rule_hits` says which), `held` (its file broke too many), `staged`
(the surviving row of its key) or `deduplicated` (another row of the same key won:
the newest `updated_at`, then the newest file, then the later row). `stg_<entity>`,
`dedup_log`, `quarantine` and `file_quality` are derived from it, delete-then-insert
in one transaction, so a re-run gives identical tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES, Entity
from crm_pipeline.contract import violations as rules
from crm_pipeline.warehouse.quality_schema import create_quality_tables

ORDER_OF_ENTITIES = ("customers", "products", "orders", "order_items", "subscribers", "email_events", "web_events")


def conflict_rule(entity: Entity) -> str:
    """The rule name for a second, different row under a key its file already used."""
    return rules.DUPLICATED_ORDER_ID if entity.name == "orders" else rules.DUPLICATED_ANY_KEY


def source_key_sql(entity: Entity, alias: str = "t") -> str:
    """The natural key as written in the file (`order_id:line_number` for a composite key)."""
    parts = [f"CAST({alias}.{_q(k)} AS VARCHAR)" for k in entity.key]
    return parts[0] if len(parts) == 1 else " || ':' || ".join(parts)


def publish(engine: sa.Engine, *, hold_share: float) -> None:
    """Rebuild staging, quarantine, dedup log and per-file accounting for every entity."""
    create_quality_tables(engine)
    with engine.begin() as conn:
        for name in ORDER_OF_ENTITIES:
            _publish_entity(conn, ENTITIES[name], hold_share)


def _publish_entity(conn: sa.Connection, entity: Entity, hold_share: float) -> None:
    e = entity.name
    typed, stg = f"typed_{e}", f"stg_{e}"
    key_cols = ", ".join(f"t.{_q(k)}" for k in entity.key)
    key_match = " AND ".join(f"p.{_q(k)} = t.{_q(k)}" for k in entity.key)
    updated = "t.updated_at" if entity.has_column("updated_at") else "CAST(NULL AS TIMESTAMP)"
    same_updated = "p.updated_at IS NOT DISTINCT FROM t.updated_at" if entity.has_column("updated_at") else "1 = 1"
    params = {"e": e, "share": hold_share, "follows": rules.ORDER_QUARANTINED}
    for table in ("rule_hits", "row_outcomes", "dedup_log", "quarantine"):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE entity = :e"), params)
    conn.execute(sa.text(f"DELETE FROM file_quality WHERE entity = :e"), params)
    conn.execute(sa.text(f"DELETE FROM {stg}"))

    # Rules a row breaks on its own (found when its file was typed).
    conn.execute(sa.text(
        'INSERT INTO rule_hits (entity, _file_id, _row_number, "column", rule, raw_value) '
        'SELECT entity, _file_id, _row_number, "column", rule, raw_value FROM row_violations WHERE entity = :e'
    ), params)
    # A second, different row under a key the same file already used, with nothing saying which is newer.
    conn.execute(sa.text(f"""
        INSERT INTO rule_hits (entity, _file_id, _row_number, "column", rule, raw_value)
        SELECT :e, t._file_id, t._row_number, :key_name, :rule, {source_key_sql(entity)}
        FROM {typed} t
        WHERE NOT EXISTS (SELECT 1 FROM row_violations v WHERE v.entity = :e
                          AND v._file_id = t._file_id AND v._row_number = t._row_number)
          AND EXISTS (SELECT 1 FROM {typed} p WHERE p._file_id = t._file_id AND p._brand = t._brand
                      AND {key_match} AND p._row_number < t._row_number
                      AND p._row_hash <> t._row_hash AND {same_updated}
                      AND NOT EXISTS (SELECT 1 FROM row_violations pv WHERE pv.entity = :e
                                      AND pv._file_id = p._file_id AND pv._row_number = p._row_number))
    """), {**params, "key_name": "|".join(entity.key), "rule": conflict_rule(entity)})
    if e == "order_items":
        # An order line whose order no orders file of the brand has (checked again on every run,
        # so lines that arrive before their order are released once the order lands).
        conn.execute(sa.text(f"""
            INSERT INTO rule_hits (entity, _file_id, _row_number, "column", rule, raw_value)
            SELECT :e, t._file_id, t._row_number, 'order_id', :rule, t.order_id
            FROM {typed} t
            WHERE t.order_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM typed_orders o WHERE o._brand = t._brand AND o.order_id = t.order_id)
        """), {**params, "rule": rules.ORPHAN_ORDER_ITEM})
        # An order line whose order is in a file but not staged (every row of it quarantined, or its
        # file held): held back with it, and released on the run after a corrected order lands.
        # stg_orders is already rebuilt: ORDER_OF_ENTITIES publishes orders first, in this transaction.
        conn.execute(sa.text(f"""
            INSERT INTO rule_hits (entity, _file_id, _row_number, "column", rule, raw_value)
            SELECT :e, t._file_id, t._row_number, 'order_id', :rule, t.order_id
            FROM {typed} t
            WHERE EXISTS (SELECT 1 FROM typed_orders o WHERE o._brand = t._brand AND o.order_id = t.order_id)
              AND NOT EXISTS (SELECT 1 FROM stg_orders o WHERE o._brand = t._brand AND o.order_id = t.order_id)
        """), {**params, "rule": rules.ORDER_QUARANTINED})

    # Files whose share of quarantined rows passes the threshold are held whole. Lines held for their
    # order's sake do not count: the fault is in the orders file, and holding theirs would not fix it.
    held = f"""
        SELECT f.file_id FROM files f
        JOIN (SELECT _file_id, COUNT(DISTINCT _row_number) AS n FROM rule_hits
              WHERE entity = :e AND rule <> :follows GROUP BY _file_id) h
          ON h._file_id = f.file_id
        WHERE f.rows_loaded > 0 AND CAST(h.n AS DOUBLE PRECISION) / f.rows_loaded > :share
    """
    window = (f"PARTITION BY t._brand, {key_cols} ORDER BY {updated} DESC NULLS LAST, "
              "t._file_id DESC, t._row_number DESC")
    conn.execute(sa.text(f"""
        INSERT INTO row_outcomes (entity, _file_id, _row_number, _brand, source_key, outcome,
                                  kept_file_id, kept_row_number, reason)
        WITH hits AS (SELECT DISTINCT _file_id, _row_number FROM rule_hits WHERE entity = :e),
             held AS ({held}),
             marked AS (
               SELECT t.*, CASE WHEN h._file_id IS NOT NULL THEN 'quarantined'
                                WHEN hf.file_id IS NOT NULL THEN 'held' END AS fixed
               FROM {typed} t
               LEFT JOIN hits h ON h._file_id = t._file_id AND h._row_number = t._row_number
               LEFT JOIN held hf ON hf.file_id = t._file_id),
             ranked AS (
               SELECT t._file_id, t._row_number, t._brand, {source_key_sql(entity)} AS source_key, t._row_hash,
                      ROW_NUMBER() OVER ({window}) AS rn,
                      FIRST_VALUE(t._file_id) OVER ({window}) AS kept_file_id,
                      FIRST_VALUE(t._row_number) OVER ({window}) AS kept_row_number,
                      FIRST_VALUE(t._row_hash) OVER ({window}) AS kept_hash
               FROM marked t WHERE t.fixed IS NULL)
        SELECT :e, _file_id, _row_number, _brand, source_key,
               CASE WHEN rn = 1 THEN 'staged' ELSE 'deduplicated' END,
               CASE WHEN rn = 1 THEN NULL ELSE kept_file_id END,
               CASE WHEN rn = 1 THEN NULL ELSE kept_row_number END,
               CASE WHEN rn = 1 THEN NULL WHEN _row_hash = kept_hash THEN 'identical_row' ELSE 'superseded' END
        FROM ranked
        UNION ALL
        SELECT :e, t._file_id, t._row_number, t._brand, {source_key_sql(entity)}, t.fixed, NULL, NULL, NULL
        FROM marked t WHERE t.fixed IS NOT NULL
    """), params)

    conn.execute(sa.text(f"""
        INSERT INTO {stg} SELECT t.* FROM {typed} t
        JOIN row_outcomes o ON o.entity = :e AND o._file_id = t._file_id AND o._row_number = t._row_number
        WHERE o.outcome = 'staged'
    """), params)
    conn.execute(sa.text("""
        INSERT INTO dedup_log (entity, brand, source_key, file_id, row_number, kept_file_id, kept_row_number, reason)
        SELECT entity, _brand, source_key, _file_id, _row_number, kept_file_id, kept_row_number, reason
        FROM row_outcomes WHERE entity = :e AND outcome = 'deduplicated'
    """), params)
    # A quarantined row is resolved when a later file staged the same key, or replaced its whole file.
    conn.execute(sa.text(f"""
        INSERT INTO quarantine (entity, brand, file_id, file, row_number, source_key, "column", rule, raw_value,
                                status, resolved_by_file_id)
        WITH fixes AS (
          SELECT r.entity, r._file_id, r._row_number,
                 MIN(CASE WHEN s._file_id > r._file_id THEN s._file_id END) AS by_key,
                 MIN(nf.file_id) AS by_file
          FROM (SELECT DISTINCT entity, _file_id, _row_number FROM rule_hits WHERE entity = :e) r
          JOIN row_outcomes o ON o.entity = r.entity AND o._file_id = r._file_id AND o._row_number = r._row_number
          JOIN files f ON f.file_id = r._file_id
          LEFT JOIN row_outcomes s ON s.entity = r.entity AND s.outcome = 'staged'
                                  AND s._brand = o._brand AND s.source_key = o.source_key
          LEFT JOIN files nf ON nf.path = f.path AND nf.file_id > f.file_id AND nf.status = 'loaded'
          GROUP BY r.entity, r._file_id, r._row_number)
        SELECT h.entity, o._brand, h._file_id, f.path, h._row_number, o.source_key, h."column", h.rule, h.raw_value,
               CASE WHEN COALESCE(x.by_key, x.by_file) IS NULL THEN 'open' ELSE 'resolved' END,
               COALESCE(x.by_key, x.by_file)
        FROM rule_hits h
        JOIN row_outcomes o ON o.entity = h.entity AND o._file_id = h._file_id AND o._row_number = h._row_number
        JOIN files f ON f.file_id = h._file_id
        JOIN fixes x ON x.entity = h.entity AND x._file_id = h._file_id AND x._row_number = h._row_number
        WHERE h.entity = :e
    """), params)
    conn.execute(sa.text("""
        INSERT INTO file_quality (file_id, file, brand, entity, rows_read, staged, quarantined, deduplicated,
                                  held, superseded, top_rules)
        WITH counts AS (
          SELECT _file_id,
                 SUM(CASE WHEN outcome = 'staged' THEN 1 ELSE 0 END) AS staged,
                 SUM(CASE WHEN outcome = 'quarantined' THEN 1 ELSE 0 END) AS quarantined,
                 SUM(CASE WHEN outcome = 'deduplicated' THEN 1 ELSE 0 END) AS deduplicated,
                 SUM(CASE WHEN outcome = 'held' THEN 1 ELSE 0 END) AS held
          FROM row_outcomes WHERE entity = :e GROUP BY _file_id),
        rule_counts AS (
          SELECT _file_id, rule, COUNT(DISTINCT _row_number) AS n,
                 ROW_NUMBER() OVER (PARTITION BY _file_id ORDER BY COUNT(DISTINCT _row_number) DESC, rule) AS rk
          FROM rule_hits WHERE entity = :e GROUP BY _file_id, rule),
        top AS (
          SELECT _file_id, STRING_AGG(rule || ' (' || CAST(n AS VARCHAR) || ')', ', ' ORDER BY rk) AS top_rules
          FROM rule_counts WHERE rk <= 3 GROUP BY _file_id)
        SELECT f.file_id, f.path, f.brand, f.entity, f.rows_loaded,
               COALESCE(c.staged, 0), COALESCE(c.quarantined, 0), COALESCE(c.deduplicated, 0),
               COALESCE(c.held, 0) > 0,
               EXISTS (SELECT 1 FROM files nf WHERE nf.path = f.path AND nf.file_id > f.file_id
                       AND nf.status = 'loaded'),
               tp.top_rules
        FROM files f
        JOIN typed_files tf ON tf.file_id = f.file_id
        LEFT JOIN counts c ON c._file_id = f.file_id
        LEFT JOIN top tp ON tp._file_id = f.file_id
        WHERE f.status = 'loaded' AND f.entity = :e
    """), params)


def _q(name: str) -> str:
    return '"' + name + '"'
