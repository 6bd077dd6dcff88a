"""Which contacts a profile build recomputes, and the memory that lets it know.

A build is full when asked (`full_refresh`), on a warehouse's first build, when the as-of day
moves backwards (profiles are a snapshot as of one day: a backfill of an earlier day redoes
them all) and when the survivorship rules changed. Otherwise it recomputes only:
- touched contacts: the old and the new contact of every `identity_map` row added, removed,
  re-assigned (merges, splits) or re-staged from another file, compared with `profile_sources`,
  the copy the previous build kept, on the staged row's lineage (`_file_id`, `_row_number`:
  a staged row never changes in place, so two integers name it); the contact of every order
  whose lines changed (`profile_line_sources`, the same way); every contact with a record in a
  brand whose catalogue changed (`profile_product_sources`: names, categories and price terciles);
- due contacts, when the day moved forward: those with a record dated after the previous
  build's day up to today (`new_day`), and those with opens or clicks on a day that left a 30,
  90 or 365-day window (`windows`; both read from `contact_daily`, never from the events).
Of those, the contacts whose only change is new records of the entities in `APPENDED_ENTITIES` (or the
new day) are appended to: their new records' events, daily counts and browse counts are added, their
timelines renumbered from the earliest new event on, their 360 figures recomputed from the per-day
tables; the others (a record removed or moved to another contact, a new order, changed order lines
or catalogue) are rebuilt from all their records (`_split`). Changes are found per file first
(`_changed_files`, against the per-file summaries the builds keep in `profile_source_files`), so a day without a
new file compares no rows and hashes only this run's side.
Every other contact's rows stay as they are; only their `as_of` moves with the day (and
their scoring columns empty until the scoring stage attaches the new day's). The copies are
brought up to date by difference (only the lineage rows that changed), and each incremental
build logs its contacts and reasons in `profile_changes`, with the first day an appended contact's timeline
changed on (`since_day`; none for a contact rebuilt whole): the scoring stage redoes what the builds since
its last run redid, from that day on (`changes_since`, `changed_contacts`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import sqlalchemy as sa

from crm_pipeline.profiles.sql import (APPEND, BROWSED, ENGAGEMENT_WINDOWS, GOLDEN, NEW, PROFILED, RECOMPUTE, WHOLE,
                                       WINDOWED, as_of_params, day_number, fast_row_hash, utc_day)
from crm_pipeline.profiles.survivorship import dated_into_day_sql
from crm_pipeline.warehouse.profile_schema import SCORING_COLUMNS

_MAP = "contact_id, _file_id, _row_number"
_LINES = "brand, order_id, _file_id, _row_number"
_PRODUCTS = "brand, sku, _file_id, _row_number"
_STG_LINES = "_brand AS brand, order_id, _file_id, _row_number"
_STG_PRODUCTS = "_brand AS brand, sku, _file_id, _row_number"
_CHANGED_ORDERS = "tmp_profile_changed_orders"
_CHANGED_BRANDS = "tmp_profile_changed_brands"
_CHANGED_RECORDS = "tmp_profile_changed_records"
_CHANGED_LINES = "tmp_profile_changed_lines"
_WHY = "tmp_profile_why"
_CHANGED_FILES = "tmp_profile_changed_files"
_CHANGED_LINE_FILES = "tmp_profile_changed_line_files"
_SINCE = "tmp_profile_since"
# Reasons a build logs; `windows` changes the 360 figures only, not the timeline or the daily rows.
REASONS = ("records", "order_lines", "catalogue", "new_day", "windows")
# The reasons that mean a contact's records changed: what the stages following the log redo a contact for.
RECORD_REASONS = ("records", "order_lines", "catalogue", "new_day")


@dataclass(frozen=True)
class Plan:
    full: bool
    reason: str
    previous_as_of: dt.date | None


def rules_key(rules: dict) -> str:
    """A digest of the survivorship rules in force: a change of rules redoes every golden record."""
    text = json.dumps(sorted((r.field, r.rule, list(r.sources), sorted(r.relay_domains)) for r in rules.values()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_build(conn: sa.Connection, as_of: dt.date, key: str, *, full_refresh: bool, new_state: str = "") -> Plan:
    """Full or incremental, and why; `new_state` names a state table this build created (a warehouse profiled
    before it existed: a full build fills it)."""
    last = conn.execute(sa.text("SELECT as_of, rules_key FROM profile_builds "
                                "ORDER BY build_number DESC LIMIT 1")).first()
    previous = last.as_of if last is not None else None
    if full_refresh:
        return Plan(True, "full refresh requested", previous)
    if last is None:
        return Plan(True, "first build", previous)
    if new_state:
        return Plan(True, f"new state table {new_state}", previous)
    if as_of < last.as_of:
        return Plan(True, f"as_of moved back from {last.as_of}", previous)
    if key != last.rules_key:
        return Plan(True, "survivorship rules changed", previous)
    return Plan(False, "incremental", previous)


def _lineage_diff(current: str, kept: str, columns: str, current_only: str = "") -> str:
    """Rows of `current` and `kept` (both with `_file_id`, `_row_number`) whose lineage is on one side only,
    or whose `contact_id` differs when `columns` names it: the lineage, then `now_<column>` and `was_<column>`
    (NULL on the side without the row), and `now_<column>` of the `current_only` columns, which `kept` lacks."""
    both = ", ".join([f"c.{c} AS now_{c}, k.{c} AS was_{c}" for c in columns.split(", ")]
                     + [f"c.{c} AS now_{c}" for c in current_only.split(", ") if c])
    differ = " OR c.contact_id <> k.contact_id" if "contact_id" in columns else ""
    return (f"SELECT COALESCE(c._file_id, k._file_id) AS _file_id, COALESCE(c._row_number, k._row_number) "
            f"AS _row_number, {both} FROM ({current}) c FULL OUTER JOIN {kept} k "
            f"ON k._file_id = c._file_id AND k._row_number = c._row_number "
            f"WHERE c._file_id IS NULL OR k._file_id IS NULL{differ}")


# The two lineage copies compared per file first: the copy, the query of what it copies now, the hashed columns.
_SUMMARIZED = {
    "profile_sources": ("SELECT _file_id, _row_number, contact_id, entity, brand FROM identity_map", "contact_id"),
    "profile_line_sources": ("SELECT _file_id, _row_number, _brand AS brand, order_id FROM stg_order_items",
                             "brand, order_id"),
}


def _file_summary_sql(conn: sa.Connection, kept: str) -> str | None:
    """Per file of what `kept` copies now: `_file_id`, `n` (rows) and `h` (a sum of row hashes); None where the
    backend has no fast hash."""
    current, columns = _SUMMARIZED[kept]
    hashed = fast_row_hash(conn, f"CAST(_row_number AS BIGINT), {columns}")  # one type on both sides
    if hashed is None:
        return None
    return f"SELECT _file_id, COUNT(*) AS n, SUM({hashed}) AS h FROM ({current}) x GROUP BY _file_id"


def _changed_files(conn: sa.Connection, kept: str, name: str) -> tuple[str, str]:
    """The query of what `kept` copies now, and `kept`, narrowed to the files (`_file_id`) whose rows differ: this
    run's per-file summary (`name`_now) against the one the builds stored (`profile_source_files`), so the stored
    side is never hashed and the row-by-row join reads the changed files only (a new day without a new file compares
    no row). A file with no stored summary or a stale one (an erasure) is compared row by row, and its summary
    refreshed (`remember_file_summaries`). Not narrowed where the backend has no fast hash."""
    current = _SUMMARIZED[kept][0]
    summary = _file_summary_sql(conn, kept)
    if summary is None:
        return current, kept
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {name}_now AS {summary}"))
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE {name} AS SELECT COALESCE(c._file_id, k._file_id) AS _file_id
        FROM {name}_now c
        FULL OUTER JOIN (SELECT _file_id, row_count AS n, hash_sum AS h FROM profile_source_files
                         WHERE source = :kept) k ON k._file_id = c._file_id
        WHERE c.n IS DISTINCT FROM k.n OR c.h IS DISTINCT FROM k.h"""), {"kept": kept})
    within = f"WHERE _file_id IN (SELECT _file_id FROM {name})"
    return f"SELECT * FROM ({current}) x {within}", f"(SELECT * FROM {kept} {within})"


def _remember_file_summaries(conn: sa.Connection, *, full: bool) -> None:
    """Bring `profile_source_files` to the copies just written: whole after a full build, else the changed files'
    (their rows now equal this run's side, so its summary is theirs)."""
    for kept, name in (("profile_sources", _CHANGED_FILES), ("profile_line_sources", _CHANGED_LINE_FILES)):
        summary = _file_summary_sql(conn, kept)
        if summary is None:
            continue
        bound = {"kept": kept}
        if full:
            conn.execute(sa.text("DELETE FROM profile_source_files WHERE source = :kept"), bound)
            conn.execute(sa.text(f"INSERT INTO profile_source_files (source, _file_id, row_count, hash_sum) "
                                 f"SELECT :kept, _file_id, n, h FROM ({summary}) s"), bound)
            continue
        conn.execute(sa.text(f"DELETE FROM profile_source_files WHERE source = :kept "
                             f"AND _file_id IN (SELECT _file_id FROM {name})"), bound)
        conn.execute(sa.text(f"INSERT INTO profile_source_files (source, _file_id, row_count, hash_sum) "
                             f"SELECT :kept, _file_id, n, h FROM {name}_now "
                             f"WHERE _file_id IN (SELECT _file_id FROM {name})"), bound)


def _both_ways(current: str, kept: str, columns: str, out: str) -> str:
    """Rows in one table and not the other, either way: `out` columns of what changed."""
    return (f"SELECT {out} FROM (SELECT {current} EXCEPT SELECT {columns} FROM {kept}) a "
            f"UNION ALL SELECT {out} FROM (SELECT {columns} FROM {kept} EXCEPT SELECT {current}) b")


def select_recompute(conn: sa.Connection, plan: Plan, as_of: dt.date) -> dict[str, int]:
    """Create `tmp_profile_recompute` (contact_id) for an incremental build; returns contacts per reason."""
    drop_plan_tables(conn)
    # hash joins on the two integers of the lineage: 2.4x faster than on the three text keys over millions of rows
    current, kept = _changed_files(conn, "profile_sources", _CHANGED_FILES)
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_CHANGED_RECORDS} AS " +
                         _lineage_diff(current, kept, "contact_id", current_only="entity, brand")))
    current, kept = _changed_files(conn, "profile_line_sources", _CHANGED_LINE_FILES)
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_CHANGED_LINES} AS " +
                         _lineage_diff(current, kept, "brand, order_id")))
    products = _both_ways(f"{_STG_PRODUCTS} FROM stg_products", "profile_product_sources", _PRODUCTS, "brand")
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_CHANGED_ORDERS} AS SELECT DISTINCT brand, order_id FROM ("
                         f"SELECT now_brand AS brand, now_order_id AS order_id FROM {_CHANGED_LINES} "
                         f"WHERE now_brand IS NOT NULL UNION ALL SELECT was_brand, was_order_id FROM {_CHANGED_LINES} "
                         f"WHERE was_brand IS NOT NULL) c"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_CHANGED_BRANDS} AS SELECT DISTINCT brand FROM ({products}) c"))
    parts = {
        "records": f"SELECT now_contact_id AS contact_id FROM {_CHANGED_RECORDS} WHERE now_contact_id IS NOT NULL "
                   f"UNION ALL SELECT was_contact_id FROM {_CHANGED_RECORDS} WHERE was_contact_id IS NOT NULL",
        "order_lines": f"""SELECT m.contact_id FROM {_CHANGED_ORDERS} o JOIN identity_map m
                           ON m.entity = 'orders' AND m.brand = o.brand AND m.source_key = o.order_id""",
        "catalogue": f"SELECT m.contact_id FROM identity_map m JOIN {_CHANGED_BRANDS} b ON b.brand = m.brand",
    }
    params: dict = {}
    if plan.previous_as_of is not None and as_of > plan.previous_as_of:
        prev = plan.previous_as_of
        params = {"prev": prev, "as_of": as_of}
        left = []
        for n in ENGAGEMENT_WINDOWS:  # window starts: prev - (n - 1) then as_of - (n - 1)
            params[f"from_{n}"] = prev - dt.timedelta(days=n - 1)
            params[f"to_{n}"] = as_of - dt.timedelta(days=n - 1)
            left.append(f"(day >= :from_{n} AND day < :to_{n})")
        parts["new_day"] = "SELECT contact_id FROM contact_daily WHERE day > :prev AND day <= :as_of"
        parts["windows"] = ("SELECT contact_id FROM contact_daily "
                            f"WHERE (email_open_count > 0 OR email_click_count > 0) AND ({' OR '.join(left)})")
    union = " UNION ALL ".join(f"SELECT contact_id, '{why}' AS why FROM ({sql}) p{i}"
                               for i, (why, sql) in enumerate(parts.items()))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_WHY} AS SELECT DISTINCT contact_id, why FROM ({union}) u"), params)
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {RECOMPUTE} AS SELECT DISTINCT contact_id FROM {_WHY}"))
    _split(conn, params)
    counts = dict(conn.execute(sa.text(f"SELECT why, COUNT(*) FROM {_WHY} GROUP BY why")).all())
    return {why: int(counts.get(why, 0)) for why in parts}


# Entities whose new records an appended contact takes in by adding their events (a new order comes with its
# lines, which `order_lines` names: that contact is rebuilt whole).
APPENDED_ENTITIES = ("email_events", "web_events", "customers", "subscribers")


def _split(conn: sa.Connection, params: dict) -> None:
    """Split the recomputed contacts: `WHOLE` (a record removed from or moved to another contact, on either side;
    a new record of another entity; changed order lines or catalogue) are rebuilt from all their records; the
    rest (`APPEND`) take in their new records (`NEW`) and what the new day dates into their history. `GOLDEN`:
    the contacts whose golden records can change."""
    appended = ", ".join(f"'{e}'" for e in APPENDED_ENTITIES)  # fixed names from this module
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE {WHOLE} AS SELECT DISTINCT contact_id FROM (
            SELECT was_contact_id AS contact_id FROM {_CHANGED_RECORDS} WHERE was_contact_id IS NOT NULL
            UNION ALL SELECT now_contact_id FROM {_CHANGED_RECORDS}
            WHERE now_contact_id IS NOT NULL AND (was_contact_id IS NOT NULL OR now_entity NOT IN ({appended}))
            UNION ALL SELECT contact_id FROM {_WHY} WHERE why IN ('order_lines', 'catalogue')) w"""))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {APPEND} AS SELECT contact_id FROM {RECOMPUTE} "
                         f"WHERE contact_id NOT IN (SELECT contact_id FROM {WHOLE})"))
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE {NEW} AS
        SELECT _file_id, _row_number, now_entity AS entity, now_brand AS brand, now_contact_id AS contact_id
        FROM {_CHANGED_RECORDS} WHERE was_contact_id IS NULL AND now_contact_id IN (SELECT contact_id FROM {APPEND})"""))
    # same day, only web events, each of a brand the contact has a profile in (a new brand is a new profile row)
    browsed = "WHERE 1 = 0" if "prev" in params else f"""WHERE NOT EXISTS (
            SELECT 1 FROM {NEW} n LEFT JOIN profile_360_brand b ON b.contact_id = n.contact_id AND b.brand = n.brand
            WHERE n.contact_id = a.contact_id AND (n.entity <> 'web_events' OR b.contact_id IS NULL))"""
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {BROWSED} AS SELECT contact_id FROM {APPEND} a {browsed}"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {WINDOWED} AS SELECT contact_id FROM {_WHY} GROUP BY contact_id "
                         "HAVING MAX(CASE WHEN why = 'windows' THEN 0 ELSE 1 END) = 0"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {PROFILED} AS SELECT contact_id FROM {RECOMPUTE} "
                         f"WHERE contact_id NOT IN (SELECT contact_id FROM {BROWSED} "
                         f"UNION ALL SELECT contact_id FROM {WINDOWED})"))
    dated = f" UNION {dated_into_day_sql(APPEND)}" if "prev" in params else ""
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE {GOLDEN} AS SELECT contact_id FROM {WHOLE}
        UNION SELECT contact_id FROM {NEW} WHERE entity IN ('customers', 'subscribers'){dated}"""),
        {"since": as_of_params(params["prev"])["as_of_end"], "as_of_end": as_of_params(params["as_of"])["as_of_end"]}
        if dated else {})


def recompute_count(conn: sa.Connection, table: str = RECOMPUTE) -> int:
    """The contacts in one of the build's contact tables (`RECOMPUTE`, `WHOLE`, `BROWSED`, `WINDOWED` ...)."""
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def advance_day(conn: sa.Connection, as_of: dt.date) -> None:
    """Move every kept row to the new day (a full build would write it on every row); the scoring columns
    empty, as a full build leaves them until the new day's scores are attached."""
    empty = ", ".join(f"{c} = NULL" for c in SCORING_COLUMNS)
    for table, extra in (("golden_records", ""), ("timeline", ""), ("profile_360", f", {empty}"),
                         ("profile_360_brand", f", {empty}")):
        conn.execute(sa.text(f"UPDATE {table} SET as_of = :as_of{extra} WHERE as_of <> :as_of"), {"as_of": as_of})


def remember_sources(conn: sa.Connection, *, full: bool) -> None:
    """Keep what this build read, for the next build's comparison: whole when `full`, else by difference
    (the lineage rows that changed: a drop writes its own rows, not every row of the contacts it touched)."""
    if full:
        for table, columns, source in (("profile_sources", _MAP, f"{_MAP} FROM identity_map"),
                                       ("profile_line_sources", _LINES, f"{_STG_LINES} FROM stg_order_items"),
                                       ("profile_product_sources", _PRODUCTS, f"{_STG_PRODUCTS} FROM stg_products")):
            conn.execute(sa.text(f"DELETE FROM {table}"))
            conn.execute(sa.text(f"INSERT INTO {table} ({columns}) SELECT {source}"))
        _remember_file_summaries(conn, full=True)
        return
    for table, changed, was, source, columns in (
            ("profile_sources", _CHANGED_RECORDS, "was_contact_id", "identity_map", _MAP),
            ("profile_line_sources", _CHANGED_LINES, "was_brand", "stg_order_items", _LINES)):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE (_file_id, _row_number) IN "
                             f"(SELECT _file_id, _row_number FROM {changed} WHERE {was} IS NOT NULL)"))
        picked = ", ".join("s._brand" if c == "brand" and source != "identity_map" else f"s.{c}"
                           for c in columns.split(", "))
        conn.execute(sa.text(f"INSERT INTO {table} ({columns}) SELECT {picked} FROM {source} s "
                             f"JOIN {changed} c ON c._file_id = s._file_id AND c._row_number = s._row_number"))
    _remember_file_summaries(conn, full=False)
    conn.execute(sa.text(f"DELETE FROM profile_product_sources WHERE brand IN (SELECT brand FROM {_CHANGED_BRANDS})"))
    conn.execute(sa.text(f"INSERT INTO profile_product_sources ({_PRODUCTS}) SELECT {_STG_PRODUCTS} "
                         f"FROM stg_products WHERE _brand IN (SELECT brand FROM {_CHANGED_BRANDS})"))


def log_build(conn: sa.Connection, as_of: dt.date, plan: Plan, reason: str, recomputed: int, key: str) -> None:
    """One `profile_builds` row; an incremental build's contacts and reasons into `profile_changes`."""
    number = conn.execute(sa.text("SELECT COALESCE(MAX(build_number), 0) + 1 FROM profile_builds")).scalar_one()
    conn.execute(sa.text(
        "INSERT INTO profile_builds (build_number, as_of, mode, reason, contacts_recomputed, rules_key) "
        "VALUES (:number, :as_of, :mode, :reason, :n, :key)"),
        {"number": number, "as_of": as_of, "mode": "full" if plan.full else "incremental", "reason": reason,
         "n": recomputed, "key": key})
    if not plan.full:
        moved = plan.previous_as_of is not None and as_of > plan.previous_as_of
        conn.execute(sa.text(_since_sql(moved)), {"next": day_number(plan.previous_as_of) + 1} if moved else {})
        conn.execute(sa.text(f"INSERT INTO profile_changes (build_number, contact_id, reason, since_day) "
                             f"SELECT :number, w.contact_id, w.why, s.since_day FROM {_WHY} w "
                             f"LEFT JOIN {_SINCE} s ON s.contact_id = w.contact_id"), {"number": number})


# The staged times of the appended entities' records that become timeline events (customers give none).
_EVENT_TIMES = (("email_events", "occurred_at", True), ("web_events", "occurred_at", True),
                ("subscribers", "subscribed_at", False), ("subscribers", "unsubscribed_at", False))


def _since_sql(moved: bool) -> str:
    """`_SINCE`: per appended contact the earliest UTC day its timeline changed on, so that a following stage
    redoes its days from there only: its new records' event days and, when the day moved, the day after the
    previous build's (records dated into the new day). A contact rebuilt whole gets none (NULL in the log: any
    day); so does an appended one with an event of unknown day or none at all (conservative)."""
    parts = [f"SELECT n.contact_id, {utc_day('s.' + column)} AS day FROM {NEW} n JOIN stg_{entity} s "
             f"ON s._file_id = n._file_id AND s._row_number = n._row_number "
             f"WHERE n.entity = '{entity}'{'' if undated else f' AND s.{column} IS NOT NULL'}"
             for entity, column, undated in _EVENT_TIMES]
    if moved:
        parts.append(f"SELECT contact_id, CAST(:next AS INTEGER) FROM {APPEND}")
    return (f"CREATE TEMPORARY TABLE {_SINCE} AS SELECT contact_id, MIN(day) AS since_day FROM ("
            + " UNION ALL ".join(parts) + ") d GROUP BY contact_id HAVING COUNT(*) = COUNT(day)")


@dataclass(frozen=True)
class Since:
    """The profile builds after a later stage's last run: the newest one, and whether any was full."""
    latest: int | None
    full: bool


def changes_since(conn: sa.Connection, build: int | None) -> Since:
    """What the profile builds after `build` (None: all of them) did, for a stage that reads their output."""
    row = conn.execute(sa.text(
        "SELECT MAX(build_number), COALESCE(MAX(CASE WHEN mode = 'full' THEN 1 ELSE 0 END), 0) FROM profile_builds "
        "WHERE build_number > :after"), {"after": -1 if build is None else build}).one()
    return Since(row[0] if row[0] is not None else build, bool(row[1]))


def changed_contacts(conn: sa.Connection, table: str, after: int | None, upto: int | None,
                     reasons: tuple[str, ...], *, since: bool = False) -> dict[str, int]:
    """Create the temporary `table` (contact_id) of the contacts the incremental builds after `after` up to
    `upto` recomputed for one of `reasons`; returns contacts per reason. With `since`, also `since_day`: the
    earliest day any of those builds changed the contact's timeline on, NULL when one may have changed any."""
    bound = {"after": -1 if after is None else after, "upto": -1 if upto is None else upto}
    scope = "build_number > :after AND build_number <= :upto AND reason IN (" + \
            ", ".join(f"'{r}'" for r in reasons) + ")"  # fixed reason names from this module
    day = (", CASE WHEN COUNT(*) = COUNT(since_day) THEN MIN(since_day) END AS since_day" if since else "")
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {table} AS SELECT contact_id{day} FROM profile_changes "
                         f"WHERE {scope} GROUP BY contact_id"), bound)
    counts = dict(conn.execute(sa.text(f"SELECT reason, COUNT(DISTINCT contact_id) FROM profile_changes "
                                       f"WHERE {scope} GROUP BY reason"), bound).all())
    return {why: int(counts.get(why, 0)) for why in reasons}


# The stages that follow the change log, each recording in its runs table the last profile build it took in.
FOLLOWERS = ("predict_builds", "scoring_builds")


@dataclass(frozen=True)
class FollowerPlan:
    """A following stage's run: full or incremental and why, its last run's day, and the profile builds it
    follows (after `previous_profile_build`, up to `profile_build`)."""
    full: bool
    reason: str
    previous_as_of: dt.date | None
    previous_profile_build: int | None
    profile_build: int | None


def follower_full_because(last_as_of: dt.date | None, as_of: dt.date, *, full_refresh: bool) -> str | None:
    """Why a following stage's run is full whatever the log holds (asked for, a first run, an earlier day)."""
    if full_refresh:
        return "full refresh requested"
    if last_as_of is None:
        return "first run"
    if as_of < last_as_of:
        return f"as_of moved back from {last_as_of}"
    return None


def forget_changes(conn: sa.Connection, upto: int | None) -> None:
    """Drop the log of the builds up to `upto` that every following stage has taken in (it would grow with every
    build). A follower with no run yet is not waited for: its first run is a full one."""
    if upto is None:
        return
    inspector = sa.inspect(conn)
    for table in FOLLOWERS:
        if inspector.has_table(table):
            taken = conn.execute(sa.text(f"SELECT MAX(profile_build) FROM {table}")).scalar()
            upto = upto if taken is None else min(upto, int(taken))
    conn.execute(sa.text("DELETE FROM profile_changes WHERE build_number <= :upto"), {"upto": upto})


def drop_plan_tables(conn: sa.Connection) -> None:
    for name in (_SINCE, _CHANGED_FILES, f"{_CHANGED_FILES}_now", _CHANGED_LINE_FILES, f"{_CHANGED_LINE_FILES}_now",
                 PROFILED, WINDOWED, BROWSED, GOLDEN, NEW, APPEND, WHOLE,
                 RECOMPUTE, _CHANGED_RECORDS, _CHANGED_LINES, _CHANGED_ORDERS, _CHANGED_BRANDS, _WHY):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
