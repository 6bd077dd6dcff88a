"""`erase`: remove one person from every table and export file, and keep them out of later loads.

Everything in the warehouse happens in one transaction: the search (`plan.find_person`), the
deletes (one rule per table kind, `rules.py`), the per-file bookkeeping that keeps every file
adding up, the scrub of Great Expectations samples, the hashed suppression list and the request
record. Export files are rewritten beside the originals inside that transaction and swapped in
after it commits. The clear identifier is never stored.

Bookkeeping, so the accounting still balances after an erasure:
- `files.rows_loaded` (rows of the file in raw) is lowered by the erased raw rows, and an
  `erasure_row_counts` row (cause `erased`) says how many, so `rows_read = rows_loaded + kept out`;
- `typed_files.rows_typed` and `file_quality` (read, staged, quarantined, deduplicated) are lowered
  by the erased rows' outcomes, and `audience_sizes` by the person's memberships.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.erasure.exports import StagedExport, stage_export_rewrites
from crm_pipeline.erasure.identifiers import sha256_text
from crm_pipeline.erasure.plan import TARGETS_TABLE, ErasureRequest, Person, find_person, in_list
from crm_pipeline.erasure.rules import TableRule, table_rules
from crm_pipeline.erasure.suppression import add_suppressions
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.erasure_schema import create_erasure_tables, erasure_requests, erasure_row_counts

RESULT_COLUMNS = ["table", "rows_removed"]
# Tables of rows per file by prefix: raw rows, and typed rows (staged in stg_, or not in unstaged_).
_LAYERS = {"raw": "raw", "typed": "typed", "stg": "typed", "unstaged": "typed"}


def erase(engine: sa.Engine, *, email: str | None = None, contact_id: str | None = None, phone: str | None = None,
          requested_at: dt.datetime, exports_dir: str | Path | None = None, max_contacts: int = 3) -> pd.DataFrame:
    """Erase the person with this email, contact id or phone (exactly one); returns (table, rows_removed).

    Tables (and `export:<file>` entries) where nothing was removed are left out. Raises
    `ErasureRefused` (nothing changed) when the identifier resolves to more than `max_contacts`
    contacts or a table holds personal columns without an erasure rule.
    """
    request = ErasureRequest.of(email=email, contact_id=contact_id, phone=phone)
    create_erasure_tables(engine)
    staged: list[StagedExport] = []
    try:
        with engine.begin() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t != TARGETS_TABLE]
            rules = table_rules(conn, tables)  # before any change: a table without a rule refuses the request
            person = find_person(conn, request, set(tables), max_contacts=max_contacts)
            request_id = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(erasure_requests.c.request_id), 0)))
                             .scalar_one()) + 1
            removed = _remove(conn, person, rules, request_id)
            staged = stage_export_rewrites(Path(exports_dir) if exports_dir else None, person)
            removed += [(s.label(Path(exports_dir)), s.rows_removed) for s in staged]
            add_suppressions(conn, person.values, request_id=request_id, added_at=requested_at)
            _record_request(conn, request, request_id, requested_at, person, removed)
            conn.execute(sa.text(f"DROP TABLE {TARGETS_TABLE}"))
    except BaseException:
        for item in staged:
            item.discard()
        raise
    for item in staged:
        item.commit()
    frame = pd.DataFrame(removed, columns=RESULT_COLUMNS)
    return frame[frame["rows_removed"] > 0].sort_values("table").reset_index(drop=True)


def _remove(conn: sa.Connection, person: Person, rules: list[TableRule], request_id: int) -> list[tuple[str, int]]:
    params = {"contacts": person.contact_ids, "subjects": _alert_subjects(person), "nodes": person.node_ids,
              "email_hashes": {sha256_text(e) for e in person.values.get("email", set())}}
    by_name = {r.table: r for r in rules}
    per_file = _per_file_counts(conn, rules, params)
    if "audience_sizes" in by_name and "audience_members" in by_name:
        _lower_audience_sizes(conn, person)
    removed = []
    if "dq_results" in by_name:  # rows stay; the person's sample values and sample rows go
        removed.append(("dq_results:samples", _scrub_dq_samples(conn, person)))
    for rule in rules:
        if rule.where is None:
            continue
        table = _quote(conn, rule.table)
        count = int(conn.execute(_statement(f"SELECT COUNT(*) FROM {table} WHERE {rule.where}", params,
                                            rule.entity)).scalar_one())
        if count:
            conn.execute(_statement(f"DELETE FROM {table} WHERE {rule.where}", params, rule.entity))
        removed.append((rule.table, count))
    _lower_file_counts(conn, per_file, set(by_name), request_id)
    return removed


def _alert_subjects(person: Person) -> set[str]:
    """identity_alerts subjects that name the person: a contact id, or an email key / phone they own."""
    return (set(person.contact_ids) | {f"email:{v}" for v in person.values.get("email_key", set())}
            | {f"phone:{v}" for v in person.values.get("phone", set())})


def _statement(sql: str, params: dict, entity: str | None = None) -> sa.TextClause:
    """`sql` with only the parameters it names bound (lists expanded, so `IN :contacts` works everywhere)."""
    binds = [in_list(name, values) for name, values in params.items() if f":{name}" in sql]
    if ":entity" in sql:
        binds.append(sa.bindparam("entity", value=entity))
    return sa.text(sql).bindparams(*binds)


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _per_file_counts(conn: sa.Connection, rules: list[TableRule], params: dict) -> dict[str, pd.DataFrame]:
    """Before deleting: per file, the person's raw rows, typed rows (staged or not) and row outcomes."""
    frames: dict[str, list[pd.DataFrame]] = {"raw": [], "typed": [], "outcomes": []}
    for rule in rules:
        layer = _LAYERS.get(rule.table.split("_", 1)[0])
        if rule.rule == "lineage" and rule.entity and layer:
            sql = (f"SELECT _file_id AS file_id, COUNT(*) AS n FROM {_quote(conn, rule.table)} "
                   f"WHERE {rule.where} GROUP BY _file_id")
            frames[layer].append(read_frame(conn, _statement(sql, params, rule.entity)).assign(entity=rule.entity))
        elif rule.table == "row_outcomes":
            sql = (f"SELECT _file_id AS file_id, outcome, COUNT(*) AS n FROM row_outcomes WHERE {rule.where} "
                   "GROUP BY _file_id, outcome")
            frames["outcomes"].append(read_frame(conn, _statement(sql, params)))
    return {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame(columns=["file_id", "n", "entity", "outcome"])
            for k, v in frames.items()}


def _lower_file_counts(conn: sa.Connection, per_file: dict[str, pd.DataFrame], tables: set[str],
                       request_id: int) -> None:
    """Keep every file adding up: rows_read = rows_loaded + rows kept out by erasure."""
    raw = per_file["raw"]
    if len(raw):
        rows = raw.astype({"file_id": int, "n": int}).to_dict("records")
        if "files" in tables:
            conn.execute(sa.text("UPDATE files SET rows_loaded = rows_loaded - :n WHERE file_id = :file_id"), rows)
        conn.execute(erasure_row_counts.insert(), [
            {"file_id": r["file_id"], "entity": r["entity"], "cause": "erased", "request_id": request_id,
             "row_count": r["n"]} for r in rows])
    typed = per_file["typed"]
    if len(typed) and "typed_files" in tables:
        conn.execute(sa.text("UPDATE typed_files SET rows_typed = rows_typed - :n WHERE file_id = :file_id"),
                     typed.astype({"file_id": int, "n": int})[["file_id", "n"]].to_dict("records"))
    if "file_quality" in tables and len(raw):
        outcomes = per_file["outcomes"].pivot_table(index="file_id", columns="outcome", values="n", aggfunc="sum")
        quality = raw.groupby("file_id")["n"].sum().rename("read").to_frame().join(outcomes).fillna(0)
        for column in ("staged", "quarantined", "deduplicated"):
            quality[column] = quality[column] if column in quality else 0
        changes = quality.reset_index().astype(int)[["file_id", "read", "staged", "quarantined", "deduplicated"]]
        conn.execute(sa.text(
            "UPDATE file_quality SET rows_read = rows_read - :read, staged = staged - :staged, "
            "quarantined = quarantined - :quarantined, deduplicated = deduplicated - :deduplicated "
            "WHERE file_id = :file_id"), changes.to_dict("records"))


def _lower_audience_sizes(conn: sa.Connection, person: Person) -> None:
    """An audience's size of a day loses the person's membership of that day."""
    if not person.contact_ids:
        return
    mine = ("FROM audience_members m WHERE m.as_of = audience_sizes.as_of AND m.audience = audience_sizes.audience "
            "AND m.contact_id IN :contacts")
    conn.execute(_statement(f"UPDATE audience_sizes SET size = size - (SELECT COUNT(*) {mine}) "
                            f"WHERE EXISTS (SELECT 1 {mine})", {"contacts": person.contact_ids}))


def _scrub_dq_samples(conn: sa.Connection, person: Person) -> int:
    """Drop the person's values from GX `sample_values` and their rows from `sample_rows`; returns rows changed.

    Only results of the files that held the person's rows can sample them, a handful of rows.
    """
    results = read_frame(conn, sa.text(
        "SELECT file_id, suite, expectation, sample_values, sample_rows FROM dq_results "
        f"WHERE file_id IN (SELECT DISTINCT file_id FROM {TARGETS_TABLE}) "
        "AND (sample_values IS NOT NULL OR sample_rows IS NOT NULL)"))
    if results.empty:
        return 0
    clear = {v.strip().lower() for v in person.clear_values()}
    mine = pd.MultiIndex.from_frame(person.targets[["file_id", "row_number"]])
    values = results["sample_values"].map(_json_list).explode().dropna()
    value_hit = values.astype("string").str.strip().str.lower().isin(clear).fillna(False).to_numpy(bool)
    rows = results["sample_rows"].map(_json_list).explode().dropna()
    lineage = pd.DataFrame([r if isinstance(r, dict) else {} for r in rows], index=rows.index)
    row_hit = pd.Series(False, index=rows.index).to_numpy(bool)
    if {"_file_id", "_row_number"} <= set(lineage.columns):
        pairs = lineage[["_file_id", "_row_number"]].fillna(-1).astype("int64")
        row_hit = pd.MultiIndex.from_frame(pairs).isin(mine)
    touched = values.index[value_hit].union(rows.index[row_hit]).unique()
    if touched.empty:
        return 0
    changed = results.loc[touched].assign(
        new_values=_regroup(values[~value_hit], touched).where(results.loc[touched, "sample_values"].notna()),
        new_rows=_regroup(rows[~row_hit], touched).where(results.loc[touched, "sample_rows"].notna()))
    conn.execute(sa.text(
        "UPDATE dq_results SET sample_values = :new_values, sample_rows = :new_rows WHERE file_id = :file_id "
        "AND suite = :suite AND expectation = :expectation "
        "AND sample_values IS NOT DISTINCT FROM :sample_values AND sample_rows IS NOT DISTINCT FROM :sample_rows"),
        changed.astype(object).where(changed.notna(), None).to_dict("records"))
    return len(changed)


def _json_list(text) -> list:
    if not isinstance(text, str) or not text:
        return []
    parsed = json.loads(text)
    return parsed if isinstance(parsed, list) else []


def _regroup(items: pd.Series, index: pd.Index) -> pd.Series:
    """Exploded JSON items back to one JSON list per result row of `index` (an emptied list is `[]`)."""
    lists = items.groupby(level=0).agg(list) if len(items) else pd.Series(dtype=object)
    return lists.reindex(index).map(lambda v: json.dumps(v if isinstance(v, list) else [], ensure_ascii=False))


def _record_request(conn: sa.Connection, request: ErasureRequest, request_id: int, requested_at: dt.datetime,
                    person: Person, removed: list[tuple[str, int]]) -> None:
    counts = {table: n for table, n in removed if n}
    numbers = pd.Series(sorted(person.contact_ids), dtype="string").str.extract(r"^C(\d+)$")[0].dropna()
    conn.execute(erasure_requests.insert().values(
        request_id=request_id, requested_at=requested_at, identifier_kind=request.kind,
        identifier_sha256=request.digest, contact_count=len(person.contact_ids), rows_removed=sum(counts.values()),
        removed_counts=json.dumps(counts, sort_keys=True),
        retired_contact_number=int(numbers.astype("int64").max()) if len(numbers) else None))
