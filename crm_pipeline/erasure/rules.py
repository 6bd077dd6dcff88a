"""Which rows of a table belong to the person: one explicit rule per kind of table, found from its columns.

Tables are discovered with `sa.inspect(...).get_table_names()`, so a table added later is not
forgotten; each gets the first rule that fits:

- keep: `erasure_*` (hashes and counts only).
- counts: `files`, `typed_files`, `file_quality`: no row removed; per-file counts are lowered by
  the erased rows (see `erase.py`).
- aggregate: `audience_sizes` (lowered by the person's memberships), `dq_results` (the person's
  Great Expectations sample values and sample rows scrubbed).
- contact ids: `merge_log` (old or new id), `identity_alerts` (subject is one of the contacts, or
  an email key / phone of the person), `suppression_list` (contact id or email SHA-256).
- lineage: `raw_/stg_/unstaged_<entity>` by (`_file_id`, `_row_number`) (`typed_<entity>` is a view of the
  last two); tables with `entity`,
  `_file_id`, `_row_number` (`row_outcomes`, `rule_hits`, `row_violations`, `identity_map`); tables
  with `entity`, `file_id`, `row_number` (`quarantine`; `dedup_log` also by its kept row). The rows
  are those `plan.find_person` found; a `contact_id` column matches too.
- nodes: tables naming a pair of identity nodes (`node_a`, `node_b`: `identity_pairs`,
  `identity_borderline`, `identity_decisions`) lose every pair one of the person's nodes is in.
- derived: `identity_match` (the stored Splink model and its borderline sample name nodes) is
  cleared whole; the next identity run trains again.
- contact: any other table with `contact_id` (contacts, identity_nodes, golden_records, profiles,
  timeline, features, predictions, audience_members, audience_history ...).
- no person data: a table with none of `PERSONAL_COLUMNS` (model_runs ...).
Any other table holding a personal column stops the erasure, naming it: a new table that holds
people must get a rule here before erasure can vouch for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES
from crm_pipeline.erasure.plan import TARGETS_TABLE, ErasureRefused
from crm_pipeline.warehouse.schema import column_names

KEEP = {"erasure_requests", "erasure_suppressions", "erasure_row_counts", TARGETS_TABLE}
COUNTS = {"files", "typed_files", "file_quality"}
AGGREGATES = {"audience_sizes", "dq_results"}
PERSONAL_COLUMNS = {"email", "phone", "first_name", "last_name", "address_line1", "address_line2", "birth_date",
                    "postal_code", "email_sha256", "phone_sha256", "customer_id", "subscriber_id", "cookie_id",
                    "contact_id", "raw_value", "source_key", "subject", "value", "sample_values", "node_id",
                    "node_a", "node_b", "borderline"}
_LAYERED = re.compile(r"(raw|typed|stg|unstaged)_(\w+)")  # typed_: a table before it was a view


@dataclass(frozen=True)
class TableRule:
    table: str
    rule: str  # keep / counts / aggregate / contact_ids / nodes / derived / lineage / contact / no_person_data
    where: str | None = None  # SQL over the table's own name; binds :contacts, :subjects, :email_hashes, :entity
    entity: str | None = None  # for raw_/stg_/unstaged_ tables


def table_rules(conn: sa.Connection, tables: list[str]) -> list[TableRule]:
    quote = conn.dialect.identifier_preparer.quote
    return [rule_for(name, set(column_names(conn, quote(name))), quote(name)) for name in sorted(tables)]


def rule_for(name: str, columns: set[str], quoted: str) -> TableRule:
    """The rule for one table (see the module docstring); `quoted` is its name as SQL writes it."""
    t = quoted
    if name in KEEP:
        return TableRule(name, "keep")
    if name in COUNTS:
        return TableRule(name, "counts")
    if name in AGGREGATES:
        return TableRule(name, "aggregate")
    if name == "merge_log":
        return TableRule(name, "contact_ids", f"{t}.old_contact_id IN :contacts OR {t}.new_contact_id IN :contacts")
    if name == "identity_alerts":
        return TableRule(name, "contact_ids", f"{t}.subject IN :subjects")
    if name == "suppression_list":
        return TableRule(name, "contact_ids", f"{t}.contact_id IN :contacts OR {t}.email_sha256 IN :email_hashes")
    if name == "identity_match":
        return TableRule(name, "derived", "1 = 1")
    if {"node_a", "node_b"} <= columns:
        return TableRule(name, "nodes", f"{t}.node_a IN :nodes OR {t}.node_b IN :nodes")
    by_contact = [f"{t}.contact_id IN :contacts"] if "contact_id" in columns else []
    layered = _LAYERED.fullmatch(name)
    if layered and layered.group(2) in ENTITIES and {"_file_id", "_row_number"} <= columns:
        where = _lineage(t, "_file_id", "_row_number", entity_sql=":entity")
        return TableRule(name, "lineage", " OR ".join([where, *by_contact]), entity=layered.group(2))
    if {"entity", "_file_id", "_row_number"} <= columns:
        where = _lineage(t, "_file_id", "_row_number", entity_sql=f"{t}.entity")
        return TableRule(name, "lineage", " OR ".join([where, *by_contact]))
    if {"entity", "file_id", "row_number"} <= columns:
        parts = [_lineage(t, "file_id", "row_number", entity_sql=f"{t}.entity")]
        if {"kept_file_id", "kept_row_number"} <= columns:
            parts.append(_lineage(t, "kept_file_id", "kept_row_number", entity_sql=f"{t}.entity"))
        return TableRule(name, "lineage", " OR ".join([*parts, *by_contact]))
    if by_contact:
        return TableRule(name, "contact", by_contact[0])
    if not columns & PERSONAL_COLUMNS:
        return TableRule(name, "no_person_data")
    raise ErasureRefused(f"table {name} holds personal columns ({', '.join(sorted(columns & PERSONAL_COLUMNS))}) "
                         "but has no erasure rule: add one in crm_pipeline/erasure/rules.py")


def _lineage(t: str, file_column: str, row_column: str, *, entity_sql: str) -> str:
    return (f"EXISTS (SELECT 1 FROM {TARGETS_TABLE} x WHERE x.entity = {entity_sql} "
            f"AND x.file_id = {t}.{file_column} AND x.row_number = {t}.{row_column})")
