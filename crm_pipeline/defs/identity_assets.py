"""Dagster layer for identity resolution: contacts, identity_map and merge_log."""

import json
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from crm_pipeline.defs.ingest_assets import KINDS, OWNERS
from crm_pipeline.defs.resources import CrmSettingsResource, WarehouseResource, transient_warehouse_errors_retried
from crm_pipeline.defs.run_tags import is_full_refresh
from crm_pipeline.defs.stored_charts import stored_chart
from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.evaluate import evaluate_identity
from crm_pipeline.identity.resolve import resolve_identities
from crm_pipeline.markdown import image, to_markdown
from crm_pipeline.progress import log_part

GROUP = "identity"
MATCH_WEIGHTS_VERSION = 1  # of the chart's drawing (identity.model_report.match_weights_png): a new one redraws
SOURCES = ["stg_customers", "stg_subscribers", "stg_orders", "stg_email_events", "stg_web_events"]

SPECS = [
    dg.AssetSpec("contacts", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=SOURCES,
                 description="A table of people: one row per contact id, stable across runs (the oldest id "
                             "survives a merge), with node and record counts and brands."),
    dg.AssetSpec("identity_map", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=SOURCES,
                 description="A table mapping every person-linked source record (brand, entity, source_key) to "
                             "its contact id and how it was matched (deterministic / probabilistic / singleton)."),
    dg.AssetSpec("merge_log", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=SOURCES,
                 description="A log of contact ids merged into an older one, or split off, with reason and as-of day."),
]


def _find_pairs(warehouse: WarehouseResource):
    """Splink's probabilistic pass, imported only when it runs (it is the heaviest import of the stage),
    its own DuckDB connection bounded by the warehouse's memory and threads, spilling to a folder of its own."""
    from functools import partial

    from crm_pipeline.identity.probabilistic import match_people

    bounds = warehouse.side_duckdb_settings("probabilistic")
    return partial(match_people, duckdb_settings=bounds) if any(bounds.values()) else match_people


def _change_metadata(report) -> dict:
    """What this run did: its mode and, when it resolved, the rows and contacts it changed."""
    c = report.changes
    # The part of the graph clustered again (scope.py): all of it on a full run, the touched contacts' nodes
    # and the new nodes on an incremental one, none when the graph is as last clustered.
    recomputed = {"nodes_recomputed": report.nodes_recomputed, "components_recomputed": report.components_recomputed,
                  "nodes_total": report.nodes}
    if report.mode == "unchanged":
        return {"mode": "unchanged", "contacts_touched": 0, **recomputed}
    return {"mode": report.mode, **({"full_because": report.full_reason} if report.full_reason else {}),
            **recomputed, "graph_reclustered": not report.graph_reused, "identity_run": c.run_number,
            "contacts_touched": c.contacts_touched,
            "contacts_created": c.contacts_created, "contacts_changed": c.contacts_changed,
            "contacts_retired": c.contacts_retired, "records_added": c.records_added,
            "records_removed": c.records_removed, "records_reassigned": c.records_reassigned,
            "nodes_written": c.nodes_written,
            # Rows only added since the last run: only the new files read, edges compared among the nodes they touch.
            "new_files_only": report.new_files_only, "edges_scoped": report.edges_scoped,
            # Rounds of connected components run in the warehouse (none when the graph was as last clustered).
            "component_rounds": dg.MetadataValue.json(dict(report.rounds))}


def _model_metadata(report, charts: Path) -> dict:
    """The trained model, its threshold and the borderline pairs, for the contacts page. The match-weights chart
    is kept in `charts` (one folder for every day: the model, not the day, fixes it) and drawn again only for
    another model or drawing: a run that reuses the model imports no matplotlib."""
    if report.mode == "unchanged":
        return {"probabilistic_model": "not run: no staged record, decision or setting changed since the last run"}
    match = report.match
    blocking = _blocking_metadata(match)
    if match is None or match.model is None:
        return {"probabilistic_model": "not trained this run (too few named records, no blocking rule within the "
                                       "comparison budget, or disabled)", **blocking}
    from crm_pipeline.identity.model_report import match_weights_png, parameters, prior_weight

    return {**blocking,
        "probabilistic_model": "reused: the person records and their clusters are as the last pass saw them"
        if report.match_reused else "trained this run",
        "threshold": float(match.threshold), "candidate_pairs": match.candidate_pairs,
        "prior_weight_bits": prior_weight(match.model),
        "m_and_u": dg.MetadataValue.md(to_markdown(parameters(match.model))),
        "match_weights_chart": dg.MetadataValue.md(image(stored_chart(
            charts, "match_weights.png",
            f"v{MATCH_WEIGHTS_VERSION} {json.dumps(match.model, sort_keys=True, default=str)}",
            lambda: match_weights_png(match.model)), "match weights")),
        # node ids hold "|": escaped so the Markdown table keeps its columns
        "borderline_pairs": dg.MetadataValue.md(to_markdown(match.borderline.replace(r"\|", r"\\|", regex=True))),
        "reviewed_must_link": report.must_links, "reviewed_cannot_link": report.cannot_links,
    }


def _blocking_metadata(match) -> dict:
    """Each blocking rule's comparisons against the budget, and which were tightened or skipped (also alerts)."""
    rules = getattr(match, "blocking", None)
    if rules is None or not len(rules):
        return {}
    cut = rules[rules["status"] != "kept"]
    return {"blocking_rules": dg.MetadataValue.md(to_markdown(rules)),
            "blocking_rules_tightened": int((rules["status"] == "tightened").sum()),
            "blocking_rules_skipped": int((rules["status"] == "skipped").sum()),
            "blocking_keys_oversized": len(match.oversized_keys),
            **({"blocking_budget_alert": dg.MetadataValue.text("; ".join(cut["rule"] + " " + cut["status"] + ": "
                                                                         + cut["reason"]))} if len(cut) else {})}


@dg.multi_asset(specs=SPECS, name="resolve_identity", check_specs=[
    dg.AssetCheckSpec("cluster_size_within_cap", asset="contacts", blocking=True,
                      description="No contact gathers more source nodes than identity.max_cluster_size: "
                                  "a runaway cluster means an identifier is fusing strangers."),
])
def resolve_identity(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                     crm_settings: CrmSettingsResource):
    """Join records into people: shared identifiers, guarded; Splink for the rest; stable ids."""
    settings = crm_settings.load()
    config = load_identity_config(settings.identity_config or None)
    as_of = crm_settings.as_of_date()
    with transient_warehouse_errors_retried(context):
        report = resolve_identities(warehouse.engine, as_of=as_of, config=config,
                                    find_pairs=_find_pairs(warehouse) if config.probabilistic_enabled else None,
                                    full_refresh=is_full_refresh(context),
                                    on_step=lambda name, seconds: log_part(context.log, "identity", name, seconds))
    quality, map_quality = {}, {}
    if settings.truth_path and report.mode != "unchanged":
        with warehouse.engine.connect() as conn:
            scores = evaluate_identity(conn, settings.truth_path)
        quality = {"quality_vs_truth": dg.MetadataValue.md(to_markdown(scores)),
                   "f1_profiles": float(scores["f1"].iloc[0]), "precision_profiles": float(scores["precision"].iloc[0])}
        map_quality = {"precision_profiles": float(scores["precision"].iloc[0]),
                       "recall_profiles": float(scores["recall"].iloc[0]), "f1_profiles": float(scores["f1"].iloc[0]),
                       "quality_vs_truth": dg.MetadataValue.md(to_markdown(scores))}
    with warehouse.engine.connect() as conn:
        merges_total = conn.execute(sa.text("SELECT COUNT(*) FROM merge_log")).scalar_one()
        match_types = dict(conn.execute(sa.text(
            "SELECT match_type, COUNT(*) FROM identity_map GROUP BY match_type ORDER BY match_type")).all())
    yield dg.MaterializeResult(asset_key="contacts", metadata={
        "dagster/row_count": report.contacts, "records_in": report.records, "nodes": report.nodes,
        "largest_cluster": report.largest_cluster, "probabilistic_pairs": report.probabilistic_pairs,
        "share_resolved_probabilistically": round(report.probabilistic_share, 4),
        "junk_identifiers_ignored": report.junk_values, "identifiers_capped": report.capped_values,
        "devices_shared": report.shared_devices,
        "seconds": dg.MetadataValue.json({k: round(v, 2) for k, v in report.seconds.items()}), **quality,
        **_change_metadata(report),
        **_model_metadata(report, settings.home_dir / "charts" / "identity"),
    })
    yield dg.MaterializeResult(asset_key="identity_map", metadata={
        "dagster/row_count": report.records, "mode": report.mode, "match_types": dg.MetadataValue.json(match_types),
        **{f"records_{kind}": int(n) for kind, n in match_types.items()}, **map_quality})
    yield dg.MaterializeResult(asset_key="merge_log", metadata={
        "merges_this_run": report.merges, "splits_this_run": report.splits, "dagster/row_count": int(merges_total)})
    yield dg.AssetCheckResult(
        check_name="cluster_size_within_cap", asset_key="contacts", passed=not report.oversized_clusters,
        description=(f"{len(report.oversized_clusters)} contact(s) over {config.max_cluster_size} nodes: "
                     + ", ".join(report.oversized_clusters[:10])) if report.oversized_clusters else None,
        metadata={"largest_cluster": report.largest_cluster, "cap": config.max_cluster_size},
    )
