"""Identity resolution on Spark: the deterministic stage's tables, from the identity room's own statements.

The graph, the guards, the connected components, the match types and the stable contact ids are the room's
functions (`identity.graph`, `guards`, `scope`, `components`, `stable_ids`), handed a connection that runs
their statements on Spark (`SparkIdentityConnection`): each is rendered by `warehouse.dialects`, and each
scratch table they create (`CREATE [TEMPORARY] TABLE x AS SELECT ...`) becomes a temporary view over the
SELECT's result checkpointed on the executors. A checkpoint, not a lazy view: the components' rounds would
re-plan every earlier round, and a view is no snapshot of the tables it reads. One step is Spark's own: the
node keys (`_load_nodes`), the room's node set numbered per partition of a distributed sort rather than by a
window over every node, which Spark runs in one task.

With `probabilistic=True` the run adds the probabilistic pass on Spark (`spark/probabilistic.py`: Splink's Spark
backend, trained on the run's records as DuckDB's pass trains, its accepted pairs a scratch view the final
components read, the pairs written to `identity_pairs`).

A Spark run is a full resolution (every node in the scope, as DuckDB's first run or `--full-refresh`), so its
writes are overwrites of whole tables, the tables DuckDB's `write_by_difference` leaves, from the room's SELECTs
(`write.map_rows_sql`, `write.contacts_sql`, `resolve.NEXT_NODES_SQL`, `resolve.MERGE_LOG_ROWS_SQL`):
`identity_nodes`, `identity_map`, `contacts` rewritten whole, `merge_log` (partitioned by as_of) its day's
partition (that day's rows and this run's), and `identity_alerts` its day's partition (the room's `alert_rows`, from
the guards' rejected sets and the oversized contacts: small frames on the driver). Committed as `spark/publish.py`
commits: every new table is written under `<warehouse>/_identity_journal/` first, one atomic rename of
`COMMITTED.json` is the commit, and applying it (overwrites from the journal only) is repeated by the next run if
this one dies on the way.

Checkpoints are local (`localCheckpoint`: the executors' block managers, memory and disk): a lost executor fails
the run, which a retry redoes from staging. On a cluster where that is too likely, write the scratch tables as
Parquet instead.

The driver holds counts, the rejected identifier sets (the alerts' rows) and the merge log's row count; with the
probabilistic pass, its model, blocking plan and borderline sample (a few rows each), never the pairs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.identity import graph, guards
from crm_pipeline.identity.config import IdentityConfig
from crm_pipeline.identity.resolve import MERGE_LOG_ROWS_SQL, NEXT_NODES_SQL, alert_rows
from crm_pipeline.identity.nodes import RECORD_NODES, all_nodes_sql
from crm_pipeline.identity.scope import Scope
from crm_pipeline.identity.stable_ids import assign_contact_ids
from crm_pipeline.identity.write import contacts_sql, map_rows_sql
from crm_pipeline.spark.journal import Journal
from crm_pipeline.warehouse.dialects import render
from crm_pipeline.warehouse.identity_schema import (
    IDENTITY_TABLES, contacts, identity_alerts, identity_decisions, identity_graph, identity_map, identity_nodes,
    identity_pairs, merge_log,
)
from crm_pipeline.warehouse.quality_schema import stg_tables
from crm_pipeline.warehouse.spark import SparkResult, SparkWarehouse

JOURNAL = "_identity_journal"
NEXT_NODES = "id_nodes_next"
_JOURNAL_MAP = "id_journal_map"  # the journaled identity_map, which the contacts' SELECT reads
# merge_log and identity_alerts by day (a run writes its as_of's partition); the others a full run rewrites whole.
PARTITIONED = {merge_log.name: "as_of", identity_alerts.name: "as_of"}

# The warehouse's tables the statements read or write (everything else they name is a scratch view of the run).
_LIVE = frozenset({*(t.name for t in stg_tables.values()), *(t.name for t in IDENTITY_TABLES), "erasure_requests"})
_DROP = re.compile(r"\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)\s*$", re.IGNORECASE)
_CREATE_AS = re.compile(r"\s*CREATE\s+(?:TEMPORARY\s+)?TABLE\s+(\w+)\s+AS\s+(.*)$", re.IGNORECASE | re.DOTALL)
_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@dataclass
class SparkIdentityReport:
    """What a Spark resolution did: counts only (the figures `IdentityReport` shows for a full run)."""

    nodes: int = 0
    records: int = 0
    contacts: int = 0
    largest_cluster: int = 0
    merges: int = 0
    splits: int = 0
    junk_values: int = 0
    capped_values: int = 0
    shared_devices: int = 0
    rounds: dict[str, int] = field(default_factory=dict)
    probabilistic_pairs: int = 0  # the probabilistic pass's accepted pairs (after the reviewers' cannot-links)
    match: object | None = None  # its MatchResult (model, threshold, blocking plan, borderline; pairs on Spark)


class SparkIdentityConnection:
    """The part of a SQLAlchemy connection the identity room's graph functions use, on Spark.

    A `CREATE [TEMPORARY] TABLE x AS SELECT` becomes temporary view `x` over the SELECT's checkpointed result,
    `DROP TABLE x` drops that view (the room drops only its scratch tables), and any other statement is a query
    whose (small) result is collected. Every statement is rendered by `dialects.render` (so DELETE, UPDATE and
    MERGE raise `NotPortable`), with its `:name` parameters bound by Spark."""

    def __init__(self, warehouse: SparkWarehouse) -> None:
        self.warehouse = warehouse
        self.views: set[str] = set()

    def execute(self, query: sa.TextClause | str, params: dict | None = None) -> SparkResult:
        sql = query.text if isinstance(query, sa.TextClause) else query
        if isinstance(query, sa.TextClause):  # values bound on the clause itself (`.bindparams(cap=...)`)
            params = {**{k: p.value for k, p in query._bindparams.items() if p.value is not None}, **(params or {})}
        if dropped := _DROP.match(sql):
            if dropped.group(1) in _LIVE:
                raise NotImplementedError(f"a warehouse table is not dropped on Spark: {dropped.group(1)}")
            self.drop(dropped.group(1))
            return SparkResult([])
        if created := _CREATE_AS.match(sql):
            self.materialize(created.group(1), created.group(2), params)
            return SparkResult([])
        if re.match(r"\s*(CREATE|INSERT)\b", sql, re.IGNORECASE):
            raise NotImplementedError(f"not run on Spark by this connection: {sql.strip()[:80]}")
        return SparkResult(self.sql(sql, params).collect())

    def sql(self, stage_sql: str, params: dict | None = None):
        """A DataFrame of stage SQL, rendered for Spark, the warehouse's tables named with its database: a
        session's temporary view called `identity_nodes` (another job's, a notebook's) is not read for the table.
        The scratch tables stay unqualified: they are this run's temporary views."""
        self.warehouse.spark.catalog.setCurrentDatabase(self.warehouse.database)
        spark_sql = _qualify_live(render(stage_sql, "spark"), self.warehouse.database)
        return self.warehouse.spark.sql(spark_sql, args=_used(stage_sql, params))

    def materialize(self, name: str, select: str, params: dict | None = None) -> None:
        """Temporary view `name`: `select`'s rows, computed now and kept on the executors."""
        self.sql(select, params).localCheckpoint().createOrReplaceTempView(name)
        self.views.add(name)

    def drop(self, name: str) -> None:
        self.warehouse.spark.catalog.dropTempView(name)
        self.views.discard(name)

    def drop_all(self) -> None:
        for name in list(self.views):
            self.drop(name)


@lru_cache(maxsize=512)
def _qualify_live(spark_sql: str, database: str) -> str:
    """`spark_sql` with the warehouse's own tables (staging, identity, erasure) named with `database`."""
    import sqlglot
    from sqlglot import exp

    statement = sqlglot.parse_one(spark_sql, read="spark")
    ctes = {cte.alias for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        if not table.args.get("db") and table.name in _LIVE - ctes:
            table.set("db", exp.to_identifier(database))
    return statement.sql(dialect="spark")


def _used(sql: str, params: dict | None) -> dict | None:
    """The parameters `sql` names (Spark binds exactly those)."""
    if not params:
        return None
    named = set(_PARAMETER.findall(sql))
    return {k: v for k, v in params.items() if k in named} or None


# No probabilistic pairs (`id_pairs` of a deterministic run, or a pass that found none): an empty view of their columns.
NO_PAIRS_SQL = ("SELECT CAST(NULL AS VARCHAR) AS node_a, CAST(NULL AS VARCHAR) AS node_b, "
                "CAST(NULL AS DOUBLE) AS match_probability LIMIT 0")


# The identity tables a Spark run writes, and the ones its statements read (identity_graph stays empty: a full run
# compares no stored edges). identity_pairs: the probabilistic pass's accepted pairs (a run with the pass rewrites
# it). The others (runs, changes, identity_match, identity_borderline) are not made on Spark yet.
TABLES = (identity_nodes, identity_map, contacts, merge_log, identity_alerts, identity_graph, identity_decisions,
          identity_pairs)


def create_identity_tables_on_spark(warehouse: SparkWarehouse) -> None:
    """The identity tables a Spark run reads and writes, and the staging tables it reads."""
    for table in stg_tables.values():
        warehouse.create_table(table, partition_by="_file_id")
    for table in TABLES:
        warehouse.create_table(table, partition_by=PARTITIONED.get(table.name))


def finish_identity_commit(warehouse: SparkWarehouse) -> bool:
    """Apply the journal of a run that died after its commit (every run does this first); whether there was one."""
    create_identity_tables_on_spark(warehouse)
    return _Journal(warehouse).finish_committed()


def resolve_identities_on_spark(warehouse: SparkWarehouse, *, as_of: date, config: IdentityConfig,
                                probabilistic: bool = False) -> SparkIdentityReport:
    """A full resolution of `stg_*` on Spark: identity_nodes, identity_map and contacts as DuckDB's
    `resolve_identities` leaves them, ids kept from the stored identity_nodes, the run's merges and splits
    appended to merge_log. `probabilistic` (and the config enabling it): with Splink's pass on Spark
    (`spark/probabilistic.py`), as DuckDB's with `find_pairs=match_people`; else deterministic only,
    as DuckDB's with `find_pairs=None`."""
    create_identity_tables_on_spark(warehouse)
    journal = _Journal(warehouse)
    journal.finish_committed()  # a run that died after its commit: finish it first (`finish_identity_commit`)
    journal.start()
    conn, report = SparkIdentityConnection(warehouse), SparkIdentityReport()
    try:
        _cluster(conn, report, config, probabilistic=probabilistic and config.probabilistic_enabled)
        erased = _retired_number(conn)
        assign_contact_ids(conn, at_least=erased + 1)
        conn.materialize(NEXT_NODES, NEXT_NODES_SQL, {"as_of": as_of})
        _journal_tables(conn, journal, report, config, as_of)
        journal.commit()
        journal.finish_committed()
    finally:
        conn.drop_all()
    return report


def _cluster(conn: SparkIdentityConnection, report: SparkIdentityReport, config: IdentityConfig, *,
             probabilistic: bool) -> None:
    """The room's graph steps for a full run: nodes, guarded edges, deterministic components, the probabilistic
    pass's pairs (`probabilistic`), final components, match types."""
    _load_nodes(conn)
    guards.load_edges(conn)
    for table, select, params in guards.guard_selects(config, "spark"):
        conn.materialize(table, select, params)
    report.junk_values, report.capped_values, report.shared_devices = (int(v) for v in conn.execute(
        "SELECT (SELECT COUNT(*) FROM id_junk), (SELECT COUNT(*) FROM id_capped), "
        "(SELECT COUNT(*) FROM id_shared)").one())
    scope = Scope(full=True)
    report.rounds["deterministic"] = graph.deterministic_components(conn, scope)
    if probabilistic:
        from crm_pipeline.spark.probabilistic import match_people_on_spark, pair_count

        report.match, report.rounds["final"] = match_people_on_spark(conn, config, scope)
        report.probabilistic_pairs = pair_count(conn)
        graph.type_matches(conn)
        return
    # No probabilistic pass: no pairs, so every final component is a deterministic one, which is what
    # `graph.components_with_pairs` gives without pairs, less its ten statements (Spark jobs) on empty tables.
    conn.materialize("id_pairs", NO_PAIRS_SQL)
    conn.materialize("id_final", "SELECT k, label FROM id_det")
    report.rounds["final"] = 0
    graph.type_matches(conn)


def _load_nodes(conn: SparkIdentityConnection) -> None:
    """`id_nodes` (node_id, k) as `graph.load_nodes` makes it on a full run, the keys ordered as the node ids but
    not by a window over all nodes (one task on Spark): numbered within the partitions of a distributed sort, the
    partition in the bits above 2^33 (`monotonically_increasing_id`). Keys are then sparse, which nothing minds
    but the new ids' numbering, which counts per block of 2^33 keys (`stable_ids.KEY_BLOCK`)."""
    from pyspark.sql import functions as F

    nodes = conn.sql(all_nodes_sql()).orderBy("node_id")
    keyed = nodes.select("node_id", F.monotonically_increasing_id().alias("k"))
    keyed.localCheckpoint().createOrReplaceTempView("id_nodes")
    conn.views.add("id_nodes")


def _retired_number(conn: SparkIdentityConnection) -> int:
    """The highest contact number erasure retired (never handed to someone new); 0 without erasures."""
    warehouse = conn.warehouse
    if not warehouse.spark.catalog.tableExists(f"{warehouse.database}.erasure_requests"):
        return 0
    return int(conn.execute("SELECT MAX(retired_contact_number) FROM erasure_requests").scalar_one() or 0)


def _journal_tables(conn: SparkIdentityConnection, journal: _Journal, report: SparkIdentityReport,
                    config: IdentityConfig, as_of: date) -> None:
    """The run's identity_nodes, identity_map, contacts, merge_log and identity_alerts rows, into the journal."""
    warehouse = conn.warehouse
    journal.write(identity_nodes.name, warehouse.spark.table(NEXT_NODES))
    if report.match is not None:  # the probabilistic pass's accepted pairs, as DuckDB stores them
        from crm_pipeline.spark.probabilistic import ACCEPTED

        journal.write(identity_pairs.name, warehouse.spark.table(ACCEPTED))
    rows = [conn.sql(map_rows_sql(entity, NEXT_NODES), {"e": entity}) for entity in RECORD_NODES]
    whole_map = rows[0]
    for more in rows[1:]:
        whole_map = whole_map.unionByName(more)
    journal.write(identity_map.name, whole_map)
    journal.read(identity_map.name).createOrReplaceTempView(_JOURNAL_MAP)
    conn.views.add(_JOURNAL_MAP)
    journal.write(contacts.name, conn.sql(contacts_sql(NEXT_NODES, _JOURNAL_MAP)))
    report.merges, report.splits = (int(v or 0) for v in conn.execute(
        "SELECT SUM(CASE WHEN kind = 'merge' THEN 1 ELSE 0 END), SUM(CASE WHEN kind = 'split' THEN 1 ELSE 0 END) "
        "FROM id_log").one())
    if report.merges + report.splits:  # that day's partition: its rows so far and this run's
        logged = conn.sql(f"SELECT * FROM merge_log WHERE as_of = :as_of UNION ALL {MERGE_LOG_ROWS_SQL}",
                          {"as_of": as_of})
        journal.write(merge_log.name, logged)
    _journal_alerts(conn, journal, config, as_of, report.match)
    report.nodes, report.records = (int(v) for v in conn.execute(
        f"SELECT (SELECT COUNT(*) FROM {NEXT_NODES}), (SELECT COUNT(*) FROM {_JOURNAL_MAP})").one())
    found = journal.read(contacts.name).selectExpr("COUNT(*)", "MAX(node_count)").collect()[0]
    report.contacts, report.largest_cluster = int(found[0]), int(found[1] or 0)


def _journal_alerts(conn: SparkIdentityConnection, journal: _Journal, config: IdentityConfig, as_of: date,
                    match=None) -> None:
    """The day's identity_alerts: what the guards rejected, the contacts over the size cap and what the blocking
    budget left out of the probabilistic pass (a few rows)."""
    warehouse = conn.warehouse
    rejected = guards.Rejected(*(conn.sql(f"SELECT * FROM {t} ORDER BY 1, 2").toPandas()
                                 for t in ("id_junk", "id_capped", "id_shared")))
    found = journal.read(contacts.name).where(f"node_count > {int(config.max_cluster_size)}").orderBy(
        "contact_id").select("contact_id", "node_count").toPandas()
    oversized = pd.Series(found["node_count"].to_numpy(), index=found["contact_id"].astype(str).to_numpy())
    alerts = alert_rows(rejected, oversized, config, as_of, match)
    schema = journal.live(identity_alerts.name).schema
    journal.write(identity_alerts.name, warehouse.spark.createDataFrame(
        alerts[schema.names].astype({"as_of": "object"}), schema=schema), days=[as_of])


class _Journal(Journal):
    """One run's new identity tables, written aside and committed by one manifest rename (see the module doc)."""

    def __init__(self, warehouse: SparkWarehouse) -> None:
        super().__init__(warehouse, JOURNAL)
        self.tables: list[str] = []
        self.days: dict[str, list[str]] = {}  # per table by day: the days it replaces (emptied if no row lands)

    def write(self, table: str, rows, days: list[date] | None = None) -> None:
        """`table`'s new rows (its whole content; by day: the days they fall in, and the `days` emptied where
        none falls), journaled."""
        schema = self.live(table).schema
        conformed = rows.select(*[rows[f.name].cast(f.dataType).alias(f.name) for f in schema])
        writer = conformed.write.mode("overwrite")
        if table in PARTITIONED:
            writer = writer.partitionBy(PARTITIONED[table])
        writer.parquet(self.path(table))
        self.tables.append(table)
        self.days[table] = sorted(str(day) for day in days or [])

    def commit(self) -> None:
        super().commit({"tables": self.tables, "days": self.days})

    def finish_committed(self) -> bool:
        """Apply a committed journal to the live tables, then remove it (harmless to repeat: overwrites only)."""
        manifest = self.committed()
        if manifest is None:
            return False
        for table in manifest["tables"]:
            self._empty_days(table, manifest["days"].get(table, []))
            self.warehouse.write_frame(table, self.read(table), overwrite=True)
        self.close()
        return True

    def _empty_days(self, table: str, days: list[str]) -> None:
        """Empty the day partitions the journal replaces and holds no row of (a static overwrite with no rows)."""
        journaled = {name.split("=", 1)[1] for name in self.entries(table) if "=" in name}
        schema = self.live(table).schema
        nothing = ", ".join(f"CAST(NULL AS {f.dataType.simpleString()}) AS `{f.name}`"
                            for f in schema if f.name != "as_of")
        for day in sorted(set(days) - journaled):
            self.spark.sql(f"INSERT OVERWRITE TABLE {self.warehouse.qualified(table)} "
                           f"PARTITION (`as_of` = DATE '{date.fromisoformat(day)}') SELECT {nothing} WHERE 1 = 0")
