"""Writing a day of a table kept as validity intervals: only the keys whose values changed are written.

A contact's scores, preferences, preferred channel and lifecycle stage change on few days, so their tables are
views (`warehouse.scoring_schema.view_sql`) over `<table>_spans`: one row per key and stretch of days with
equal values (engagement: equal scores as of an anchor day, which the view decays), from `valid_from` to the
day before `valid_to` (empty: still holding), shown on each day of `scoring_days`. A run computes the day's
rows of the contacts whose rows can change (`carry`) into an empty copy of the view (`profiles.rewrite.begin`),
and `write` compares them with the spans holding on the day (of the contacts in `scope` only, when given) in
one full outer join on the key (`profiles.rewrite.diff`). A key whose values differ (floats beyond the last
bits: sums in another order differ there) or that the copy no longer has ends its span the day before; a key
with new values gets a span from the day on. A day after which other days are stored (a backfill, a re-run of
an older day) keeps those days as they were: the old span goes on from the next day, the new one holds for the
day alone. So a new day writes only what moved, and every stored day reads back as it was computed.
Portable: IS DISTINCT FROM, row-value IN and UPDATE ... FROM run on DuckDB and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from crm_pipeline.profiles.rewrite import DIFF, diff, drop_diff, next_table, same
from crm_pipeline.warehouse.scoring_schema import DECAYED, SPANS, decayed, scoring_days

TOLERANCE = 1e-12  # a float kept as stored when the recomputed one is this close (relative)


def add_day(conn: sa.Connection, as_of: dt.date) -> None:
    """List `as_of` among the days the views show."""
    conn.execute(sa.text("INSERT INTO scoring_days (as_of) SELECT CAST(:d AS DATE) "
                         "WHERE NOT EXISTS (SELECT 1 FROM scoring_days WHERE as_of = :d)"), {"d": as_of})


def holding(alias: str = "t") -> str:
    """The condition that the span `alias` holds on :as_of."""
    return f"{alias}.valid_from <= :as_of AND ({alias}.valid_to IS NULL OR {alias}.valid_to > :as_of)"


def write(conn: sa.Connection, table: sa.Table, key: tuple[str, ...], as_of: dt.date,
          scope: str | None = None, half_life: float | None = None) -> int:
    """Bring the spans of `table` holding on `as_of` (of the contacts in the table `scope`, when given) to the
    rows of its copy; returns the keys written (changed, new or gone). Drops the copy. Engagement's scores are
    compared decayed to the day, and a new span holds them as of the day (`half_life`: their decay)."""
    spans = SPANS[table.name]
    stored = [c.name for c in spans.columns if c.name not in ("valid_from", "valid_to")]
    anchored = "anchor" in stored
    values = [c for c in stored if c not in key and c not in ("anchor", "half_life_days")]
    floats = {c.name for c in spans.columns if isinstance(c.type, sa.Float)}
    held = [f"t.{c}" for c in key] + [decayed(c, "CAST(:as_of AS DATE)", "t") + f" AS {c}" if c in DECAYED
                                      else f"t.{c}" for c in values]
    current = (f"SELECT t.valid_from, {', '.join(held)}{', t.half_life_days' if anchored else ''} FROM {spans.name} t"
               + ("" if scope is None else f" JOIN {scope} sc ON sc.contact_id = t.contact_id") +
               f" WHERE {holding()}")
    day = {"as_of": as_of, **({"half_life": half_life} if anchored else {})}
    later = conn.execute(sa.select(sa.func.min(scoring_days.c.as_of)).where(scoring_days.c.as_of > as_of)).scalar()
    if scope is None and conn.execute(sa.text(f"SELECT 1 FROM {spans.name} t WHERE {holding()} LIMIT 1"),
                                      day).first() is None:
        # nothing holds on the day (a first run): every row is new
        written = conn.execute(sa.text(f"SELECT COUNT(*) FROM {next_table(table.name)}")).scalar_one()
        _insert(conn, table, key, values, day, later)
    else:
        written = diff(conn, next_table(table.name), current, key, values, picked=["s.valid_from"], params=day,
                       floats=floats, tolerance=TOLERANCE,
                       differs_also="s.half_life_days <> :half_life" if anchored else None)
        if written:
            _end_old(conn, spans.name, key, stored, as_of, later)
            _insert(conn, table, key, values, day, later, changed=True)
    conn.execute(sa.text(f"DROP TABLE {next_table(table.name)}"))
    drop_diff(conn)
    return int(written)


def _insert(conn: sa.Connection, table: sa.Table, key: tuple[str, ...], values: list[str], day: dict,
            later: dt.date | None, changed: bool = False) -> None:
    """Spans from the day on of the copy's rows (of the keys `DIFF` lists new or changed, with `changed`): until
    the next stored day, when there is one, else open."""
    spans = SPANS[table.name]
    anchor = ("anchor, half_life_days, ", "CAST(:as_of AS DATE), :half_life, ") if "half_life" in day else ("", "")
    listed = (f" JOIN {DIFF} c ON {same(key, 'n', 'c')} WHERE c.action <> 'delete'" if changed else "")
    conn.execute(sa.text(f"""
        INSERT INTO {spans.name} (valid_from, valid_to, {anchor[0]}{', '.join((*key, *values))})
        SELECT CAST(:as_of AS DATE), CAST(:until AS DATE), {anchor[1]}{', '.join(f'n.{c}' for c in (*key, *values))}
        FROM {next_table(table.name)} n{listed}"""),
        {**day, "until": None if later is None else day["as_of"] + dt.timedelta(days=1)})


def _end_old(conn: sa.Connection, spans: str, key: tuple[str, ...], stored: list[str], as_of: dt.date,
             later: dt.date | None) -> None:
    """End the changed keys' spans holding on `as_of` the day before it (a span starting on it goes); a stored
    day after `as_of` that such a span held keeps its values: the span goes on from the next day."""
    old = f"JOIN {DIFF} c ON {same(key, 't', 'c')} AND c.valid_from = t.valid_from AND c.action <> 'insert'"
    params = {"as_of": as_of}
    if later is not None:
        conn.execute(sa.text(f"""
            INSERT INTO {spans} (valid_from, valid_to, {', '.join(stored)})
            SELECT CAST(:next AS DATE), t.valid_to, {', '.join(f't.{c}' for c in stored)}
            FROM {spans} t {old} WHERE t.valid_to IS NULL OR t.valid_to > :later"""),
                     {"next": as_of + dt.timedelta(days=1), "later": later})
    listed = ", ".join((*key, "valid_from"))
    conn.execute(sa.text(f"DELETE FROM {spans} WHERE valid_from = :as_of AND ({listed}) IN "
                         f"(SELECT {listed} FROM {DIFF} WHERE action <> 'insert')"), params)
    conn.execute(sa.text(f"UPDATE {spans} SET valid_to = :as_of FROM {DIFF} c "
                         f"WHERE {same(key, 'c', spans)} AND c.valid_from = {spans}.valid_from "
                         f"AND c.action <> 'insert'"), params)
