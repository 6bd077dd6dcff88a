"""Identity's probabilistic pass on Spark: Splink's Spark backend, from the DuckDB pass's own SQL and model.

The pass is `identity.probabilistic.match_people`'s, step for step, with the tables on Spark instead of an
in-memory DuckDB: the person records of the deterministic clusters (a SELECT over `id_nodes` / `id_det`, not
a pandas frame), prepared by `probabilistic.prepare_sql`, held to the comparison budget by
`blocking.plan_blocking` (its block columns joined on rather than updated in place), trained by
`probabilistic._trained_linker` (the same steps, the same settings from `splink_settings`, on a `SparkAPI`
linker), scored by Splink's predict, thresholded by `model_threshold` and cut to each record's best edges
by `accepted_pairs_sql`. Every statement of the room is DuckDB SQL rendered for Spark by
`warehouse.dialects.render`; Splink writes its own Spark SQL. The accepted pairs become the scratch view
`id_pairs` the graph's `components_with_pairs` reads: the pairs are never collected to the driver.

The driver holds: a few counts, the blocking plan (one row per rule and the oversized keys it names),
Splink's trained model (a dict of m and u per comparison level) and the borderline sample (`BORDERLINE` rows).

Same parameters as DuckDB: on data where Splink's samples are the whole data (u from every pair below
`U_MAX_PAIRS`, EM sessions below `EM_MAX_PAIRS`) both engines train on the same pairs and agree to the last
digits. Above those sizes each engine samples by a hash of the record id, and DuckDB's and Spark's hashes
differ: the samples differ, so m and u (and the probabilities) differ by sampling noise, as between two seeds.
"""

from __future__ import annotations

import logging

from crm_pipeline.identity import splink_settings as model
from crm_pipeline.identity.blocking import plan_blocking
from crm_pipeline.identity.config import IdentityConfig
from crm_pipeline.identity.graph import CANNOT_LINKS, components_with_pairs
from crm_pipeline.identity.nicknames import nickname_rows
from crm_pipeline.identity.nodes import person_records_sql
from crm_pipeline.identity.probabilistic import (
    JUNK_MIN, JUNK_SHARE, MIN_RECORDS, RECORDS, SCORED_FLOOR, MatchResult, _empty, _stored_model, _trained_linker,
    accepted_pairs_sql, borderline_sql, lap_timer, model_threshold, named_count, prepare_sql, sort_borderline,
)
from crm_pipeline.identity.scope import Scope
from crm_pipeline.spark.identity import NO_PAIRS_SQL

logger = logging.getLogger(__name__)

PAIRS = "id_pairs"  # the pairs the graph joins (`graph.components_with_pairs` reads them)
ACCEPTED = "id_match_pairs"  # the pass's accepted pairs before the reviewers' cannot-links: `identity_pairs`' rows
_INPUT, _NICKNAMES, _PREPARED = "id_match_input", "id_match_nicknames", "id_match_prepared"
BORDERLINE = 20
# The pass's input on a full run: every named record with its deterministic cluster (its smallest node id).
INPUT_SQL = f"""
    SELECT r.node_id, c.node_id AS cluster_id, r.first_name, r.last_name, r.birth_date, r.address_line1,
           r.postal_code, r.country, r.city, r.region
    FROM ({person_records_sql()}) r JOIN id_nodes n ON n.node_id = r.node_id JOIN id_det d ON d.k = n.k
    JOIN id_nodes c ON c.k = d.label"""


class _Fetched:
    def __init__(self, rows: list) -> None:
        self.rows = rows

    def fetchone(self):
        return tuple(self.rows[0]) if self.rows else None

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self.rows]


class SplinkSqlOnSpark:
    """The part of a DuckDB connection the pass's shared SQL uses (`execute`, `sql(...).fetchone()`), on a
    `SparkIdentityConnection`: a created table is a checkpointed view, a query's (small) result is collected."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def execute(self, sql: str) -> None:
        self.conn.execute(sql)

    def sql(self, sql: str) -> _Fetched:
        return _Fetched(self.conn.execute(sql).all())


def match_people_on_spark(conn, config: IdentityConfig, scope: Scope) -> tuple[MatchResult, int]:
    """The probabilistic pass over the full run's deterministic clusters: `id_pairs` (node_a, node_b,
    match_probability) made on Spark, the reviewers' cannot-links honoured, `id_final` built from them. Returns
    the pass's MatchResult (its `pairs` left empty: they stay in `id_pairs`) and the components' rounds."""
    found = _match(conn, config)
    return found, _final_components(conn, scope)


def _match(conn, config: IdentityConfig) -> MatchResult:
    seconds = {}
    lap = lap_timer(seconds)
    sql = SplinkSqlOnSpark(conn)
    spark = conn.warehouse.spark
    found = MatchResult(_empty(), seconds=seconds)
    conn.materialize(_INPUT, INPUT_SQL)
    records = int(sql.sql(f"SELECT count(*) FROM {_INPUT}").fetchone()[0])
    if records < MIN_RECORDS:
        return _no_pairs(conn, found)
    spark.createDataFrame(nickname_rows(), "name string, formal string").createOrReplaceTempView(_NICKNAMES)
    conn.views.add(_NICKNAMES)
    conn.materialize(_PREPARED, prepare_sql(_INPUT, _NICKNAMES, max(JUNK_MIN, int(records * JUNK_SHARE))))
    if named_count(sql, _PREPARED) < MIN_RECORDS:
        return _no_pairs(conn, found)
    lap("prepare")
    plan = plan_blocking(sql, _PREPARED, model.PREDICTION_BLOCKING_FIELDS, config.blocking,
                         extra_condition=model.OTHER_CLUSTER, group=model.CLUSTER, into=RECORDS,
                         block_number="monotonically_increasing_id()")
    conn.views.add(RECORDS)
    found.blocking, found.oversized_keys = plan.report, plan.oversized_keys
    lap("blocking")
    if not plan.rules:
        logger.warning("probabilistic pass on Spark: the comparison budget left no blocking rule; no edges")
        return _no_pairs(conn, found)
    db_api = _checkpointing_api(spark)
    try:
        linker = _trained_linker(db_api.register(RECORDS), sql, config.seed, plan.rules)
        lap("training")
        if linker is None:
            return _no_pairs(conn, found)
        predictions = linker.inference.predict(threshold_match_probability=SCORED_FLOOR).physical_name
        lap("predict")
        found.threshold = (model_threshold(sql, predictions) if config.probabilistic_threshold is None
                           else float(config.probabilistic_threshold))
        conn.materialize(ACCEPTED, accepted_pairs_sql(predictions, found.threshold, config.max_pairs_per_record))
        # A reviewer's cannot-link drops the pair's own edge (`resolve._honour_cannot_links`, first step).
        conn.materialize(PAIRS, f"""
            SELECT p.node_a, p.node_b, p.match_probability FROM {ACCEPTED} p
            LEFT JOIN ({CANNOT_LINKS}) c ON c.node_a = p.node_a AND c.node_b = p.node_b
            WHERE c.node_a IS NULL""")
        found.candidate_pairs, found.model = plan.comparisons, _stored_model(linker)
        columns = spark.table(predictions).columns
        found.borderline = sort_borderline(
            conn.sql(borderline_sql(columns, predictions, found.threshold, BORDERLINE)).toPandas())
        lap("pairs")
    finally:
        db_api.delete_tables_created_by_splink_from_db()
    return found


_BLOCKED_PAIRS = "__splink__blocked_id_pairs"


def _checkpointing_api(spark):
    """Splink's Spark backend, the tables it would persist checkpointed locally instead (see
    `SparkIdentityConnection.materialize`), and its agreement-pattern counts too, which EM reads on every
    iteration. Persisted, a table is computed when first read and keeps its plan: each later query over it (EM's
    iterations, the threshold, the pairs) is planned again from Splink's SQL, comparisons and blocking rules and
    all. Not written as Parquet (Splink's default): that needs a checkpoint directory the session may not have."""
    from splink import SparkAPI

    class CheckpointingSparkAPI(SparkAPI):
        def _break_lineage_and_repartition(self, spark_df, templated_name, physical_name):
            if templated_name == _BLOCKED_PAIRS:
                # Splink persists the blocked pairs, then repartitions them: the frame it returns is not the cached
                # one, so its copy would stay in Spark's cache for the session's life. Repartitioned, then checkpointed.
                spark_df = self._repartition_if_needed(spark_df, templated_name)
                return spark_df.repartition(self.num_partitions_on_repartition).localCheckpoint()
            kept = super()._break_lineage_and_repartition(spark_df, templated_name, physical_name)
            if kept.is_cached or templated_name == "__splink__agreement_pattern_counts":
                checkpointed = kept.localCheckpoint()
                kept.unpersist()
                return checkpointed
            return kept

    return CheckpointingSparkAPI(spark_session=spark, break_lineage_method="persist")


def _no_pairs(conn, found: MatchResult) -> MatchResult:
    conn.materialize(ACCEPTED, NO_PAIRS_SQL)
    conn.materialize(PAIRS, NO_PAIRS_SQL)
    return found


def _final_components(conn, scope: Scope) -> int:
    """`id_final` from `id_det` and `id_pairs`; when the pairs still join a cannot-link pair through others,
    every pair touching either of its nodes goes and the components are found again (as DuckDB's
    `resolve._honour_cannot_links`), all in SQL."""
    rounds = components_with_pairs(conn, scope)
    together = f"""
        SELECT c.node_a, c.node_b FROM ({CANNOT_LINKS}) c
        JOIN id_nodes na ON na.node_id = c.node_a JOIN id_final fa ON fa.k = na.k
        JOIN id_nodes nb ON nb.node_id = c.node_b JOIN id_final fb ON fb.k = nb.k
        WHERE fa.label = fb.label"""
    if int(conn.execute(f"SELECT COUNT(*) FROM ({together}) t").scalar_one()):
        conn.materialize("id_pairs_kept", f"""
            WITH touched AS (SELECT node_a AS node_id FROM ({together}) t UNION SELECT node_b FROM ({together}) t)
            SELECT p.node_a, p.node_b, p.match_probability FROM {PAIRS} p
            LEFT JOIN touched ta ON ta.node_id = p.node_a LEFT JOIN touched tb ON tb.node_id = p.node_b
            WHERE ta.node_id IS NULL AND tb.node_id IS NULL""")
        conn.materialize(PAIRS, "SELECT * FROM id_pairs_kept")
        rounds += components_with_pairs(conn, scope)
    return rounds


def pair_count(conn) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {PAIRS}").scalar_one())

