"""Which typed rows a publish run re-resolves: all of them (full refresh), or the keys that changed.

A key's outcome (staged, deduplicated, quarantined, held), its dedup pointer and its quarantine
status depend only on the rows of that key, their files and, for order lines, their order. So an
incremental run re-resolves whole keys, in every file, for:

- files never published (no `file_quality` row yet): the rows they bring;
- files whose `superseded` flag changed (a corrected re-drop under the same name landed);
- files whose `held` state changed (an order landed for enough of its orphan lines, or the hold
  share moved): every row of the file changes outcome;
- for order lines, every line whose order was re-resolved in this run (an orphan line meets its
  order; a line follows its order into or out of the quarantine).

The scope lives in temporary tables per entity (`pub_files_<e>`, `pub_keys_<e>` holding the key
columns, `pub_rows_<e>`, `pub_outcomes_<e>` with the rows' new outcomes, and `pub_accounted_<e>`, the files
whose accounting is rewritten; `pub_repeated_<e>`, the
keys with more than one row, on a full refresh too), made and dropped in the publishing transaction,
so they are never seen by another connection (nor by erasure's table discovery).
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.contract import Entity


# Per path, its last loaded file (path, file_id): a file is superseded when this one is later.
LAST_LOADED_PER_PATH = "SELECT path, MAX(file_id) AS file_id FROM files WHERE status = 'loaded' GROUP BY path"
# The loaded files of entity :e typed but never published (no `file_quality` row yet): a publish's new files,
# and the rows a failed stage takes back out of staging (`publish.withdraw_unpublished`).
UNPUBLISHED_FILES = ("SELECT tf.file_id FROM typed_files tf JOIN files f ON f.file_id = tf.file_id "
                     "LEFT JOIN file_quality fq ON fq.file_id = tf.file_id "
                     "WHERE f.entity = :e AND f.status = 'loaded' AND fq.file_id IS NULL")


class Scope:
    """SQL fragments that limit a publish statement to the re-resolved rows of one entity.

    The scope's tables are joined (keys as DISTINCT sets), and kept out by LEFT JOIN ... IS NULL, not read by
    IN / NOT IN / EXISTS subqueries in the arms of a UNION or inside a CASE: DuckDB 1.5.6 can park every thread
    for good on those shapes under load (duckdb/duckdb#24961). A DELETE's plain `IN` on a small table stays.
    """

    def __init__(self, entity: Entity, full: bool):
        self.entity, self.full = entity, full
        self.orders: Scope | None = None
        e = entity.name
        self.files, self.keys, self.rows = f"pub_files_{e}", f"pub_keys_{e}", f"pub_rows_{e}"
        self.repeated = f"pub_repeated_{e}"  # keys with more than one re-resolved row (`find_repeated_keys`)
        self.accounted = f"pub_accounted_{e}"  # files whose accounting is rewritten (`gather_accounted_files`)
        # Where the re-resolved rows' outcomes are read back: all of row_outcomes, or this run's own table.
        self.outcomes = "row_outcomes" if full else f"pub_outcomes_{e}"

    def has_row(self, table: str, file_col: str = "_file_id", row_col: str = "_row_number") -> str:
        """A condition on `table`'s row (alias or table name): true when it is re-resolved."""
        if self.full:
            return "1 = 1"
        # A row-value IN, not a correlated EXISTS: DuckDB plans it as a plain hash semi-join
        # (a DELETE with the EXISTS form took 1 s on 4.4 M rows of row_outcomes, this one 15 ms).
        return f"({table}.{file_col}, {table}.{row_col}) IN (SELECT _file_id, _row_number FROM {self.rows})"

    def join_rows(self, alias: str) -> str:
        """A join that keeps `alias`'s re-resolved rows: the scope drives the scan (DuckDB applies a
        semi-join's EXISTS after other joins, a join before them)."""
        if self.full:
            return ""
        return f"JOIN {self.rows} sr ON sr._file_id = {alias}._file_id AND sr._row_number = {alias}._row_number"

    def gather_accounted_files(self, conn: sa.Connection) -> None:
        """`accounted` (file_id): the files whose accounting is rewritten (in the scope, or with a re-resolved
        row), one row each, once the scope is final: a small table the accounting statements join."""
        if self.full:
            return
        self._drop_table(conn, self.accounted)
        self._materialize(conn, self.accounted, self.accounted_sql())

    def accounted_sql(self) -> str:
        return f"SELECT file_id FROM {self.files} UNION SELECT _file_id FROM {self.rows}"

    def join_accounted_files(self, alias: str, file_col: str = "file_id") -> str:
        """A join that keeps `alias`'s rows of files whose accounting is rewritten (every file on a full refresh),
        not an IN subquery (see `join_repeated_keys`)."""
        if self.full:
            return ""
        return f"JOIN {self.accounted} af ON af.file_id = {alias}.{file_col}"

    def drop(self, conn: sa.Connection) -> None:
        self._drop_table(conn, self.repeated)
        if not self.full:
            for table in (self.accounted, self.outcomes, self.rows, self.keys, self.files):
                self._drop_table(conn, table)

    # How the scope's tables are made: temporary tables on DuckDB and PostgreSQL (`spark.publish` overrides these).
    def _materialize(self, conn: sa.Connection, table: str, select: str, params: dict | None = None) -> None:
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {table} AS {select}"), params or {})

    def _drop_table(self, conn: sa.Connection, table: str) -> None:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))

    def find_repeated_keys(self, conn: sa.Connection) -> None:
        """The keys that more than one re-resolved row holds: the only ones a rule across rows compares (a key
        a file uses twice, a key to rank). One hash aggregate over the rows finds them for both rules, which
        then read only these keys' rows; most keys have one row (web event ids, for one)."""
        self._drop_table(conn, self.repeated)
        self._materialize(conn, self.repeated, self.repeated_keys_sql())

    def repeated_keys_sql(self) -> str:
        typed = f"typed_{self.entity.name}"
        return f"""
            SELECT {self._key_tuple('t')} FROM {typed} t {self.join_rows('t')}
            WHERE {self._key_present('t')}
            GROUP BY {self._key_tuple('t')} HAVING COUNT(*) > 1
        """

    def join_repeated_keys(self, alias: str) -> str:
        """A join that keeps `alias`'s rows whose key is one `find_repeated_keys` found (one row per key: a join,
        not a row-value IN, which DuckDB 1.5.6 can hang on inside a UNION arm, duckdb/duckdb#24961)."""
        return (f"JOIN {self.repeated} rk ON rk._brand = {alias}._brand AND {self._key_match('rk', alias)}")

    def start(self, conn: sa.Connection, orders: Scope | None) -> None:
        """Fill the scope from new and newly superseded files (and, for order lines, re-resolved orders)."""
        if self.full:
            return
        self.drop(conn)
        self._materialize(conn, self.files, self.files_sql(), {"e": self.entity.name})
        self.orders = orders
        if self._count(conn, self.files) == 0 and (orders is None or self._count(conn, orders.keys) == 0):
            # No new or newly superseded file, no re-resolved order: no key to re-resolve, and no scan of the
            # typed rows to find none (most entities of a small drop). Held files may still widen it (`add_files`).
            typed, key_cols = f"typed_{self.entity.name}", self._key_columns("t")
            for table, columns in ((self.keys, f"t._brand, {key_cols}"), (self.rows, "t._file_id, t._row_number")):
                self._materialize(conn, table, f"SELECT {columns} FROM {typed} t LIMIT 0")
            return
        self._materialize(conn, self.keys, self.keys_sql())
        self._fill_rows(conn)

    def files_sql(self) -> str:
        """The files (file_id) that start the scope of entity :e: never published, or newly (not) superseded."""
        return f"""
            {UNPUBLISHED_FILES}
            UNION
            SELECT fq.file_id FROM file_quality fq
            LEFT JOIN files f ON f.file_id = fq.file_id
            LEFT JOIN ({LAST_LOADED_PER_PATH}) ll ON ll.path = f.path
            WHERE fq.entity = :e
              AND fq.superseded <> (CASE WHEN ll.file_id > f.file_id THEN TRUE ELSE FALSE END)
        """

    def keys_sql(self) -> str:
        """The keys (_brand, key columns) of the scope's files' rows, and of order lines whose order is re-resolved."""
        typed, key_cols = f"typed_{self.entity.name}", self._key_columns("t")
        lines_of_orders = ""
        if self.orders is not None:  # order lines whose order was re-resolved: (brand, order_id) in its keys
            lines_of_orders = f"""
            UNION
            SELECT t._brand, {key_cols} FROM {typed} t {self._join_orders_re_resolved('t')}
            WHERE {self._key_present('t')}"""
        return f"""
            SELECT t._brand, {key_cols} FROM {typed} t JOIN {self.files} sf ON sf.file_id = t._file_id
            WHERE {self._key_present('t')}
            {lines_of_orders}
        """

    def add_files(self, conn: sa.Connection, file_ids: list[int]) -> None:
        """Widen the scope by whole files (their held state changed): their keys, in every file."""
        if self.full or not file_ids:
            return
        ids = sa.bindparam("ids", file_ids, expanding=True)
        conn.execute(sa.text(f"INSERT INTO {self.files} (file_id) {self.files_of_ids_sql(':ids')}").bindparams(ids))
        conn.execute(sa.text(f"INSERT INTO {self.keys} {self.new_keys_of_files_sql(':ids')}").bindparams(ids))
        conn.execute(sa.text(f"DROP TABLE {self.rows}"))
        self._fill_rows(conn)

    def files_of_ids_sql(self, ids: str) -> str:
        """The files `ids` names (`ids`: a bound list, or a list of integers written out)."""
        return f"SELECT DISTINCT f.file_id FROM files f WHERE f.file_id IN {ids}"

    def new_keys_of_files_sql(self, ids: str) -> str:
        """The keys of the rows of files `ids` not in the scope's keys yet."""
        typed, key_cols = f"typed_{self.entity.name}", self._key_columns("t")
        return f"""
            SELECT DISTINCT t._brand, {key_cols} FROM {typed} t
            LEFT JOIN {self.keys} k ON k._brand = t._brand AND {self._key_match('k', 't')}
            WHERE {self._key_present('t')} AND t._file_id IN {ids} AND k._brand IS NULL
        """

    def is_empty(self, conn: sa.Connection) -> bool:
        return not self.full and self._count(conn, self.rows) == 0

    @staticmethod
    def _count(conn: sa.Connection, table: str) -> int:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()

    def counts(self, conn: sa.Connection) -> tuple[int, int]:
        """(keys, rows) re-resolved in this run."""
        if self.full:
            return tuple(conn.execute(sa.text(self.counts_sql()), {"e": self.entity.name}).one())
        return tuple(conn.execute(sa.text(self.counts_sql())).one())

    def counts_sql(self) -> str:
        """One row: (keys, rows) re-resolved in this run (of entity :e on a full refresh)."""
        if self.full:
            # A key has one staged row, or none when all its rows are quarantined or held (a deduplicated row
            # always has a staged winner): counting those is a quarter of a DISTINCT over every row.
            return ("SELECT (SELECT COUNT(*) FROM row_outcomes WHERE entity = :e AND outcome = 'staged' "
                    "        AND source_key IS NOT NULL) "
                    "     + (SELECT COUNT(*) FROM (SELECT DISTINCT _brand, source_key FROM row_outcomes "
                    "        WHERE entity = :e AND outcome IN ('quarantined', 'held') AND source_key IS NOT NULL) q "
                    "        LEFT JOIN (SELECT _brand, source_key FROM row_outcomes "
                    "                   WHERE entity = :e AND outcome = 'staged') s "
                    "          ON s._brand = q._brand AND s.source_key = q.source_key WHERE s.source_key IS NULL), "
                    "       (SELECT COUNT(*) FROM row_outcomes WHERE entity = :e)")
        return f"SELECT (SELECT COUNT(*) FROM {self.keys}), (SELECT COUNT(*) FROM {self.rows})"

    def file_ids(self, conn: sa.Connection) -> tuple[int, ...] | None:
        """The files whose accounting this run rewrote (None: all of them)."""
        if self.full:
            return None
        return tuple(conn.execute(sa.text(f"SELECT file_id FROM {self.accounted} ORDER BY 1")).scalars())

    def _fill_rows(self, conn: sa.Connection) -> None:
        self._materialize(conn, self.rows, self.rows_sql())

    def rows_sql(self) -> str:
        """The re-resolved rows (_file_id, _row_number): the rows of the keys, in every file; a row with no key
        (quarantined for it) stands alone, with its file."""
        typed = f"typed_{self.entity.name}"
        lines_without_key = ""
        if self.orders is not None:  # a line with no line number still follows its order (orphan or held)
            lines_without_key = (f"UNION SELECT t._file_id, t._row_number FROM {typed} t "
                                 f"{self._join_orders_re_resolved('t')} WHERE NOT ({self._key_present('t')})")
        return f"""
            SELECT t._file_id, t._row_number FROM {typed} t
            JOIN (SELECT DISTINCT {self._key_tuple()} FROM {self.keys}) k
              ON k._brand = t._brand AND {self._key_match('k', 't')}
            UNION
            SELECT t._file_id, t._row_number FROM {typed} t JOIN {self.files} sf ON sf.file_id = t._file_id
            WHERE NOT ({self._key_present('t')})
            {lines_without_key}
        """

    def _join_orders_re_resolved(self, alias: str) -> str:
        """A join that keeps `alias`'s order lines whose order (brand, order_id) this run re-resolved."""
        return (f"JOIN (SELECT DISTINCT _brand, order_id FROM {self.orders.keys}) ok "
                f"ON ok._brand = {alias}._brand AND ok.order_id = {alias}.order_id")

    def _key_columns(self, alias: str) -> str:
        return ", ".join(f"{alias}.{_q(k)}" for k in self.entity.key)

    def _key_tuple(self, alias: str | None = None) -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"{prefix}{_q(c)}" for c in ("_brand", *self.entity.key))

    def _key_present(self, alias: str) -> str:
        return " AND ".join(f"{alias}.{_q(k)} IS NOT NULL" for k in self.entity.key)

    def _key_match(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{_q(k)} = {right}.{_q(k)}" for k in self.entity.key)


def _q(name: str) -> str:
    return '"' + name + '"'
