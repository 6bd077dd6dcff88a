"""The ground truth describes the landed bytes exactly, and the planted defects are what it says."""

from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd

from crm_pipeline.contract import violations
from crm_pipeline.contract.entities import ENTITIES
from crm_pipeline.synth import generate

END_DATE = dt.date(2025, 6, 30)  # as in conftest


def _digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = _digests_of(tmp_path / "a", seed=3)
    b = _digests_of(tmp_path / "b", seed=3)
    c = _digests_of(tmp_path / "c", seed=4)
    assert a == b
    assert len(a) > 20
    shared = set(a) & set(c)
    assert any(a[k] != c[k] for k in shared)


def _digests_of(out, seed):
    generate(out, people=400, brands=3, days=365, seed=seed, end_date=dt.date(2024, 12, 31))
    return _digests(out)


def _key(frame: pd.DataFrame, entity: str) -> pd.Series:
    key = ENTITIES[entity].key
    s = frame[key[0]]
    for k in key[1:]:
        s = s + ":" + frame[k]
    return s


def test_every_landed_row_has_exactly_one_truth_record(landed, truth):
    records, manifest = truth["records"], truth["files"]
    assert list(records.columns) == ["brand", "entity", "source_key", "person_id", "file", "row_number"]
    assert len(records) == sum(len(df) for _, _, df in landed.values())
    assert sorted(manifest["file"]) == sorted(landed)
    for _, entry in manifest.iterrows():
        brand, entity, df = landed[entry["file"]]
        first, n = int(entry["first_record"]) - 1, int(entry["rows"])
        assert n == len(df)
        rec = records.iloc[first:first + n]
        assert (rec["file"] == entry["file"]).all()
        assert rec["row_number"].astype(int).tolist() == list(range(1, n + 1))
        assert list(df.columns) == list(ENTITIES[entity].column_names), entry["file"]
        assert (rec["brand"] == brand).all() and (rec["entity"] == entity).all()
        assert rec["source_key"].tolist() == _key(df, entity).tolist(), entry["file"]
        if ENTITIES[entity].person_linked:
            assert (rec["person_id"] != "").all(), entry["file"]
        else:
            assert (rec["person_id"] == "").all(), entry["file"]
    assert set(records["person_id"]) - {""} <= set(truth["people"]["person_id"])


def test_bad_rows_point_at_rows_of_every_kind_at_about_one_percent(landed, truth, synth_out):
    bad = truth["bad_rows"]
    assert set(bad["reason"]) == set(violations.BAD_ROW_KINDS)
    assert not bad.duplicated(["file", "row_number"]).any()
    total = sum(len(df) for _, _, df in landed.values())
    assert 0.007 <= len(bad) / total <= 0.013
    for path, rows in bad.groupby("file"):
        assert path.endswith((".csv", ".jsonl")), path
        n = len(landed[path][2])
        numbers = rows["row_number"].astype(int)
        assert numbers.between(1, n).all()
        assert len(rows) <= 0.04 * n
    assert synth_out[1]["bad_rows"] == len(bad)


def _bad(landed, truth, reason):
    for _, row in truth["bad_rows"][truth["bad_rows"]["reason"] == reason].iterrows():
        brand, entity, df = landed[row["file"]]
        yield brand, entity, df, int(row["row_number"]) - 1, row["file"]


def test_each_bad_row_breaks_the_rule_it_is_filed_under(landed, truth):
    orders_ids = {}
    for path, (brand, entity, df) in landed.items():
        if entity == "orders":
            orders_ids.setdefault(brand, set()).update(df["order_id"])
    for _, entity, df, i, _ in _bad(landed, truth, violations.NEGATIVE_PRICE):
        col = "unit_price" if entity == "order_items" else "price"
        assert float(df.at[i, col]) < 0
    for brand, _, df, i, _ in _bad(landed, truth, violations.ORPHAN_ORDER_ITEM):
        assert df.at[i, "order_id"] not in orders_ids[brand]
    for _, _, df, i, _ in _bad(landed, truth, violations.DUPLICATED_ORDER_ID):
        earlier = df.iloc[:i]
        same = earlier[earlier["order_id"] == df.at[i, "order_id"]]
        assert len(same) == 1
        assert same.iloc[0]["updated_at"] == df.at[i, "updated_at"]
        assert not same.iloc[0].equals(df.iloc[i])
    for _, _, df, i, _ in _bad(landed, truth, violations.MALFORMED_EMAIL):
        email = df.at[i, "email"].strip()
        assert email.count("@") != 1
    for _, entity, df, i, _ in _bad(landed, truth, violations.FUTURE_TIMESTAMP):
        col = {"orders": "ordered_at", "customers": "created_at"}.get(entity, "occurred_at")
        when = pd.to_datetime(df.at[i, col], format="mixed", utc=True)
        assert when.date() > END_DATE
    for _, entity, df, i, _ in _bad(landed, truth, violations.MISSING_REQUIRED_FIELD):
        required = ENTITIES[entity].required_columns
        one_of = [g for g in ENTITIES[entity].one_of]
        assert any(df.at[i, c] == "" for c in required) or any(all(df.at[i, c] == "" for c in g) for g in one_of)


def test_good_rows_are_clean(landed, truth):
    bad = set(zip(truth["bad_rows"]["file"], truth["bad_rows"]["row_number"].astype(int)))
    for path, (brand, entity, df) in landed.items():
        rows = [i for i in range(len(df)) if (path, i + 1) not in bad]
        good = df.iloc[rows]
        for col in ENTITIES[entity].required_columns:
            assert (good[col] != "").all(), (path, col)
        if entity == "order_items":
            assert (good["unit_price"].astype(float) >= 0).all()
        if entity == "orders":
            assert ((good["customer_id"] != "") | (good["email"] != "")).all()
            ordered = pd.to_datetime(good["ordered_at"], format="mixed", utc=True)
            assert ordered.max() < pd.Timestamp(END_DATE, tz="UTC")
            cents = {c: (good[c].astype(float) * 100).round().astype(int)
                     for c in ("subtotal", "discount_total", "shipping_total", "tax_total", "total")}
            assert (cents["subtotal"] - cents["discount_total"] + cents["shipping_total"] + cents["tax_total"]
                    == cents["total"]).all()


def test_exact_duplicates_are_identical_rows_of_the_same_file(landed, truth):
    dups = truth["exact_duplicates"]
    assert len(dups) > 0
    for _, row in dups.iterrows():
        df = landed[row["file"]][2]
        a, b = int(row["row_number"]) - 1, int(row["duplicate_of_row_number"]) - 1
        assert a > b
        assert df.iloc[a].tolist() == df.iloc[b].tolist()
