"""Plant known defects (and benign re-sent duplicates) into files, remembering exactly where.

About 1% of rows overall break exactly one hard rule of crm_pipeline.contract.violations (the
rest of such a row stays valid), never more than 4% of one file, and only in CSV and JSONL
files (Parquet and gzip exports come from systems that validate). Kinds are spread round-robin
per file so each kind shows up as soon as there are a few thousand people.
Also plants exact duplicate order rows (same content, same file): not bad, deduplicated later.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.contract import violations as v
from crm_pipeline.synth.columns import STR, const, join
from crm_pipeline.synth.landed import LandedFile
from crm_pipeline.synth.timestamps import DAY, format_ts

MAX_FILE_SHARE = 0.04
EXACT_DUPLICATE_SHARE = 0.003
KINDS = {
    "orders": (v.MISSING_REQUIRED_FIELD, v.UNPARSEABLE_DATE, v.FUTURE_TIMESTAMP, v.DUPLICATED_ORDER_ID),
    "order_items": (v.MISSING_REQUIRED_FIELD, v.NEGATIVE_PRICE, v.ORPHAN_ORDER_ITEM),
    "customers": (v.MISSING_REQUIRED_FIELD, v.MALFORMED_EMAIL, v.UNPARSEABLE_DATE, v.FUTURE_TIMESTAMP),
    "subscribers": (v.MISSING_REQUIRED_FIELD, v.MALFORMED_EMAIL, v.UNPARSEABLE_DATE),
    "email_events": (v.MISSING_REQUIRED_FIELD, v.UNPARSEABLE_DATE, v.FUTURE_TIMESTAMP),
    "web_events": (v.MISSING_REQUIRED_FIELD, v.UNPARSEABLE_DATE, v.FUTURE_TIMESTAMP),
    "products": (v.NEGATIVE_PRICE,),
}
# Which field(s) each kind empties or garbles, per entity (one choice per bad row).
MISSING_FIELDS = {
    "orders": (("ordered_at",), ("total",), ("customer_id", "email")),
    "order_items": (("sku",), ("quantity",), ("unit_price",)),
    "customers": (("customer_id",),),
    "subscribers": (("email",), ("subscriber_id",)),
    "email_events": (("event_type",), ("occurred_at",), ("subscriber_id", "email")),
    "web_events": (("cookie_id",), ("event_type",), ("occurred_at",)),
}
DATE_FIELDS = {"orders": ("ordered_at",), "customers": ("created_at", "birth_date"),
               "subscribers": ("subscribed_at",), "email_events": ("occurred_at",),
               "web_events": ("occurred_at",)}
FUTURE_FIELDS = {"orders": "ordered_at", "customers": "created_at", "email_events": "occurred_at",
                 "web_events": "occurred_at"}
UNPARSEABLE = ("31/31/2023", "not a date", "2023-13-45T25:61:00Z")


def eligible(f: LandedFile) -> bool:
    return f.format in ("csv", "jsonl") and f.entity in KINDS


class _Edits:
    """Cell replacements collected per column, applied in one pass each."""

    def __init__(self) -> None:
        self.by_col: dict[str, list[tuple[np.ndarray, pa.Array]]] = defaultdict(list)

    def set(self, col: str, rows: np.ndarray, values: pa.Array | str | None) -> None:
        if rows.size == 0:
            return
        if values is None:
            values = pa.nulls(rows.size, STR)
        elif isinstance(values, str):
            values = const(values, rows.size)
        self.by_col[col].append((rows, values))

    def apply(self, columns: dict[str, pa.Array]) -> None:
        for col, edits in self.by_col.items():
            rows = np.concatenate([r for r, _ in edits])
            values = pa.concat_arrays([x.cast(STR) for _, x in edits])
            order = np.argsort(rows, kind="stable")
            mask = np.zeros(len(columns[col]), dtype=bool)
            mask[rows] = True
            columns[col] = pc.replace_with_mask(columns[col], pa.array(mask), values.take(pa.array(order)))


def plant(f: LandedFile, rate: float, rng: np.random.Generator, t_end: int, orphan_ids) -> None:
    """Plant bad rows (and, for orders, exact duplicates) into `f` in place."""
    n = f.n_rows
    kinds = KINDS[f.entity]
    n_bad = min(int(rng.binomial(n, rate)), int(n * MAX_FILE_SHARE))
    n_dup = int(rng.binomial(n, EXACT_DUPLICATE_SHARE)) if f.entity == "orders" else 0
    if n_bad == 0 and n_dup == 0:
        return
    kind = np.array(kinds)[(rng.integers(0, len(kinds)) + np.arange(n_bad)) % len(kinds)]
    n_pairs = int((kind == v.DUPLICATED_ORDER_ID).sum())
    perm = rng.permutation(n)
    if n < n_bad + n_pairs + n_dup:
        return
    chosen, perm = perm[:n_bad], perm[n_bad:]
    partners, perm = perm[:n_pairs], perm[n_pairs:]
    dup_src = perm[:n_dup]
    cols = f.columns
    edits = _Edits()
    inserts = []          # (after_row, type, source_row, overrides)
    bad_rows_orig = []    # (rows edited in place, reason)

    for k in kinds:
        rows = chosen[kind == k]
        if rows.size == 0:
            continue
        if k == v.MISSING_REQUIRED_FIELD:
            options = MISSING_FIELDS[f.entity]
            which = rng.integers(0, len(options), rows.size)
            for j, fields in enumerate(options):
                for col in fields:
                    edits.set(col, rows[which == j], None)
        elif k == v.UNPARSEABLE_DATE:
            fields = DATE_FIELDS[f.entity]
            which = rng.integers(0, len(fields), rows.size)
            text = pa.array(np.array(UNPARSEABLE, dtype=object)[rng.integers(0, len(UNPARSEABLE), rows.size)], STR)
            for j, col in enumerate(fields):
                sel = which == j
                edits.set(col, rows[sel], text.filter(pa.array(sel)))
        elif k == v.FUTURE_TIMESTAMP:
            col = FUTURE_FIELDS[f.entity]
            when = t_end + rng.integers(30 * DAY, 400 * DAY, rows.size)
            edits.set(col, rows, format_ts(when, f.ts_style.get(col, "iso")))
        elif k == v.MALFORMED_EMAIL:
            email = cols["email"].take(pa.array(rows))
            email = pc.fill_null(email, "jane.doe@example.com")
            broken = pc.if_else(pa.array(rng.random(rows.size) < 0.5),
                                pc.replace_substring(email, "@", "@@", max_replacements=1),
                                pc.replace_substring(email, "@", ".", max_replacements=1))
            edits.set("email", rows, broken)
        elif k == v.NEGATIVE_PRICE:
            col = "unit_price" if f.entity == "order_items" else "price"
            edits.set(col, rows, join("-", cols[col].take(pa.array(rows))))
        elif k == v.ORPHAN_ORDER_ITEM:
            ids = orphan_ids(rows.size)   # order ids the brand never issued
            inserts.append((rows, 2, rows, {"order_id": ids, "line_number": const("1", rows.size)}))
            continue
        elif k == v.DUPLICATED_ORDER_ID:
            first, second = np.minimum(rows, partners), np.maximum(rows, partners)
            inserts.append((second, 1, second, {"order_id": cols["order_id"].take(pa.array(first)),
                                               "updated_at": cols["updated_at"].take(pa.array(first))}))
            continue
        bad_rows_orig.append((rows, k))
    edits.apply(cols)
    if n_dup:
        after = np.minimum(dup_src + rng.integers(0, 15, n_dup), n - 1)
        inserts.append((after, 3, dup_src, {}))

    if not inserts:
        if bad_rows_orig:
            rows = np.concatenate([r for r, _ in bad_rows_orig])
            reasons = np.concatenate([np.full(r.size, k, dtype=object) for r, k in bad_rows_orig])
            srt = np.argsort(rows, kind="stable")
            f.bad_rows, f.bad_reasons = rows[srt], reasons[srt]
        return
    # Insert the new rows and renumber.
    keys = [np.arange(n) * 4]
    new_cols = {c: [a] for c, a in cols.items()}
    persons = [f.person]
    inserted_reason = []
    offset = n
    dup_info = None
    for after, typ, src, overrides in inserts:
        keys.append(after * 4 + typ)
        s = pa.array(src)
        for c in cols:
            new_cols[c].append(overrides[c] if c in overrides else cols[c].take(s))
        persons.append(f.person[src])
        idx = np.arange(offset, offset + src.size)
        if typ == 3:
            dup_info = (idx, src)
        else:
            inserted_reason.append((idx, v.DUPLICATED_ORDER_ID if typ == 1 else v.ORPHAN_ORDER_ITEM))
        offset += src.size
    key = np.concatenate(keys)
    order = np.argsort(key, kind="stable")
    position = np.empty(order.size, dtype=np.int64)
    position[order] = np.arange(order.size)
    o = pa.array(order)
    f.columns = {c: pa.concat_arrays([x.cast(STR) for x in parts]).take(o) for c, parts in new_cols.items()}
    f.person = np.concatenate(persons)[order]
    rows = [position[r] for r, _ in bad_rows_orig] + [position[r] for r, _ in inserted_reason]
    reasons = [np.full(r.size, k, dtype=object) for r, k in bad_rows_orig + inserted_reason]
    if rows:
        all_rows = np.concatenate(rows)
        all_reasons = np.concatenate(reasons)
        srt = np.argsort(all_rows, kind="stable")
        f.bad_rows, f.bad_reasons = all_rows[srt], all_reasons[srt]
    if dup_info is not None:
        f.dup_rows, f.dup_of = position[dup_info[0]], position[dup_info[1]]
