"""Which contacts' daily aggregates a scoring run rewrites, and the memory that lets it know.

A run is full when asked (`full_refresh`), on a warehouse's first run, when the as-of day moves
backwards and when the scoring settings changed.
Otherwise it rewrites only the aggregates of:
- touched contacts: the old and the new contact of every `identity_map` row added, removed,
  re-assigned or re-staged (`_file_id`, `_row_number`) since the last run (`scoring_sources`);
  the contact of every order whose lines changed (`scoring_line_sources`); every contact of a
  brand whose catalogue changed (`scoring_product_sources`: categories and price terciles);
- contacts with a record dated between the timeline's day at the previous run and its day now
  (the profile build added those records to their timeline when its day moved; read from
  `contact_daily`, never from the events). The timeline's day rather than the run's: the
  aggregates hold what the timeline held when they were read.
The day's tables are then derived from the aggregates for everyone, as a full run derives them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import sqlalchemy as sa

from crm_pipeline.scoring.config import ScoringConfig
from crm_pipeline.scoring.daily import RECOMPUTE

_MAP = "entity, brand, source_key, contact_id, _file_id, _row_number"
_LINES = "brand, order_id, _file_id, _row_number"
_PRODUCTS = "brand, sku, _file_id, _row_number"
_STG_LINES = "_brand AS brand, order_id, _file_id, _row_number"
_STG_PRODUCTS = "_brand AS brand, sku, _file_id, _row_number"
_CHANGED = ("tmp_scoring_changed_records", "tmp_scoring_changed_orders", "tmp_scoring_changed_brands")


@dataclass(frozen=True)
class Plan:
    full: bool
    reason: str
    previous_as_of: dt.date | None
    previous_timeline_as_of: dt.date | None


def config_key(config: ScoringConfig) -> str:
    """A digest of the scoring settings: a change redoes every contact (the aggregates follow the points,
    channels and attribution; the rows carried forward follow every threshold and lookback)."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_run(conn: sa.Connection, as_of: dt.date, key: str, *, full_refresh: bool) -> Plan:
    last = conn.execute(sa.text("SELECT as_of, config_key, timeline_as_of FROM scoring_builds "
                                "ORDER BY build_number DESC LIMIT 1")).first()
    previous = (last.as_of, last.timeline_as_of) if last is not None else (None, None)
    if full_refresh:
        return Plan(True, "full refresh requested", *previous)
    if last is None:
        return Plan(True, "first run", *previous)
    if as_of < last.as_of:
        return Plan(True, f"as_of moved back from {last.as_of}", *previous)
    if key != last.config_key:
        return Plan(True, "scoring settings changed", *previous)
    return Plan(False, "incremental", *previous)


def _both_ways(current: str, kept: str, columns: str, out: str) -> str:
    return (f"SELECT {out} FROM (SELECT {current} EXCEPT SELECT {columns} FROM {kept}) a "
            f"UNION ALL SELECT {out} FROM (SELECT {columns} FROM {kept} EXCEPT SELECT {current}) b")


def select_recompute(conn: sa.Connection, plan: Plan, timeline_as_of: dt.date | None) -> dict[str, int]:
    """Create `tmp_scoring_recompute` (contact_id) for an incremental run; returns contacts per reason."""
    drop_plan_tables(conn)
    records, orders, brands = _CHANGED
    conn.execute(sa.text(f"""CREATE TEMPORARY TABLE {records} AS
        SELECT m.contact_id AS now_id, p.contact_id AS was_id
        FROM identity_map m FULL OUTER JOIN scoring_sources p
          ON p.entity = m.entity AND p.brand = m.brand AND p.source_key = m.source_key
        WHERE m.entity IS NULL OR p.entity IS NULL OR m.contact_id <> p.contact_id
           OR m._file_id <> p._file_id OR m._row_number <> p._row_number"""))
    lines = _both_ways(f"{_STG_LINES} FROM stg_order_items", "scoring_line_sources", _LINES, "brand, order_id")
    products = _both_ways(f"{_STG_PRODUCTS} FROM stg_products", "scoring_product_sources", _PRODUCTS, "brand")
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {orders} AS SELECT DISTINCT brand, order_id FROM ({lines}) c"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {brands} AS SELECT DISTINCT brand FROM ({products}) c"))
    parts = {
        "records": f"SELECT now_id AS contact_id FROM {records} WHERE now_id IS NOT NULL "
                   f"UNION ALL SELECT was_id FROM {records} WHERE was_id IS NOT NULL",
        "order_lines": f"""SELECT m.contact_id FROM {orders} o JOIN identity_map m
                           ON m.entity = 'orders' AND m.brand = o.brand AND m.source_key = o.order_id""",
        "catalogue": f"SELECT m.contact_id FROM identity_map m JOIN {brands} b ON b.brand = m.brand",
    }
    params: dict = {}
    before, now = plan.previous_timeline_as_of, timeline_as_of
    if before != now:  # the timeline moved (either way): the days in between came in or went out
        days = sorted(d for d in (before, now) if d is not None)
        params = {"after": days[0] if len(days) == 2 else dt.date.min, "upto": days[-1]}
        parts["new_day"] = "SELECT contact_id FROM contact_daily WHERE day > :after AND day <= :upto"
    union = " UNION ALL ".join(f"SELECT contact_id, '{why}' AS why FROM ({sql}) p{i}"
                               for i, (why, sql) in enumerate(parts.items()))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE tmp_scoring_why AS SELECT DISTINCT contact_id, why FROM ({union}) u"),
                 params)
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {RECOMPUTE} AS SELECT DISTINCT contact_id FROM tmp_scoring_why"))
    counts = dict(conn.execute(sa.text("SELECT why, COUNT(*) FROM tmp_scoring_why GROUP BY why")).all())
    conn.execute(sa.text("DROP TABLE tmp_scoring_why"))
    return {why: int(counts.get(why, 0)) for why in parts}


def recompute_count(conn: sa.Connection) -> int:
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {RECOMPUTE}")).scalar_one()


def remember_sources(conn: sa.Connection, *, full: bool) -> None:
    """Keep what this run read, for the next run's comparison (only what changed, unless `full`)."""
    if full:
        for table, columns, source in (("scoring_sources", _MAP, f"{_MAP} FROM identity_map"),
                                       ("scoring_line_sources", _LINES, f"{_STG_LINES} FROM stg_order_items"),
                                       ("scoring_product_sources", _PRODUCTS, f"{_STG_PRODUCTS} FROM stg_products")):
            conn.execute(sa.text(f"DELETE FROM {table}"))
            conn.execute(sa.text(f"INSERT INTO {table} ({columns}) SELECT {source}"))
        return
    _, orders, brands = _CHANGED
    conn.execute(sa.text(f"DELETE FROM scoring_sources WHERE contact_id IN (SELECT contact_id FROM {RECOMPUTE})"))
    mapped = ", ".join("m." + c for c in _MAP.split(", "))
    conn.execute(sa.text(f"INSERT INTO scoring_sources ({_MAP}) SELECT {mapped} "
                         f"FROM identity_map m JOIN {RECOMPUTE} r ON r.contact_id = m.contact_id"))
    conn.execute(sa.text(f"DELETE FROM scoring_line_sources WHERE EXISTS (SELECT 1 FROM {orders} o "
                         "WHERE o.brand = scoring_line_sources.brand AND o.order_id = scoring_line_sources.order_id)"))
    conn.execute(sa.text(f"INSERT INTO scoring_line_sources ({_LINES}) SELECT i._brand, i.order_id, i._file_id, "
                         f"i._row_number FROM stg_order_items i JOIN {orders} o "
                         f"ON o.brand = i._brand AND o.order_id = i.order_id"))
    conn.execute(sa.text(f"DELETE FROM scoring_product_sources WHERE brand IN (SELECT brand FROM {brands})"))
    conn.execute(sa.text(f"INSERT INTO scoring_product_sources ({_PRODUCTS}) SELECT {_STG_PRODUCTS} "
                         f"FROM stg_products WHERE _brand IN (SELECT brand FROM {brands})"))


def log_run(conn: sa.Connection, as_of: dt.date, plan: Plan, reason: str, recomputed: int, key: str,
            timeline_as_of: dt.date | None) -> None:
    conn.execute(sa.text(
        "INSERT INTO scoring_builds (build_number, as_of, mode, reason, contacts_recomputed, config_key, "
        "timeline_as_of) SELECT COALESCE(MAX(build_number), 0) + 1, :as_of, :mode, :reason, :n, :key, :timeline "
        "FROM scoring_builds"),
        {"as_of": as_of, "mode": "full" if plan.full else "incremental", "reason": reason, "n": recomputed,
         "key": key, "timeline": timeline_as_of})


def drop_plan_tables(conn: sa.Connection) -> None:
    for name in (RECOMPUTE, *_CHANGED, "tmp_scoring_why"):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
