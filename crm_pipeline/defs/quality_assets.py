"""Dagster layer for data quality: staging tables, quarantine, dedup log, GX results and the report."""

from datetime import datetime, timezone

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES
from crm_pipeline.defs.ingest_assets import KINDS, OWNERS
from crm_pipeline.defs.resources import CrmSettingsResource, WarehouseResource, transient_warehouse_errors_retried
from crm_pipeline.defs.run_tags import is_full_refresh
from crm_pipeline.markdown import to_markdown
from crm_pipeline.progress import FileProgressLog
from crm_pipeline.quality.accounting import file_balances
from crm_pipeline.quality.report import countries_before_after, quality_by_brand_entity
from crm_pipeline.quality.summary import summarize_markdown
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.quality_schema import dq_results

GROUP = "quality"

STG_SPECS = [
    dg.AssetSpec(f"stg_{name}", group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=[f"raw_{name}"],
                 description=f"{entity.description} Typed, standardized (ISO countries, lowercased emails, E.164 "
                             "phones, UTC timestamps), GX-validated, one row per natural key; soft issues in _flags.")
    for name, entity in ENTITIES.items()
]
SIDE_SPECS = [
    dg.AssetSpec("quarantine", group_name=GROUP, owners=OWNERS, kinds=KINDS,
                 description="A table of rows that broke a hard rule: file, row, column, rule and raw value; "
                             "resolved when a later file fixes the key."),
    dg.AssetSpec("dedup_log", group_name=GROUP, owners=OWNERS, kinds=KINDS,
                 description="A table of rows dropped as duplicates, each pointing at the row that was kept."),
    dg.AssetSpec("dq_results", group_name=GROUP, owners=OWNERS, kinds={"python", "great_expectations"},
                 description="A table of Great Expectations results per landed file and expectation."),
]
CHECKS = [
    spec
    for name in ENTITIES
    for spec in (
        dg.AssetCheckSpec("accounting_balanced", asset=f"stg_{name}", blocking=True,
                          description="Per file: rows read = staged + quarantined + deduplicated, and no file held "
                                      "for too many bad rows."),
        dg.AssetCheckSpec("expectations_pass", asset=f"stg_{name}",
                          description=f"The Great Expectations suite `{name}` on every landed file."),
    )
]


@dg.multi_asset(specs=[*STG_SPECS, *SIDE_SPECS], check_specs=CHECKS, name="stage_entities")
def stage_entities(context: dg.AssetExecutionContext, warehouse: WarehouseResource, crm_settings: CrmSettingsResource):
    """Type new files once, then update staging, quarantine and the dedup log in SQL for the keys they
    touch (every key on a full-refresh run), then validate the new files."""
    # Great Expectations takes seconds to import: only the runs that stage pay for it, not every code load.
    from crm_pipeline.quality.stage import run_quality_stage

    settings = crm_settings.load()
    engine = warehouse.engine
    full_refresh = is_full_refresh(context)  # re-resolve every key, not only the ones new files touch
    with transient_warehouse_errors_retried(context):
        report = run_quality_stage(engine, hold_share=settings.quarantine_hold_share,
                                   docs_dir=settings.data_docs_dir, now=datetime.now(timezone.utc),
                                   full_refresh=full_refresh,
                                   on_typed=FileProgressLog(context.log, verb="typed").report,
                                   on_published=FileProgressLog(context.log, verb="published").report,
                                   on_validated=FileProgressLog(context.log, verb="validated").report)
    published = report.published
    context.log.info(f"typed {len(report.typed)} new file(s); published ({published.mode}); "
                     f"data docs: {report.docs_index}")
    with engine.connect() as conn:
        counts = {name: conn.execute(sa.text(f"SELECT COUNT(*) FROM stg_{name}")).scalar_one() for name in ENTITIES}
        open_q = dict(conn.execute(sa.text(
            "SELECT entity, COUNT(DISTINCT CAST(file_id AS VARCHAR) || ':' || CAST(row_number AS VARCHAR)) "
            "FROM quarantine WHERE status = 'open' GROUP BY entity")).all())
        open_rules = pd.read_sql(sa.text(
            "SELECT entity, rule, COUNT(*) AS rows_open FROM quarantine WHERE status = 'open' "
            "GROUP BY entity, rule ORDER BY rows_open DESC, entity, rule"), conn)
        quarantine_total = conn.execute(sa.text("SELECT COUNT(*) FROM quarantine")).scalar_one()
        # Files this run rewrote are recounted from the tables; the others keep their last counts.
        balances = {name: file_balances(conn, name, published.entities[name].files) for name in ENTITIES}
        results = read_frame(conn, sa.select(dq_results))
        dedup_total = conn.execute(sa.text("SELECT COUNT(*) FROM dedup_log")).scalar_one()
    docs = {"data_docs": dg.MetadataValue.path(str(report.docs_index))} if report.docs_index else {}
    for name in ENTITIES:
        yield dg.MaterializeResult(asset_key=f"stg_{name}", metadata={
            "dagster/row_count": int(counts[name]), "quarantined_rows_open": int(open_q.get(name, 0)),
            "files_typed_this_run": sum(1 for t in report.typed if t.entity == name),
            "publish_mode": published.mode, "keys_re_resolved": published.entities[name].keys,
            "rows_re_resolved": published.entities[name].rows,
            "staged_rows_rewritten": published.entities[name].staged_rows_written,
        })
    yield dg.MaterializeResult(asset_key="quarantine", metadata={
        "dagster/row_count": int(quarantine_total), "open_rows": int(sum(open_q.values())),
        "open_by_rule": dg.MetadataValue.md(to_markdown(open_rules.head(50))),
    })
    yield dg.MaterializeResult(asset_key="dedup_log", metadata={"dagster/row_count": int(dedup_total)})
    yield dg.MaterializeResult(asset_key="dq_results", metadata={"dagster/row_count": len(results), **docs})
    for name in ENTITIES:
        yield _accounting_check(name, balances[name])
        yield _expectations_check(name, results, docs)


def _accounting_check(entity: str, balances) -> dg.AssetCheckResult:
    problems = [p for p in (b.problem() for b in balances) if p]
    table = pd.DataFrame([{"file": b.file, "read": b.rows_read, "staged": b.staged, "quarantined": b.quarantined,
                           "deduplicated": b.deduplicated, "held": b.held, "superseded": b.superseded}
                          for b in balances])
    return dg.AssetCheckResult(
        check_name="accounting_balanced", asset_key=f"stg_{entity}", passed=not problems,
        description="; ".join(problems[:5]) or None,
        metadata={"files": len(balances), "files_failing": len(problems),
                  "per_file": dg.MetadataValue.md(to_markdown(table.head(100)))},
    )


def _expectations_check(entity: str, results: pd.DataFrame, docs: dict) -> dg.AssetCheckResult:
    mine = results[results["suite"] == entity]
    failed = mine[~mine["success"].astype(bool)]
    return dg.AssetCheckResult(
        check_name="expectations_pass", asset_key=f"stg_{entity}", passed=failed.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"expectations_evaluated": len(mine), "expectations_failed": len(failed),
                  "summary": dg.MetadataValue.md(summarize_markdown(mine) if not mine.empty else "_no batches yet_"),
                  **docs},
    )


# Not downstream of stg_*: a blocking accounting check must not hide the report that explains it.
@dg.asset(group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=["quarantine", "dedup_log", "dq_results"],
          description="The data-quality report: per brand and entity, rows, pass rate, top failing rules, and "
                      "countries before and after standardization.")
def dq_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.engine.connect() as conn:
        quality = quality_by_brand_entity(conn)
        countries = countries_before_after(conn)
    return dg.MaterializeResult(metadata={
        "rows_read": int(quality["rows_read"].sum()), "rows_quarantined": int(quality["quarantined"].sum()),
        "by_brand_and_entity": dg.MetadataValue.md(to_markdown(quality)),
        "countries": dg.MetadataValue.md(to_markdown(countries.head(60))),
        "overall_pass_rate": float(1 - quality["quarantined"].sum() / max(int(quality["rows_read"].sum()), 1)),
    })
