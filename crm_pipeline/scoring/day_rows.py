"""Rewriting one day's rows of a daily snapshot table by difference: a re-run of the same day (a drop) writes
only the rows that changed.

A drop re-runs the day, yet nearly all of its rows come out as they were. Deleting and inserting the whole
day again cost the drop more than the first run of the day: the statements, and on DuckDB the checkpoint at
commit, which compacts every row group that lost rows. So the run writes its rows into an empty temporary
copy of the table (`profiles.rewrite.begin`), and `finish` compares it with the day's stored rows (of the
contacts in `scope` only, when the run recomputed only those) in one full outer join on the key: a row whose
values differ (floats beyond the last bits) updates the stored one, a new key is inserted, a key the copy no longer has is deleted. The
changed keys stay in `CHANGED` (with the action) until the next call, for a caller that derives more from
them (the audiences' history). `profiles.rewrite.finish` does the same for tables without a day.
Portable: IS DISTINCT FROM, row-value IN and UPDATE ... FROM run on DuckDB and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from crm_pipeline.profiles.rewrite import begin, same  # noqa: F401  (begin: the empty copy a run writes into)
from crm_pipeline.warehouse.schema import metadata

CHANGED = "tmp_day_changed"
_RELATIVE = "1e-12"  # a float kept as stored when the recomputed one is this close (relative)


def next_table(table: str) -> str:
    """The temporary copy `begin(conn, table, full=False)` gives."""
    return f"tmp_next_{table}"


def finish(conn: sa.Connection, table: str, key: tuple[str, ...], as_of: dt.date, scope: str | None = None) -> int:
    """Bring the `as_of` rows of `table` (of the contacts in the table `scope`, when given) to those of its copy;
    returns the rows updated, inserted and deleted, whose keys and action stay in `CHANGED`."""
    columns = [c for c in conn.execute(sa.text(f"SELECT * FROM {table} WHERE 1 = 0")).keys()]
    values = [c for c in columns if c not in key and c != "as_of"]
    first = key[0]
    stored = f"SELECT t.* FROM {table} t" + ("" if scope is None else
                                            f" JOIN {scope} sc ON sc.contact_id = t.contact_id") + \
        " WHERE t.as_of = :as_of"
    keys = ", ".join(f"COALESCE(n.{k}, s.{k}) AS {k}" for k in key)
    floats = {c.name for c in metadata.tables[table].columns if isinstance(c.type, sa.Float)}
    found = " OR ".join(differs(c, c in floats) for c in values) or "1 = 0"
    day = {"as_of": as_of}
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {CHANGED}"))
    conn.execute(sa.text(f"""
        CREATE TEMPORARY TABLE {CHANGED} AS
        SELECT {keys}, CASE WHEN s.{first} IS NULL THEN 'insert' WHEN n.{first} IS NULL THEN 'delete'
                            ELSE 'update' END AS action
        FROM {next_table(table)} n FULL OUTER JOIN ({stored}) s ON {same(key, 'n', 's')}
        WHERE n.{first} IS NULL OR s.{first} IS NULL OR {found}"""), day)
    written = conn.execute(sa.text(f"SELECT COUNT(*) FROM {CHANGED}")).scalar_one()
    if written:
        listed = ", ".join(key)
        changed = f"(SELECT n.* FROM {next_table(table)} n JOIN {CHANGED} c ON {same(key, 'n', 'c')} " \
                  f"WHERE c.action = '%s')"
        if values:
            conn.execute(sa.text(f"UPDATE {table} SET {', '.join(f'{c} = n.{c}' for c in values)} "
                                 f"FROM {changed % 'update'} n WHERE {table}.as_of = :as_of "
                                 f"AND {same(key, 'n', table)}"), day)
        conn.execute(sa.text(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} "
                             f"FROM {changed % 'insert'} n"))
        conn.execute(sa.text(f"DELETE FROM {table} WHERE as_of = :as_of AND ({listed}) IN "
                             f"(SELECT {listed} FROM {CHANGED} WHERE action = 'delete')"), day)
    conn.execute(sa.text(f"DROP TABLE {next_table(table)}"))
    return int(written)


def differs(column: str, floating: bool) -> str:
    """The copy's value differs from the stored one; floats beyond the last bits only (a sum over the same rows
    in another order differs there, which would rewrite every row of a day on each re-run)."""
    plain = f"n.{column} IS DISTINCT FROM s.{column}"
    if not floating:
        return plain
    return (f"({plain} AND (n.{column} IS NULL OR s.{column} IS NULL OR ABS(n.{column} - s.{column}) > "
            f"{_RELATIVE} * (ABS(n.{column}) + ABS(s.{column}))))")


def drop(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {CHANGED}"))
