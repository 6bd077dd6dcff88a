"""A comparison budget for blocking: candidate pairs held to a number that grows with the records, not their square.

Each blocking rule is an equi-join on a few fields; the pairs it sends to scoring are the
sum of n * (n - 1) / 2 over its blocks (records sharing one key), less the pairs inside one
deterministic cluster (never scored: they need no edge; a person's customer and subscriber
records share a name, so in real data these are many). Blocks grow with the
population, so the pairs grow with its square: at a million people the 13 two-field rules
asked for more pairs than fit on disk. Before anything is scored, the block sizes are
counted in SQL and two limits applied:

- a key shared by more than `max_block_size` records (a default phone, a test address, a
  placeholder name) is no evidence of one person: its block is left out, by key, and named;
- all rules together may ask for at most `comparisons_per_record` x records pairs. When
  they ask for more, the largest blocks go first, across every rule alike (one block-size
  cap, the largest that fits): a big block is the least telling (a common name, a crowded
  postal code), and a pair it holds is usually also found by a smaller block of another
  rule. A rule that loses blocks is *tightened*; a rule left with none is *skipped*.

Each rule then joins on one integer column, `block_<k>`: the number of its record's block,
NULL where a field is missing or the block was left out. Joining on that column pairs
exactly the records the rule's fields would, less the blocks left out. The SQL is plain
GROUP BY, window and join: it runs on any engine Splink targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# Oversized keys named per rule in the plan (the rest are counted).
KEYS_SHOWN = 5


@dataclass(frozen=True)
class BlockingBudget:
    """How many candidate pairs scoring may cost: per record, and per key."""

    comparisons_per_record: float = 10.0
    max_block_size: int = 1000

    def __post_init__(self):
        if self.comparisons_per_record <= 0 or self.max_block_size < 2:
            raise ValueError("BlockingBudget: comparisons_per_record must be > 0 and max_block_size >= 2")


@dataclass
class BlockingPlan:
    """What the budget made of the rules: the rules to score with and, per rule, why."""

    rules: list[str]  # Splink blocking rules (SQL over l. and r.) of the rules kept or tightened
    budget: int  # the pairs all rules together may ask for
    block_cap: int  # the largest block kept (max_block_size when the budget did not bind)
    # one row per rule: rule, status (kept / tightened / skipped), comparisons asked for, comparisons kept,
    # blocks_left_out, records_left_out, largest_block, reason
    report: pd.DataFrame
    # one row per key shared by more than max_block_size records (at most KEYS_SHOWN per rule): rule, key, records
    oversized_keys: pd.DataFrame

    @property
    def comparisons(self) -> int:
        """Pairs the kept blocks ask for: an upper bound of the pairs scored (a pair two rules find counts here
        twice but is scored once)."""
        return int(self.report["comparisons_kept"].sum()) if len(self.report) else 0


def rule_text(fields: tuple[str, ...]) -> str:
    return ", ".join(fields)


def plan_blocking(con, table: str, rules: tuple[tuple[str, ...], ...], budget: BlockingBudget,
                  extra_condition: str = "", group: str | None = None, *, into: str | None = None,
                  block_number: str = "row_number() OVER ()") -> BlockingPlan:
    """Count each rule's blocks in `table`, apply `budget`, and add the columns `block_<k>` the kept rules join on.

    `rules` are tuples of field names of `table`, most telling first (the order Splink excludes
    already-found pairs in). `extra_condition` (SQL over l. and r.) is added to every rule.
    Pairs of records with the same `group` value (a column of `table`) are not counted: the caller's
    `extra_condition` keeps them from scoring. A block whose records all share one group pairs nobody.
    `con` is a DuckDB connection (any connection with `execute` and `sql(...).fetchone()/.fetchall()` that runs
    this SQL: the Spark pass's runs it on Spark). `into`: the block columns are not added to `table` in place
    (an UPDATE, which Spark's tables have not) but `table` with them is created as `into`. `block_number`: an
    expression numbering the blocks of a rule uniquely (Spark's `row_number() OVER ()` sorts every block in
    one task; `monotonically_increasing_id()` does not).
    """
    records = con.sql(f"SELECT count(*) FROM {table}").fetchone()[0]
    allowed = int(budget.comparisons_per_record * records)
    if group:
        # Records sharing their group with another record: only they can form a pair inside one group.
        columns = ", ".join(sorted({f for rule in rules for f in rule}))
        con.execute("DROP TABLE IF EXISTS _grouped")
        con.execute(f"CREATE TABLE _grouped AS SELECT {columns}, {group} FROM {table} WHERE {group} IN "
                    f"(SELECT {group} FROM {table} GROUP BY {group} HAVING count(*) > 1)")
    for k, fields in enumerate(rules):
        keys = ", ".join(fields)
        present = " AND ".join(f"{f} IS NOT NULL" for f in fields)
        con.execute(f"DROP TABLE IF EXISTS _blocks_{k}")
        # n records per block, of which `pairs` are in different groups: n * (n - 1) / 2 less each group's own.
        # block_id is any number unique to the block (only equality is used): no sort of the keys.
        blocks = f"SELECT {keys}, count(*) AS n FROM {table} WHERE {present} GROUP BY {keys} HAVING count(*) > 1"
        if group:
            blocks = f"""
                SELECT {keys}, n, n * (n - 1) / 2 - coalesce(w, 0) AS pairs
                FROM ({blocks}) b
                LEFT JOIN (SELECT {keys}, sum(m * (m - 1) / 2) AS w
                           FROM (SELECT {keys}, count(*) AS m FROM _grouped WHERE {present}
                                 GROUP BY {keys}, {group} HAVING count(*) > 1) g
                           GROUP BY {keys}) w USING ({keys})"""
        else:
            blocks = f"SELECT {keys}, n, n * (n - 1) / 2 AS pairs FROM ({blocks}) b"
        con.execute(f"CREATE TABLE _blocks_{k} AS SELECT {keys}, n, pairs, {block_number} AS block_id "
                    f"FROM ({blocks}) s WHERE pairs > 0")
    con.execute("DROP TABLE IF EXISTS _grouped")
    sizes = " UNION ALL ".join(f"SELECT {k} AS rule, n, pairs FROM _blocks_{k}" for k in range(len(rules)))
    # The largest block size s such that all blocks of at most s records (and at most max_block_size) fit.
    cap = con.sql(f"""
        WITH by_size AS (SELECT n, sum(pairs) AS pairs FROM ({sizes}) s
                         WHERE n <= {int(budget.max_block_size)} GROUP BY n),
             running AS (SELECT n, sum(pairs) OVER (ORDER BY n) AS upto FROM by_size)
        SELECT coalesce(max(n), 1) FROM running WHERE upto <= {allowed}
    """).fetchone()[0]
    total = con.sql(f"SELECT coalesce(sum(pairs), 0) FROM ({sizes}) s "
                    f"WHERE n <= {int(budget.max_block_size)}").fetchone()[0]
    block_cap = int(budget.max_block_size) if total <= allowed else int(cap)
    stats = con.sql(f"""
        SELECT rule, coalesce(sum(pairs), 0) AS asked,
               coalesce(sum(CASE WHEN n <= {block_cap} THEN pairs END), 0) AS kept,
               count(CASE WHEN n > {block_cap} THEN 1 END) AS blocks_out,
               coalesce(sum(CASE WHEN n > {block_cap} THEN n END), 0) AS records_out,
               count(CASE WHEN n > {int(budget.max_block_size)} THEN 1 END) AS oversized,
               coalesce(max(n), 0) AS largest
        FROM ({sizes}) s GROUP BY rule
    """).fetchall()
    by_rule = {int(r[0]): r[1:] for r in stats}
    rows, kept_rules, oversized_rows = [], [], []
    for k, fields in enumerate(rules):
        asked, kept, blocks_out, records_out, oversized, largest = (int(v) for v in by_rule.get(k, (0,) * 6))
        status, reason = "kept", ""
        if blocks_out:
            reasons = []
            if oversized:
                reasons.append(f"{oversized:,} key(s) shared by more than {budget.max_block_size:,} records "
                               "(max_block_size) left out")
            if blocks_out > oversized:
                reasons.append(f"{blocks_out - oversized:,} block(s) of more than {block_cap:,} records left out to "
                               f"hold all rules to {allowed:,} comparisons ({budget.comparisons_per_record:g} per "
                               f"record x {records:,} records)")
            status = "tightened" if kept else "skipped"
            reason = f"{asked:,} comparisons asked for, {kept:,} kept: " + "; ".join(reasons)
        if status != "skipped":
            kept_rules.append(f"l.block_{k} = r.block_{k}" + (f" AND {extra_condition}" if extra_condition else ""))
        rows.append({"rule": rule_text(fields), "status": status, "comparisons": asked, "comparisons_kept": kept,
                     "blocks_left_out": blocks_out, "records_left_out": records_out, "largest_block": largest,
                     "reason": reason})
        if oversized:
            keys = ", ".join(fields)
            shown = con.sql(f"SELECT concat_ws(' | ', {', '.join(f'CAST({f} AS VARCHAR)' for f in fields)}), n "
                            f"FROM _blocks_{k} WHERE n > {int(budget.max_block_size)} "
                            f"ORDER BY n DESC, {keys} LIMIT {KEYS_SHOWN}").fetchall()
            oversized_rows += [{"rule": rule_text(fields), "key": key, "records": int(n)} for key, n in shown]
    used = [r["status"] != "skipped" for r in rows]
    if into is None:
        _add_block_columns(con, table, rules, block_cap, used)
    else:
        con.execute(f"CREATE TABLE {into} AS {block_columns_sql(table, rules, block_cap, used)}")
        for k in range(len(rules)):
            con.execute(f"DROP TABLE IF EXISTS _blocks_{k}")
    return BlockingPlan(kept_rules, allowed, block_cap, pd.DataFrame(rows),
                        pd.DataFrame(oversized_rows, columns=["rule", "key", "records"]))


def _add_block_columns(con, table: str, rules, block_cap: int, used: list[bool]) -> None:
    """Add `block_<k>` per used rule to `table`: the record's block number, NULL when left out.

    An UPDATE in place: rebuilding the wide table with thirteen joins costs several times more."""
    for k, fields in enumerate(rules):
        if used[k]:
            on = " AND ".join(f"b.{f} = {table}.{f}" for f in fields)
            con.execute(f"ALTER TABLE {table} ADD COLUMN block_{k} BIGINT")
            con.execute(f"UPDATE {table} SET block_{k} = b.block_id "
                        f"FROM (SELECT * FROM _blocks_{k} WHERE n <= {block_cap}) AS b WHERE {on}")
        con.execute(f"DROP TABLE IF EXISTS _blocks_{k}")


def block_columns_sql(table: str, rules, block_cap: int, used: list[bool]) -> str:
    """`table` with `block_<k>` per used rule (the record's block number, NULL when left out) as a SELECT: the
    joins `_add_block_columns` makes in place, for engines without UPDATE."""
    columns, joins = ["t.*"], []
    for k, fields in enumerate(rules):
        if used[k]:
            on = " AND ".join(f"b{k}.{f} = t.{f}" for f in fields)
            columns.append(f"b{k}.block_id AS block_{k}")
            joins.append(f"LEFT JOIN (SELECT {', '.join(fields)}, block_id FROM _blocks_{k} "
                         f"WHERE n <= {int(block_cap)}) b{k} ON {on}")
    return f"SELECT {', '.join(columns)} FROM {table} t " + " ".join(joins)
