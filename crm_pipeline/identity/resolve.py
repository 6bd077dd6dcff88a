"""Identity resolution end to end: graph from staging, guards, probabilistic edges, stable ids, tables."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.identity.config import IdentityConfig
from crm_pipeline.identity import graph as graph_tables
from crm_pipeline.identity import guards
from crm_pipeline.identity.nodes import Since
from crm_pipeline.identity.match_store import match_digest, records_digest, stored_match, store_match
from crm_pipeline.identity.runs import (
    MATCH_RECORDS, additions_since, fingerprint, last_full_as_of, last_run, last_run_parts, stored_fingerprint,
)
from crm_pipeline.identity.scope import TOUCHED_CONTACTS, Scope
from crm_pipeline.identity.stable_ids import SCRATCH as STABLE_ID_SCRATCH, assign_contact_ids
from crm_pipeline.identity.write import ChangeCounts, write_by_difference
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.engine import memory_lent
from crm_pipeline.warehouse.identity_schema import (
    create_identity_tables, identity_alerts, identity_borderline, identity_decisions,
)

PairFinder = Callable[..., pd.DataFrame]
# This run's identity_nodes rows of the scope: each node's contact id, how it matched, and when first seen.
NEXT_NODES_SQL = """
    SELECT n.node_id, c.contact_id, t.match_type, t.match_probability,
           COALESCE(p.first_seen_as_of, :as_of) AS first_seen_as_of
    FROM id_nodes n JOIN id_typed t ON t.k = n.k JOIN id_contact_of c ON c.component = t.component
    LEFT JOIN identity_nodes p ON p.node_id = n.node_id"""
# The run's merges and splits (`stable_ids.id_log`) as merge_log rows.
MERGE_LOG_ROWS_SQL = (
    "SELECT kind, old_contact_id, new_contact_id, CASE WHEN kind = 'merge' THEN 'clusters joined by new records' "
    "ELSE 'records no longer linked' END AS reason, :as_of AS as_of FROM id_log")
_NEXT_NODES = "id_nodes_next"  # this run's identity_nodes rows of the scope, written by difference
# The share of the warehouse's DuckDB memory limit the probabilistic pass's own DuckDB instance gets
# (`resources.side_duckdb_settings`); the warehouse keeps the rest while the pass runs (`memory_lent`), so the
# two instances in one process stay within the one limit the settings give.
PASS_MEMORY_SHARE = 0.9


@dataclass
class IdentityReport:
    records: int = 0
    nodes: int = 0
    contacts: int = 0
    merges: int = 0
    splits: int = 0
    largest_cluster: int = 0
    probabilistic_pairs: int = 0
    probabilistic_share: float = 0.0  # share of records whose contact needed a probabilistic edge
    junk_values: int = 0
    capped_values: int = 0
    shared_devices: int = 0
    oversized_clusters: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)  # connected-components rounds run in the warehouse
    must_links: int = 0  # reviewers' decisions honoured this run
    cannot_links: int = 0
    cannot_links_unenforceable: list[str] = field(default_factory=list)  # pairs a shared identifier joins
    match: object | None = None  # the probabilistic pass's MatchResult (model, threshold, borderline)
    graph_reused: bool = False  # no edge or node changed: every node's contact was kept, none recomputed
    match_reused: bool = False  # the probabilistic pass's input was unchanged: its stored result was used
    new_files_only: bool = False  # rows were only added since the last run: only the new files' rows were read
    edges_scoped: bool = False  # and the deterministic edges were built and compared among the nodes they touch
    mode: str = "full"  # full (first run, asked for, or the periodic re-cluster) / incremental / unchanged
    full_reason: str = ""  # why a run was full: first run / full refresh / periodic re-cluster
    nodes_recomputed: int = 0  # nodes whose components, match types and ids this run computed (scope.py)
    components_recomputed: int = 0  # the contacts (final components) among them
    changes: ChangeCounts = field(default_factory=ChangeCounts)


def resolve_identities(engine: sa.Engine, *, as_of: date, config: IdentityConfig,
                       find_pairs: PairFinder | None = None, full_refresh: bool = False,
                       on_step: Callable[[str, float], None] | None = None) -> IdentityReport:
    """Bring identity_nodes, identity_map and contacts up to date; append merges and splits to merge_log.

    When no staged record, review decision or setting changed since the last resolution, nothing is
    read or written (mode `unchanged`). Otherwise only the part of the graph the changes touch is
    clustered again (`scope.py`) and only the rows that differ from the stored state are rewritten. When
    rows were only added since the last run (`runs.additions_since`), only the new files' rows are read: the
    graph's inputs are the stored ones and theirs, the deterministic edges are compared among the nodes those
    rows touch (`guards.affected_nodes`), and the probabilistic pass's stored result is looked up without
    reading the person records when none changed and their clusters did not (`_unchanged_match_input`). The
    whole graph is clustered on the first run, on `full_refresh` (which also resolves when nothing changed
    and trains the probabilistic model again) and every `full_recluster_every_days` days. `on_step(name,
    seconds)` hears of each step as it finishes (at 1M people the stage runs for minutes).
    """
    report, clock = IdentityReport(), time.perf_counter()
    create_identity_tables(engine)
    with engine.connect() as conn:
        signature = fingerprint(conn, config, probabilistic=config.probabilistic_enabled and find_pairs is not None)
        previous = last_run_parts(conn)
        previous_signature = last_run(conn)
        if previous_signature == signature and not full_refresh:
            _fill_from_stored(conn, report, config, as_of, "unchanged")
            report.seconds["total"] = time.perf_counter() - clock
            return report
        last_full = last_full_as_of(conn)
    every = config.full_recluster_every_days
    report.full_reason = ("full refresh" if full_refresh else "first run" if previous_signature is None
                          else "periodic re-cluster" if every and (last_full is None or (as_of - last_full).days >= every)
                          else "")
    report.mode = "full" if report.full_reason else "incremental"
    report.seconds["fingerprint"] = time.perf_counter() - clock
    # One connection for the rest: the graph's scratch tables are private to it, and the write commits once.
    with engine.connect() as conn:
        _resolve(conn, report, clock, as_of=as_of, config=config, find_pairs=find_pairs, full_refresh=full_refresh,
                 signature=signature, previous=previous, on_step=on_step)
    return report


def _resolve(conn: sa.Connection, report: IdentityReport, clock: float, *, as_of: date, config: IdentityConfig,
             find_pairs: PairFinder | None, full_refresh: bool, signature: str, previous: dict | None,
             on_step: Callable[[str, float], None] | None = None) -> None:
    def mark(step: str, shown: str | None = None) -> None:
        """The report's seconds since the start at the end of `step`; the step's own seconds to `on_step`."""
        now = time.perf_counter() - clock
        if on_step is not None:
            on_step(shown or step, now - max(report.seconds.values(), default=0.0))
        report.seconds[step] = now

    graph_tables.drop_scratch(conn)
    since = additions_since(conn, previous, signature) if report.mode == "incremental" else None
    report.new_files_only = since is not None
    graph_tables.load_nodes(conn, since)
    guards.load_edges(conn, since)
    decisions = read_frame(conn, sa.select(identity_decisions.c.node_a, identity_decisions.c.node_b,
                                           identity_decisions.c.decision))
    # An erased person's contact id is never handed to someone new.
    erased = conn.execute(sa.text("SELECT MAX(retired_contact_number) FROM erasure_requests")).scalar() \
        if sa.inspect(conn).has_table("erasure_requests") else None
    mark("read")
    rejected = guards.apply_guards(conn, config)
    scope = Scope(full=report.mode == "full")
    # Rows only added, decisions and settings as before: the edges that may have changed lie among few nodes.
    scoped = since is not None and _same_parts(previous, signature, ("identity_decisions", "settings"))
    affected = guards.affected_nodes(conn, since, graph_tables.NEW_NODES, graph_tables.MUST_LINKS) if scoped else None
    report.edges_scoped = affected is not None
    report.rounds["deterministic"] = graph_tables.deterministic_components(conn, scope, affected)
    mark("deterministic")

    pairs, new_match, matched = pd.DataFrame({"node_a": [], "node_b": [], "match_probability": []}), None, None
    if config.probabilistic_enabled and find_pairs is not None:
        found, new_match, matched = _probabilistic(conn, report, config, find_pairs, full_refresh=full_refresh,
                                                   previous=previous, signature=signature, scope=scope)
        if found is not None:
            pairs, report.match = getattr(found, "pairs", found), (found if hasattr(found, "pairs") else None)
    mark("probabilistic")

    cannot = decisions.loc[decisions["decision"] == "cannot_link", ["node_a", "node_b"]]
    pairs, unenforceable = _honour_cannot_links(conn, report, pairs, cannot, scope)
    report.must_links, report.cannot_links = int((decisions["decision"] == "must_link").sum()), len(cannot)
    report.cannot_links_unenforceable = unenforceable
    graph_tables.type_matches(conn)
    assign_contact_ids(conn, at_least=int(erased or 0) + 1)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_NEXT_NODES}"))
    conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_NEXT_NODES} AS {NEXT_NODES_SQL}"), {"as_of": as_of})

    report.nodes, report.merges, report.splits = (int(v or 0) for v in conn.execute(sa.text(
        "SELECT (SELECT COUNT(*) FROM id_nodes), (SELECT COUNT(*) FROM id_log WHERE kind = 'merge'), "
        "(SELECT COUNT(*) FROM id_log WHERE kind = 'split')")).one())
    report.nodes_recomputed = scope.nodes
    report.graph_reused = not scope.full and scope.nodes == 0 and not scope.contacts
    report.components_recomputed = int(conn.execute(sa.text(
        "SELECT COUNT(DISTINCT label) FROM id_final")).scalar_one())
    report.changes, oversized = _write(
        conn, lambda oversized: alert_rows(rejected, oversized, config, as_of, report.match), as_of,
        _borderline_rows(report.match, pairs, as_of), mode=report.mode,
        signature=stored_fingerprint(signature, matched), new_match=new_match, scope=scope,
        since=since, cap=config.max_cluster_size)
    # The totals, from the tables just written (contacts and the map are whole; the scratch tables a part).
    prob_records = _table_totals(conn, report)
    mark("total", shown="ids and write")

    report.probabilistic_pairs = len(pairs)
    report.probabilistic_share = float(prob_records / max(report.records, 1))
    report.junk_values, report.capped_values = len(rejected.junk), len(rejected.capped)
    report.shared_devices = len(rejected.shared)
    report.oversized_clusters = list(oversized.index)


def _probabilistic(conn: sa.Connection, report: IdentityReport, config: IdentityConfig, find_pairs: PairFinder, *,
                   full_refresh: bool, previous: dict | None, signature: str, scope: Scope) -> tuple:
    """The probabilistic pass's result (stored or new), the new one to store (digest, result) or None, and its
    input's digest. Its own function, so that the person records it reads are freed when it returns (at 1M
    people a few hundred MB the rest of the resolution has no use for)."""
    known = None if full_refresh else _unchanged_match_input(conn, previous, signature, scope)
    found = None if known is None else stored_match(conn, match_digest(known, config, find_pairs))
    if found is not None:  # the input is the last run's: its stored pass, without reading the records
        report.match_reused = True
        return found, None, known
    records = graph_tables.clustered_person_records(conn)   # Splink's input: one row per named record
    if not len(records):
        return None, None, None
    matched = records_digest(records, graph_tables.PERSON_CLUSTER)
    del records[graph_tables.PERSON_CLUSTER]
    digest = match_digest(matched, config, find_pairs)
    found = None if full_refresh else stored_match(conn, digest)
    report.match_reused = found is not None
    if found is not None:
        return found, None, matched
    with memory_lent(conn, PASS_MEMORY_SHARE):
        found = find_pairs(records, threshold=config.probabilistic_threshold,
                           max_pairs_per_record=config.max_pairs_per_record, seed=config.seed,
                           blocking=config.blocking)
    return found, (digest, found), matched


def _unchanged_match_input(conn: sa.Connection, previous: dict | None, signature: str, scope: Scope) -> str | None:
    """The last run's probabilistic input digest when this run's input is known to be the same, else None.

    It is when the person records (their staged tables) and the settings are the last run's, and the scope's
    person nodes fall into deterministic clusters as they did (outside the scope nothing moved): then the
    pass would read the frame it read last time, and its stored result can be looked up without reading it.
    """
    if previous is None or scope.full or not previous.get(MATCH_RECORDS):
        return None
    if not _same_parts(previous, signature, ("stg_customers", "stg_subscribers", "settings")):
        return None
    # A bijection between the stored clusters and this run's, over the scope's account and subscriber nodes
    # (the person nodes among others: the same grouping of those is the same grouping of the person nodes).
    rows, olds, news, unknown = (int(v or 0) for v in conn.execute(sa.text(f"""
        SELECT COUNT(*), COUNT(DISTINCT old), COUNT(DISTINCT new), SUM(CASE WHEN old IS NULL THEN 1 ELSE 0 END)
        FROM (SELECT DISTINCT g.node_b AS old, d.label AS new
              FROM id_scope s JOIN id_nodes n ON n.k = s.k JOIN id_det d ON d.k = s.k
              LEFT JOIN identity_graph g ON g.kind = 'cluster' AND g.node_a = n.node_id
              WHERE SPLIT_PART(n.node_id, '|', 2) IN ('customer', 'subscriber')) x""")).one())
    return previous[MATCH_RECORDS] if rows == olds == news and not unknown else None


def _same_parts(previous: dict | None, signature: str, parts: tuple[str, ...]) -> bool:
    """These parts of this run's fingerprint are the last run's."""
    now = json.loads(signature)
    return previous is not None and all(previous.get(part) == now[part] for part in parts)


def _honour_cannot_links(conn: sa.Connection, report: IdentityReport, pairs: pd.DataFrame,
                         cannot: pd.DataFrame, scope: Scope) -> tuple[pd.DataFrame, list[str]]:
    """The accepted pairs once no probabilistic edge joins a cannot-link pair, with `id_final` built from them.

    The pair's own edge goes; if the two still meet through other probabilistic edges,
    every probabilistic edge touching either of them goes too. A pair that shared
    identifiers join (one email) cannot be kept apart by dropping model edges: it is
    returned for an alert.
    """
    if len(cannot):
        key = pairs["node_a"] + "\x1f" + pairs["node_b"]
        pairs = pairs[~key.isin(cannot["node_a"] + "\x1f" + cannot["node_b"])]
    report.rounds["final"] = graph_tables.final_components(conn, pairs, scope)
    if not len(cannot):
        return pairs, []
    together = graph_tables.pairs_in_one_component(conn, "id_final", graph_tables.CANNOT_LINKS)
    if len(together):
        touched = pd.concat([together["node_a"], together["node_b"]])
        pairs = pairs[~(pairs["node_a"].isin(touched) | pairs["node_b"].isin(touched))]
        report.rounds["final"] += graph_tables.final_components(conn, pairs, scope)
    stuck = graph_tables.pairs_in_one_component(conn, "id_det", graph_tables.CANNOT_LINKS)
    stuck = stuck.sort_values(["node_a", "node_b"])
    return pairs, list(stuck["node_a"] + " / " + stuck["node_b"])


def _borderline_rows(match, pairs: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The model's borderline sample as stored for `crm-pipeline identity review`."""
    columns = ["node_a", "node_b", "match_probability", "match_weight", "field_weights", "accepted", "as_of"]
    sample = getattr(match, "borderline", None)
    if sample is None or not len(sample):
        return pd.DataFrame(columns=columns)
    weights = sample.filter(like="w_").rename(columns=lambda c: c[2:])
    accepted = (sample["node_a"] + "\x1f" + sample["node_b"]).isin(pairs["node_a"] + "\x1f" + pairs["node_b"])
    return pd.DataFrame({
        "node_a": sample["node_a"], "node_b": sample["node_b"],
        "match_probability": sample["match_probability"].astype(float),
        "match_weight": sample["match_weight"].astype(float),
        "field_weights": [json.dumps(row, sort_keys=True) for row in weights.to_dict("records")],
        "accepted": accepted.values, "as_of": as_of,
    }, columns=columns)


def alert_rows(rejected: guards.Rejected, oversized: pd.Series, config: IdentityConfig, as_of: date,
               match=None) -> pd.DataFrame:
    """The day's identity_alerts rows (a few: identifiers the guards rejected, contacts over the size cap, the
    blocking plan's warnings); the Spark runner writes the same rows."""
    rows = [pd.DataFrame({"kind": "junk_identifier", "subject": rejected.junk["kind"] + ":" + rejected.junk["value"],
                          "detail": rejected.junk["nodes"].astype(str) + " records carried it; never used to join"}),
            pd.DataFrame({"kind": "identifier_capped",
                          "subject": rejected.capped["kind"] + ":" + rejected.capped["value"],
                          "detail": rejected.capped["people"].astype(str) + " distinct people share it (cap "
                                    + str(config.max_people_per_identifier) + "); not used to join"}),
            pd.DataFrame({"kind": "device_shared", "subject": "device:" + rejected.shared["device"],
                          "detail": rejected.shared["people"].astype(str) + " distinct people logged in on it (cap "
                                    + str(config.max_people_per_device) + "); not used to join"}),
            pd.DataFrame({"kind": "cluster_too_large", "subject": oversized.index.astype(str),
                          "detail": oversized.astype(str).values + f" nodes (max {config.max_cluster_size})"}),
            *_blocking_alerts(match)]
    alerts = pd.concat(rows, ignore_index=True)
    alerts["as_of"] = as_of
    return alerts


def _blocking_alerts(match) -> list[pd.DataFrame]:
    """What the comparison budget left out of probabilistic matching: each rule tightened or skipped, and each
    key too widely shared to pair anyone (see blocking.py)."""
    rules = getattr(match, "blocking", None)
    keys = getattr(match, "oversized_keys", None)
    frames = []
    if rules is not None and len(rules):
        cut = rules[rules["status"] != "kept"]
        frames.append(pd.DataFrame({"kind": "blocking_rule_" + cut["status"], "subject": "blocking rule: " + cut["rule"],
                                    "detail": cut["reason"]}))
    if keys is not None and len(keys):
        frames.append(pd.DataFrame({"kind": "blocking_key_oversized",
                                    "subject": "blocking rule: " + keys["rule"] + " = " + keys["key"],
                                    "detail": keys["records"].astype(str) + " records share this key; "
                                              "it pairs nobody for probabilistic matching"}))
    return frames


def _table_totals(conn: sa.Connection, report: IdentityReport) -> int:
    """The report's records, contacts and largest cluster from `identity_map` and `contacts`; returns the
    records matched probabilistically."""
    report.records, prob_records = (int(v or 0) for v in conn.execute(sa.text(
        "SELECT COUNT(*), SUM(CASE WHEN match_type = 'probabilistic' THEN 1 ELSE 0 END) FROM identity_map")).one())
    report.contacts, report.largest_cluster = (int(v or 0) for v in conn.execute(sa.text(
        "SELECT COUNT(*), MAX(node_count) FROM contacts")).one())
    return prob_records


def _fill_from_stored(conn: sa.Connection, report: IdentityReport, config: IdentityConfig, as_of: date,
                      mode: str) -> None:
    """The figures of a run that kept every node's contact, read from the tables (small aggregates)."""
    report.mode = mode
    (report.junk_values, report.capped_values, report.shared_devices,
     report.probabilistic_pairs) = (int(n) for n in conn.execute(sa.text(
        "SELECT (SELECT COUNT(*) FROM identity_alerts WHERE as_of = :d AND kind = 'junk_identifier'), "
        "(SELECT COUNT(*) FROM identity_alerts WHERE as_of = :d AND kind = 'identifier_capped'), "
        "(SELECT COUNT(*) FROM identity_alerts WHERE as_of = :d AND kind = 'device_shared'), "
        "(SELECT COUNT(*) FROM identity_pairs)"), {"d": as_of}).one())
    _table_totals(conn, report)
    report.nodes = int(conn.execute(sa.text("SELECT COUNT(*) FROM identity_nodes")).scalar_one())
    report.oversized_clusters = list(conn.execute(sa.text(
        "SELECT contact_id FROM contacts WHERE node_count > :cap ORDER BY contact_id"),
        {"cap": config.max_cluster_size}).scalars())


def _write(conn: sa.Connection, alerts_for: Callable[[pd.Series], pd.DataFrame], as_of: date,
           borderline: pd.DataFrame, *, mode: str, signature: str, new_match: tuple | None, scope: Scope,
           since: Since | None, cap: int) -> tuple[ChangeCounts, pd.Series]:
    """Update the identity state in one transaction, by difference; merges and splits are appended to the log.
    The alerts (`alerts_for` the contacts over `cap` nodes) are written once the contacts are; returns the
    changes and those contacts' sizes."""
    conn.execute(identity_borderline.delete())
    if len(borderline):
        insert_arrow(conn, identity_borderline, pa.Table.from_pandas(borderline, preserve_index=False))
    conn.execute(sa.text(f"INSERT INTO merge_log (kind, old_contact_id, new_contact_id, reason, as_of) "
                         f"{MERGE_LOG_ROWS_SQL}"), {"as_of": as_of})
    if new_match is not None:
        store_match(conn, *new_match, as_of)
    counts = write_by_difference(conn, _NEXT_NODES, as_of=as_of, mode=mode, fingerprint=signature,
                                 stored_scope=None if scope.full else TOUCHED_CONTACTS, since=since)
    scope.save(conn)
    guards.save_inputs(conn, replace=since is None)
    oversized = read_frame(conn, sa.text("SELECT contact_id, node_count FROM contacts WHERE node_count > :cap "
                                         "ORDER BY contact_id").bindparams(cap=cap))
    oversized = pd.Series(oversized["node_count"].to_numpy(), index=oversized["contact_id"].astype(str).to_numpy())
    alerts = alerts_for(oversized)
    conn.execute(identity_alerts.delete().where(identity_alerts.c.as_of == as_of))
    if len(alerts):
        insert_arrow(conn, identity_alerts, pa.Table.from_pandas(
            alerts[["kind", "subject", "detail", "as_of"]], preserve_index=False))
    for table in (*graph_tables.SCRATCH, *STABLE_ID_SCRATCH, _NEXT_NODES):
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    conn.commit()
    return counts, oversized
