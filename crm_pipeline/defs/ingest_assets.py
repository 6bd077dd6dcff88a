"""Dagster layer for ingestion: the `files` manifest and the `raw_<entity>` tables."""

from datetime import datetime, timezone

import dagster as dg

from crm_pipeline.contract import ENTITIES
from crm_pipeline.defs.resources import LandingResource, WarehouseResource, transient_warehouse_errors_retried
from crm_pipeline.defs.run_tags import is_full_refresh
from crm_pipeline.landing.ingest import ingest_folder, ingest_paths
from crm_pipeline.landing.report import (
    file_counters, first_file_id_of_run, loaded_row_totals, manifest_counts, outcome_counts, outcomes_markdown,
    raw_row_counts, raw_rows_not_matching_manifest,
)
from crm_pipeline.progress import FileProgressLog

OWNERS = ["team:data-engineering"]
KINDS = {"python", "sql"}

FILES_SPEC = dg.AssetSpec(
    "files", group_name="ingest", owners=OWNERS, kinds=KINDS,
    description="A table of every landed file: content hash, entity, status (loaded/rejected/duplicate), "
                "rows read and loaded, and why a file was not loaded.",
)
RAW_SPECS = [
    dg.AssetSpec(
        f"raw_{name}", group_name="ingest", owners=OWNERS, kinds=KINDS,
        description=f"{entity.description} As landed (text), one row per file row, with _file_id and _row_number.",
    )
    for name, entity in ENTITIES.items()
]


class IngestConfig(dg.Config):
    paths: list[str] = []  # relative to the landing folder; empty: every file in it


@dg.multi_asset(specs=[FILES_SPEC, *RAW_SPECS], name="ingest_files",
                check_specs=[dg.AssetCheckSpec("raw_rows_match_manifest", asset="files", blocking=True,
                                               description="Every loaded file's rows are in its raw table, "
                                                           "and every raw row belongs to a loaded file.")])
def ingest_files(context: dg.AssetExecutionContext, config: IngestConfig, warehouse: WarehouseResource,
                 landing: LandingResource):
    """Load new files exactly once; unchanged files already in the manifest are skipped unread.

    The check and the raw totals look at this run's files only (totals from the manifest); a full refresh
    hashes every file and recounts every raw table."""
    engine, folder, now = warehouse.engine, landing.folder(), datetime.now(timezone.utc)
    full = is_full_refresh(context)
    progress = FileProgressLog(context.log)  # "ingested 12/95 files, ... new rows", throttled
    with transient_warehouse_errors_retried(context):
        outcomes = ingest_paths(engine, folder, config.paths, now=now, on_file=progress, rehash=full) \
            if config.paths else ingest_folder(engine, folder, now=now, on_file=progress, rehash=full)
        with engine.connect() as conn:
            totals = raw_row_counts(conn) if full else loaded_row_totals(conn)
            statuses = manifest_counts(conn)
            checked_from = None if full else first_file_id_of_run(conn, outcomes)
            problems = raw_rows_not_matching_manifest(conn, checked_from)
    this_run = outcome_counts(outcomes)
    yield dg.MaterializeResult(asset_key="files", metadata={
        "dagster/row_count": int(sum(statuses.values())),
        **file_counters(outcomes),
        **{f"files_{k}_this_run": v for k, v in this_run.items()},
        **{f"files_{k}_total": v for k, v in statuses.items()},
        "this_run": dg.MetadataValue.md(outcomes_markdown(outcomes)),
    })
    added: dict[str, int] = {}
    for o in outcomes:
        if o.status == "loaded" and not o.already_known:
            added[o.entity] = added.get(o.entity, 0) + (o.rows_loaded or 0)
    for name in ENTITIES:
        yield dg.MaterializeResult(asset_key=f"raw_{name}", metadata={
            "dagster/row_count": totals[name], "rows_added_this_run": added.get(name, 0),
        })
    yield dg.AssetCheckResult(
        check_name="raw_rows_match_manifest", asset_key="files", passed=not problems,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
                  "checked": "every file" if checked_from is None else f"files from id {checked_from} (this run's)"},
    )


ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.assets(ingest_files),
                                 description="Load newly landed files into the raw tables.")
