"""Identity resolution end to end: graph from staging, guards, probabilistic edges, stable ids, tables."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.identity.config import IdentityConfig
from crm_pipeline.identity.graph import components
from crm_pipeline.identity.guards import guard_devices, guard_identifiers
from crm_pipeline.identity.nodes import all_nodes, direct_edges, identifier_edges, person_records
from crm_pipeline.identity.match_store import match_digest, stored_match, store_match
from crm_pipeline.identity.runs import fingerprint, graph_digest, last_run, with_graph
from crm_pipeline.identity.stable_ids import assign_contact_ids, id_number
from crm_pipeline.identity.write import ChangeCounts, write_by_difference
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.identity_schema import (
    create_identity_tables, identity_alerts, identity_borderline, identity_decisions, identity_nodes, merge_log,
)

PairFinder = Callable[..., pd.DataFrame]


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
    must_links: int = 0  # reviewers' decisions honoured this run
    cannot_links: int = 0
    cannot_links_unenforceable: list[str] = field(default_factory=list)  # pairs a shared identifier joins
    match: object | None = None  # the probabilistic pass's MatchResult (model, threshold, borderline)
    graph_reused: bool = False  # the graph was as the last run clustered it: its nodes' contacts were kept
    match_reused: bool = False  # the probabilistic pass's input was unchanged: its stored result was used
    mode: str = "full"  # full (first run or asked for) / incremental / unchanged (nothing read changed)
    changes: ChangeCounts = field(default_factory=ChangeCounts)


def resolve_identities(engine: sa.Engine, *, as_of: date, config: IdentityConfig,
                       find_pairs: PairFinder | None = None, full_refresh: bool = False) -> IdentityReport:
    """Bring identity_nodes, identity_map and contacts up to date; append merges and splits to merge_log.

    When no staged record, review decision or setting changed since the last resolution, nothing is
    read or written (mode `unchanged`). Otherwise the whole graph is resolved and only the rows that
    differ from the stored state are rewritten; `full_refresh` resolves even when nothing changed.
    """
    report, clock = IdentityReport(), time.perf_counter()
    create_identity_tables(engine)
    with engine.connect() as conn:
        signature = fingerprint(conn, config, probabilistic=config.probabilistic_enabled and find_pairs is not None)
        previous_signature, previous_graph, previous_as_of = last_run(conn)
        if previous_signature == signature and not full_refresh:
            _fill_from_stored(conn, report, config, as_of, "unchanged")
            report.seconds["total"] = time.perf_counter() - clock
            return report
    report.mode = "full" if full_refresh or previous_signature is None else "incremental"
    report.seconds["fingerprint"] = time.perf_counter() - clock
    with engine.connect() as conn:
        nodes = all_nodes(conn)
        edges = identifier_edges(conn)
        direct = direct_edges(conn)
        people = person_records(conn)
        previous = read_frame(conn, sa.select(identity_nodes.c.node_id, identity_nodes.c.contact_id,
                                              identity_nodes.c.first_seen_as_of))
        retired = read_frame(conn, sa.select(merge_log.c.old_contact_id.label("contact_id")))
        decisions = read_frame(conn, sa.select(identity_decisions.c.node_a, identity_decisions.c.node_b,
                                               identity_decisions.c.decision))
        # An erased person's contact id is never handed to someone new.
        erased = conn.execute(sa.text("SELECT MAX(retired_contact_number) FROM erasure_requests")).scalar() \
            if sa.inspect(conn).has_table("erasure_requests") else None
    report.seconds["read"] = time.perf_counter() - clock
    graph = graph_digest([nodes[["node_id"]], edges, direct, people, decisions], signature)
    signature = with_graph(signature, graph)
    if graph == previous_graph and not full_refresh:
        # The same graph clusters as last time: the stored nodes stand; only new or gone records are written.
        report.graph_reused = True
        report.changes = _write_records_only(engine, as_of, previous_as_of, signature)
        with engine.connect() as conn:
            _fill_from_stored(conn, report, config, as_of, "incremental")
        report.seconds["total"] = time.perf_counter() - clock
        return report

    guarded = guard_identifiers(edges, people, config)
    devices = guard_devices(direct, guarded.edges, people, config)
    guarded.edges, direct = devices.edges, devices.direct
    # A reviewer's must-link is as certain as a shared identifier: the pair is one cluster before scoring.
    must = decisions.loc[decisions["decision"] == "must_link", ["node_a", "node_b"]]
    cannot = decisions.loc[decisions["decision"] == "cannot_link", ["node_a", "node_b"]]
    direct = pd.concat([direct, must], ignore_index=True)
    deterministic = components(nodes["node_id"], guarded.edges, direct)
    report.seconds["deterministic"] = time.perf_counter() - clock

    pairs, new_match = pd.DataFrame(columns=["node_a", "node_b", "match_probability"]), None
    if config.probabilistic_enabled and find_pairs is not None and len(people):
        records = people.drop_duplicates("node_id").assign(
            cluster_id=lambda p: deterministic.set_axis(nodes["node_id"]).reindex(p["node_id"]).values)
        digest = match_digest(records, config, find_pairs)
        with engine.connect() as conn:
            found = None if full_refresh else stored_match(conn, digest)
        report.match_reused = found is not None
        if found is None:
            found = find_pairs(records, threshold=config.probabilistic_threshold,
                               max_pairs_per_record=config.max_pairs_per_record, seed=config.seed,
                               blocking=config.blocking)
            new_match = (digest, found)
        pairs, report.match = getattr(found, "pairs", found), (found if hasattr(found, "pairs") else None)
    report.seconds["probabilistic"] = time.perf_counter() - clock

    pairs, final, unenforceable = _honour_cannot_links(nodes, guarded.edges, direct, deterministic, pairs, cannot)
    report.must_links, report.cannot_links = len(must), len(cannot)
    report.cannot_links_unenforceable = unenforceable
    node_frame = _match_types(nodes, deterministic, final, pairs)
    prev = previous.set_index("node_id")
    next_number = max(_next_number(previous["contact_id"], retired["contact_id"]), int(erased or 0) + 1)
    assignment = assign_contact_ids(final.set_axis(nodes["node_id"]), prev["contact_id"], next_number)
    node_frame["contact_id"] = assignment.contact_of_component.reindex(node_frame["component"]).values
    first_seen = prev["first_seen_as_of"].reindex(node_frame["node_id"]).values
    node_frame["first_seen_as_of"] = pd.to_datetime(pd.Series(first_seen)).fillna(pd.Timestamp(as_of)).dt.date.values

    sizes = node_frame.groupby("contact_id").size()
    oversized = sizes[sizes > config.max_cluster_size]
    alerts = _alerts(guarded, devices.shared, oversized, config, as_of, report.match)
    report.changes = _write(engine, node_frame, assignment, alerts, as_of,
                            _borderline_rows(report.match, pairs, as_of), mode=report.mode, signature=signature,
                            new_match=new_match)
    report.seconds["total"] = time.perf_counter() - clock

    report.records = int(nodes["record_count"].sum())
    report.nodes = len(nodes)
    report.contacts = int(sizes.size)
    report.merges, report.splits = len(assignment.merges), len(assignment.splits)
    report.largest_cluster = int(sizes.max()) if len(sizes) else 0
    report.probabilistic_pairs = len(pairs)
    prob_records = nodes["record_count"][node_frame["match_type"].eq("probabilistic").values].sum()
    report.probabilistic_share = float(prob_records / max(report.records, 1))
    report.junk_values, report.capped_values = len(guarded.junk), len(guarded.capped)
    report.shared_devices = len(devices.shared)
    report.oversized_clusters = list(oversized.index)
    return report


def _honour_cannot_links(nodes: pd.DataFrame, identifier_edges: pd.DataFrame, direct: pd.DataFrame,
                         deterministic: pd.Series, pairs: pd.DataFrame, cannot: pd.DataFrame):
    """Final components with no probabilistic edge joining a cannot-link pair.

    The pair's own edge goes; if the two still meet through other probabilistic edges,
    every probabilistic edge touching either of them goes too. A pair that shared
    identifiers join (one email) cannot be kept apart by dropping model edges: it is
    returned for an alert.
    """
    def final_components(p):
        return components(nodes["node_id"], identifier_edges, pd.concat([direct, p[["node_a", "node_b"]]],
                                                                        ignore_index=True))

    if len(cannot):
        key = pairs["node_a"] + "\x1f" + pairs["node_b"]
        pairs = pairs[~key.isin(cannot["node_a"] + "\x1f" + cannot["node_b"])]
    final = final_components(pairs)
    if not len(cannot):
        return pairs, final, []
    label = final.set_axis(nodes["node_id"])
    together = cannot[label.reindex(cannot["node_a"]).values == label.reindex(cannot["node_b"]).values]
    if len(together):
        touched = pd.concat([together["node_a"], together["node_b"]])
        pairs = pairs[~(pairs["node_a"].isin(touched) | pairs["node_b"].isin(touched))]
        final = final_components(pairs)
    det = deterministic.set_axis(nodes["node_id"])
    stuck = cannot[det.reindex(cannot["node_a"]).values == det.reindex(cannot["node_b"]).values]
    return pairs, final, list(stuck["node_a"] + " / " + stuck["node_b"])


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


def _match_types(nodes: pd.DataFrame, deterministic: pd.Series, final: pd.Series,
                 pairs: pd.DataFrame) -> pd.DataFrame:
    """deterministic / probabilistic / singleton per node, with the probability that joined it."""
    frame = pd.DataFrame({"node_id": nodes["node_id"].values, "det": deterministic.values,
                          "component": final.values})
    det_size = frame.groupby("det")["node_id"].transform("size")
    final_size = frame.groupby("component")["node_id"].transform("size")
    # The anchor of a final cluster is its largest deterministic part; other parts joined probabilistically.
    part_sizes = frame.assign(n=det_size).drop_duplicates("det").sort_values(["component", "n", "det"],
                                                                             ascending=[True, False, True])
    anchor = part_sizes.drop_duplicates("component").set_index("component")["det"]
    is_anchor = frame["det"].values == anchor.reindex(frame["component"]).values
    match = np.where(final_size == 1, "singleton",
                     np.where(is_anchor & (det_size > 1), "deterministic",
                              np.where(is_anchor & (final_size == det_size), "deterministic", "probabilistic")))
    frame["match_type"] = match
    probability = pd.Series(np.nan, index=frame.index)
    if len(pairs):
        det_of = frame.set_index("node_id")["det"]
        touching = pd.concat([
            pd.DataFrame({"det": det_of.reindex(pairs["node_a"]).values, "p": pairs["match_probability"].values}),
            pd.DataFrame({"det": det_of.reindex(pairs["node_b"]).values, "p": pairs["match_probability"].values}),
        ])
        best = touching.groupby("det")["p"].max()
        probability = pd.Series(best.reindex(frame["det"]).values, index=frame.index)
    frame["match_probability"] = probability.where(frame["match_type"] == "probabilistic")
    return frame.drop(columns=["det"])


def _next_number(current: pd.Series, retired: pd.Series) -> int:
    ids = pd.concat([current, retired]).dropna()
    return int(id_number(ids).max()) + 1 if len(ids) else 1


def _alerts(guarded, shared_devices: pd.DataFrame, oversized: pd.Series, config: IdentityConfig,
            as_of: date, match=None) -> pd.DataFrame:
    rows = [pd.DataFrame({"kind": "junk_identifier", "subject": guarded.junk["kind"] + ":" + guarded.junk["value"],
                          "detail": guarded.junk["nodes"].astype(str) + " records carried it; never used to join"}),
            pd.DataFrame({"kind": "identifier_capped",
                          "subject": guarded.capped["kind"] + ":" + guarded.capped["value"],
                          "detail": guarded.capped["people"].astype(str) + " distinct people share it (cap "
                                    + str(config.max_people_per_identifier) + "); not used to join"}),
            pd.DataFrame({"kind": "device_shared", "subject": "device:" + shared_devices["device"],
                          "detail": shared_devices["people"].astype(str) + " distinct people logged in on it (cap "
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
    report.records, report.nodes = (int(n) for n in conn.execute(sa.text(
        "SELECT (SELECT COUNT(*) FROM identity_map), (SELECT COUNT(*) FROM identity_nodes)")).one())
    report.contacts, largest = conn.execute(sa.text(
        "SELECT COUNT(*), COALESCE(MAX(node_count), 0) FROM contacts")).one()
    report.largest_cluster = int(largest)
    report.oversized_clusters = list(conn.execute(sa.text(
        "SELECT contact_id FROM contacts WHERE node_count > :cap ORDER BY contact_id"),
        {"cap": config.max_cluster_size}).scalars())


def _write_records_only(engine: sa.Engine, as_of: date, previous_as_of: date, signature: str) -> ChangeCounts:
    """Keep every node's contact; write the new and gone records; the day's alerts and borderline pairs are
    the last run's (a resolution of the same graph finds the same)."""
    with engine.begin() as conn:
        if previous_as_of != as_of:
            conn.execute(identity_alerts.delete().where(identity_alerts.c.as_of == as_of))
            conn.execute(sa.text("INSERT INTO identity_alerts (kind, subject, detail, as_of) "
                                 "SELECT kind, subject, detail, :d FROM identity_alerts WHERE as_of = :p"),
                         {"d": as_of, "p": previous_as_of})
            conn.execute(identity_borderline.update().values(as_of=as_of))  # the same sample, shown as of today
        return write_by_difference(conn, None, as_of=as_of, mode="incremental", fingerprint=signature)


def _write(engine: sa.Engine, nodes: pd.DataFrame, assignment, alerts: pd.DataFrame, as_of: date,
           borderline: pd.DataFrame, *, mode: str, signature: str, new_match: tuple | None) -> ChangeCounts:
    """Update the identity state in one transaction, by difference; merges and splits are appended to the log."""
    node_rows = nodes[["node_id", "contact_id", "match_type", "match_probability", "first_seen_as_of"]]
    log = pd.concat([assignment.merges.assign(kind="merge", reason="clusters joined by new records"),
                     assignment.splits.assign(kind="split", reason="records no longer linked")], ignore_index=True)
    log["as_of"] = as_of
    with engine.begin() as conn:
        conn.execute(identity_borderline.delete())
        if len(borderline):
            insert_arrow(conn, identity_borderline, pa.Table.from_pandas(borderline, preserve_index=False))
        conn.execute(identity_alerts.delete().where(identity_alerts.c.as_of == as_of))
        if len(log):
            insert_arrow(conn, merge_log, pa.Table.from_pandas(
                log[["kind", "old_contact_id", "new_contact_id", "reason", "as_of"]], preserve_index=False))
        if len(alerts):
            insert_arrow(conn, identity_alerts, pa.Table.from_pandas(
                alerts[["kind", "subject", "detail", "as_of"]], preserve_index=False))
        if new_match is not None:
            store_match(conn, *new_match, as_of)
        return write_by_difference(conn, node_rows, as_of=as_of, mode=mode, fingerprint=signature)
