"""Publishing staging on Spark: the tables `quality.publish.publish` gives, from the same statements.

Every decision is made by `quality/publish.py`'s and `quality/scope.py`'s own SELECTs (rule hits, held files,
outcomes, dedup log, quarantine, accounting, the incremental scope), rendered for Spark by `warehouse.dialects`.
What differs is how the results land, since Spark's Parquet tables have no DELETE:

- `rule_hits`, `row_outcomes`, `dedup_log`, `quarantine`, `stg_<entity>` and `unstaged_<entity>` are partitioned
  by the file a row came from. A run replaces the partitions of the files it re-resolves a row of (every file of
  the entity on a full refresh): each such partition's new content is its rows outside the scope, kept, plus
  the re-resolved rows' new ones (a row moves between `stg_` and `unstaged_` by being written to the other).
- `file_quality` (a row per file) is rewritten whole.
- The scope's tables (`pub_files_<e>` ...) are temporary views over checkpointed results on the executors.

Crash safety, by a journal. Nothing live is written until everything is computed: each table's new partitions
are first written under `<warehouse>/_publish_journal/<table>` (and `file_quality` whole), while the statements
of later steps and entities read a table's current state as a temporary view of the same name (the live table
with its journaled partitions swapped for the journal's; Spark resolves a temporary view before the catalog's
table). Then the manifest (`_publish_journal/COMMITTED.json`: the partitions each table replaces) is written
in one atomic rename: **that write is the commit**. Applying it overwrites the live partitions from the journal
(dynamic partition overwrite; listed partitions the journal has no rows for are emptied) and `file_quality`,
then removes the journal. A run that dies before the commit changed nothing live (its journal is discarded
by the next run, which recomputes); one that dies after it is finished by the next run, which applies the
committed journal again (every write there is an overwrite from the journal, so applying twice is harmless)
before it looks for new work. A re-run with nothing new writes nothing.

Nothing grows with the data on the driver: file ids (per-table partition lists, scope files, held files), a
few counts per entity, and `file_quality`, a row per file.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES, Entity
from crm_pipeline.quality.publish import (
    DEDUP_LOG_COLUMNS, FILE_QUALITY_COLUMNS, ORDER_OF_ENTITIES, OUTCOME_COLUMNS, QUARANTINE_COLUMNS,
    RULE_HIT_COLUMNS, PublishReport, Republished, dedup_log_sql, file_quality_sql,
    held_state_changed_sql, outcomes_sql, publish_params, quarantine_sql, replaced_file_quality,
    rule_hit_selects, staged_count_sql,
)
from crm_pipeline.quality.scope import Scope
from crm_pipeline.spark.journal import Journal
from crm_pipeline.spark.quality import create_typing_tables_on_spark
from crm_pipeline.warehouse.quality_schema import (
    dedup_log, file_quality, quarantine, row_outcomes, rule_hits, stg_tables, unstaged_tables,
)
from crm_pipeline.warehouse.spark import SparkConnection, SparkWarehouse

# Publish tables partitioned by the file of their row (stg_/unstaged_ are typing's, partitioned by `_file_id`).
PARTITIONED = {rule_hits.name: "_file_id", row_outcomes.name: "_file_id", dedup_log.name: "file_id",
               quarantine.name: "file_id"}
# Tables a later statement of the same run reads (the order lines' rules read the orders staged).
READ_BACK = {rule_hits.name, row_outcomes.name, stg_tables["orders"].name}
JOURNAL = "_publish_journal"


def create_publish_tables_on_spark(warehouse: SparkWarehouse) -> None:
    create_typing_tables_on_spark(warehouse)
    for table in (rule_hits, row_outcomes, dedup_log, quarantine, file_quality):
        warehouse.create_table(table, partition_by=PARTITIONED.get(table.name))


def publish_on_spark(warehouse: SparkWarehouse, *, hold_share: float, full_refresh: bool = False) -> PublishReport:
    """`quality.publish.publish` on Spark: the same tables from the same typed rows, incremental unless
    `full_refresh` (an entity never published takes the full statements, as on DuckDB)."""
    create_publish_tables_on_spark(warehouse)
    run = _Run(warehouse)
    run.finish_committed()  # a run that died after its commit: finish it first
    run.start()
    conn = SparkConnection(warehouse)
    published = set(conn.execute(sa.text("SELECT DISTINCT entity FROM file_quality")).scalars())
    done: dict[str, Republished] = {}
    scopes: dict[str, SparkScope] = {}
    try:
        for name in ORDER_OF_ENTITIES:
            whole = (full_refresh or name not in published  # never published: the full statements, as on DuckDB
                     or (name == "order_items" and scopes["orders"].full))
            scope = scopes[name] = SparkScope(ENTITIES[name], full=whole, warehouse=warehouse)
            scope.start(conn, scopes["orders"] if name == "order_items" else None)
            done[name] = _publish_entity(run, conn, ENTITIES[name], hold_share, scope)
        run.commit()
        run.finish_committed()
    finally:
        for scope in scopes.values():
            scope.drop(conn)
        run.drop_views()
    return PublishReport("full" if full_refresh else "incremental", done)


class SparkScope(Scope):
    """`quality.scope.Scope` whose tables are temporary views over results checkpointed on the executors."""

    def __init__(self, entity: Entity, full: bool, warehouse: SparkWarehouse):
        super().__init__(entity, full)
        self.warehouse = warehouse

    def _materialize(self, conn, table: str, select: str, params: dict | None = None) -> None:
        frame = self.warehouse.sql(select, params)
        if not select.rstrip().endswith("LIMIT 0"):  # an empty table of the right columns needs no job
            frame = frame.localCheckpoint()
        frame.createOrReplaceTempView(table)

    def _drop_table(self, conn, table: str) -> None:
        self.warehouse.spark.catalog.dropTempView(table)

    def add_files(self, conn, file_ids: list[int]) -> None:
        """`Scope.add_files`, its file list written out (a Spark statement takes no list parameter)."""
        if self.full or not file_ids:
            return
        ids = "(" + ", ".join(str(int(i)) for i in file_ids) + ")"
        self._materialize(conn, self.files, f"SELECT file_id FROM {self.files} UNION ALL {self.files_of_ids_sql(ids)}")
        self._materialize(conn, self.keys, f"SELECT * FROM {self.keys} UNION ALL {self.new_keys_of_files_sql(ids)}")
        self._fill_rows(conn)


def _publish_entity(run: _Run, conn: SparkConnection, entity: Entity, hold_share: float,
                    scope: SparkScope) -> Republished:
    """`quality.publish._publish_entity`'s steps, each table's rows journaled instead of deleted and inserted."""
    e, warehouse = entity.name, run.warehouse
    params = publish_params(e, hold_share)
    untouched = not scope.full and scope.is_empty(conn)
    if not untouched:
        files = _find_rule_hits(run, conn, entity, scope, params)
    if not scope.full:
        flipped = conn.execute(sa.text(held_state_changed_sql(scope)), params).scalars()
        if flipped:  # every row of those files changes outcome: widen to their keys (in every file)
            scope.add_files(conn, [int(f) for f in flipped])
            files = _find_rule_hits(run, conn, entity, scope, params)
        elif untouched:
            return Republished(0, 0, 0)
    replaced_quality = None if scope.full else conn.execute(sa.text(  # None: every row of the entity
        f"SELECT file_id FROM file_quality WHERE {replaced_file_quality(scope)}"), params).scalars()
    if scope.full:
        run.journal(row_outcomes.name, files, scope, warehouse.sql(outcomes_sql(entity, scope), params),
                    OUTCOME_COLUMNS)
    else:
        scope._materialize(conn, scope.outcomes, outcomes_sql(entity, scope), params)
        run.journal(row_outcomes.name, files, scope, warehouse.spark.table(scope.outcomes).select(
            *_names(OUTCOME_COLUMNS)), OUTCOME_COLUMNS)
    _move_rows(run, e, scope, files)
    run.journal(dedup_log.name, files, scope, warehouse.sql(dedup_log_sql(scope), params), DEDUP_LOG_COLUMNS)
    run.journal(quarantine.name, files, scope, warehouse.sql(quarantine_sql(scope), params), QUARANTINE_COLUMNS)
    run.account(e, replaced_quality, warehouse.sql(file_quality_sql(scope), params), FILE_QUALITY_COLUMNS)
    keys, rows, written = conn.execute(sa.text(  # Scope.counts and the staged rows, in one query
        f"SELECT c.*, ({staged_count_sql(scope)}) FROM ({scope.counts_sql()}) c"), params).one()
    return Republished(int(keys), int(rows), int(written), None if scope.full else tuple(files))


def _find_rule_hits(run: _Run, conn: SparkConnection, entity: Entity, scope: SparkScope, params: dict) -> list[int]:
    """The re-resolved rows' rule hits (`rule_hit_selects`), journaled over their files' partitions: the files whose
    partitions the run replaces (the scope's accounted files, all the entity's on a full refresh)."""
    scope.find_repeated_keys(conn)
    selects = [run.warehouse.sql(select, {**params, **extra}).toDF(*_names(RULE_HIT_COLUMNS))
               for select, extra in rule_hit_selects(entity, scope)]
    hits = selects[0]
    for more in selects[1:]:
        hits = hits.unionByName(more)
    scope.gather_accounted_files(conn)
    files = run.files_replaced(conn, scope)
    run.journal(rule_hits.name, files, scope, hits, RULE_HIT_COLUMNS)
    return files


def _move_rows(run: _Run, e: str, scope: SparkScope, files: list[int]) -> None:
    """`stg_<e>` and `unstaged_<e>` of the replaced files: each re-resolved row in the table of its outcome, every
    other row where it was."""
    if not files:
        return
    from pyspark.sql import functions as F

    spark = run.warehouse.spark
    outcomes = spark.table(scope.outcomes).where(F.col("entity") == e).select(
        "_file_id", "_row_number", (F.col("outcome") == "staged").alias("_staged"))
    lineage = ["_file_id", "_row_number"]
    for target, staged in ((f"stg_{e}", True), (f"unstaged_{e}", False)):
        parts = []
        for source in (f"stg_{e}", f"unstaged_{e}"):
            rows = run.live(source).where(F.col("_file_id").isin(files)).join(outcomes, lineage, "left")
            stays = F.col("_staged").isNull() if source == target else F.lit(False)
            parts.append(rows.where(stays | (F.col("_staged") == F.lit(staged))).drop("_staged"))
        run.journal_rows(target, files, parts[0].unionByName(parts[1]))


class _Run(Journal):
    """One publish run's journal, its manifest and the temporary views of the tables' current state."""

    def __init__(self, warehouse: SparkWarehouse):
        super().__init__(warehouse, JOURNAL)
        self.replaced: dict[str, list[int]] = {}  # table -> partitions (file ids) the journal replaces
        self.quality = None  # file_quality's new rows (pandas: a row per file), once an entity is accounted
        self.views: set[str] = set()
        self.files_of: dict[str, list[int]] | None = None  # entity -> its files (a full refresh replaces them all)

    # The journal and its commit.
    def commit(self) -> None:
        if not self.replaced and self.quality is None:
            return  # nothing re-resolved
        if self.quality is not None:
            frame = self.spark.createDataFrame(self.quality, schema=self.live(file_quality.name).schema)
            frame.write.mode("overwrite").parquet(self.path(file_quality.name))
        super().commit({"tables": self.replaced, "file_quality": self.quality is not None})

    def finish_committed(self) -> None:
        """Apply a committed journal to the live tables, then remove it (harmless to repeat)."""
        manifest = self.committed()
        if manifest is None:
            return
        for table, files in manifest["tables"].items():
            partition = self.partition_column(table)
            journaled = self.journal_partitions(table)
            if journaled:
                self.warehouse.write_frame(table, self.read_journal(table), overwrite=True)
            for file_id in sorted(set(files) - set(journaled) & set(self.warehouse.partitions(table))):
                self.warehouse.clear_partition(table, partition, file_id)
        if manifest["file_quality"]:
            self.warehouse.write_frame(file_quality.name, self.read_journal(file_quality.name), overwrite=True)
        self.close()

    # Writing the journal.
    def files_replaced(self, conn: SparkConnection, scope: Scope) -> list[int]:
        """The files whose partitions this entity's run replaces: every file of the entity on a full refresh."""
        if scope.full:
            if self.files_of is None:
                self.files_of = {}
                for entity, file_id in conn.execute(sa.text("SELECT entity, file_id FROM files ORDER BY 2")):
                    self.files_of.setdefault(entity, []).append(int(file_id))
            return self.files_of.get(scope.entity.name, [])
        return [int(i) for i in conn.execute(sa.text(f"SELECT file_id FROM {scope.accounted} ORDER BY 1")).scalars()]

    def journal(self, table: str, files: list[int], scope: Scope, new, columns: str) -> None:
        """New content of `table`'s partitions `files`: its rows there outside the scope, and `new` (the rows of
        a stage SELECT, positionally `columns`)."""
        if not files:
            return
        from pyspark.sql import functions as F

        partition = self.partition_column(table)
        new = new.toDF(*_names(columns))
        kept = self.live(table).where(F.col(partition).isin(files))
        if not scope.full:  # rows of the scope are replaced, the others kept
            lineage = ["_file_id", "_row_number"] if partition == "_file_id" else ["file_id", "row_number"]
            rows = self.spark.table(scope.rows).toDF(*lineage)
            new_rows = new.unionByName(kept.join(rows, lineage, "left_anti"))
        else:
            new_rows = new
        self.journal_rows(table, files, new_rows)

    def journal_rows(self, table: str, files: list[int], rows) -> None:
        """The whole new content of `table`'s partitions `files`, in the journal; the table's current state (the
        temporary view the stage SQL reads) from now on shows it."""
        schema = self.live(table).schema
        partition = self.partition_column(table)
        conformed = rows.select(*[rows[f.name].cast(f.dataType).alias(f.name) for f in schema])
        conformed.write.mode("overwrite").partitionBy(partition).parquet(self.path(table))
        self.replaced[table] = sorted(set(self.replaced.get(table, [])) | set(files))
        if table in READ_BACK:
            self._show_current(table)

    def account(self, entity: str, replaced: list | None, new, columns: str) -> None:
        """file_quality's rows: the current ones but those `replaced` (None: all of `entity`'s), and `new` (a row
        per file: on the driver)."""
        import pandas as pd

        current = self.live(file_quality.name).toPandas() if self.quality is None else self.quality
        fresh = new.toDF(*_names(columns)).toPandas()
        gone = (current["entity"] == entity) if replaced is None else current["file_id"].isin([int(i) for i in replaced])
        kept = current[~gone]
        self.quality = pd.concat([kept, fresh[kept.columns]], ignore_index=True)

    def _show_current(self, table: str) -> None:
        """`table` as stage SQL reads it for the rest of the run: live, its journaled partitions the journal's."""
        from pyspark.sql import functions as F

        partition = self.partition_column(table)
        live = self.live(table).where(~F.col(partition).isin(self.replaced[table]))
        live.unionByName(self.read_journal(table)).createOrReplaceTempView(table)
        self.views.add(table)

    def drop_views(self) -> None:
        for view in self.views:
            self.spark.catalog.dropTempView(view)
        self.views.clear()

    # Reading.
    def read_journal(self, table: str):
        schema = self.live(table).schema
        return self.spark.read.schema(schema).parquet(self.path(table)).select(*schema.names)

    def journal_partitions(self, table: str) -> list[int]:
        partition = self.partition_column(table)
        return sorted(int(name.split("=", 1)[1]) for name in self.entries(table)
                      if name.startswith(f"{partition}="))

    def partition_column(self, table: str) -> str:
        return PARTITIONED.get(table, "_file_id")  # stg_/unstaged_: `_file_id`


def _names(columns: str) -> list[str]:
    return [c.strip().strip('"') for c in columns.split(",")]
