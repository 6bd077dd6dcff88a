"""Benchmark of the predict stage on synthetic orders (BG/NBD-like process), 100k or 1M contacts.

    PYTHONPATH=. python bench/predict.py --contacts 100000

Builds stg_orders / stg_order_items / identity_map in a temporary DuckDB file with numpy
(seeded), then times the features SQL, BG/NBD, Gamma-Gamma and the whole run_predictions
(features x3, fits, two classifiers trained, evaluated and scored). Prints seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from crm_pipeline.identity.config import load_identity_config  # noqa: F401  (keeps metadata imports aligned)
from crm_pipeline.predict import bgnbd, gamma_gamma
from crm_pipeline.predict.features import compute_features
from crm_pipeline.predict.run import run_predictions
from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.identity_schema import create_identity_tables, identity_map
from crm_pipeline.warehouse.quality_schema import create_quality_tables, stg_tables

AS_OF = dt.date(2025, 6, 30)
DAYS = 730


def synth_orders(n: int, seed: int = 7) -> dict[str, pa.Table]:
    """Gamma purchase rates, Beta dropout after each purchase; one line item per order."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.8, 1 / 40.0, n)            # purchases per day
    p = rng.beta(1.0, 4.0, n)
    start = rng.integers(0, DAYS, n).astype(float)
    ids, days = [np.arange(n)], [start]
    alive, t, who = np.ones(n, bool), start.copy(), np.arange(n)
    while alive.any():                            # a loop over purchase rounds, not rows
        alive &= rng.random(n) >= p
        t = t + rng.exponential(1 / lam)
        alive &= t < DAYS
        ids.append(who[alive]); days.append(t[alive])
    cid, day = np.concatenate(ids), np.concatenate(days)
    base = dt.datetime(2023, 7, 1, tzinfo=dt.timezone.utc)
    at = pa.array((np.datetime64(base.replace(tzinfo=None)) + (day * 86400).astype("timedelta64[s]")),
                  pa.timestamp("us", tz="UTC"))
    order_id = pa.array(np.char.add("O", np.arange(len(cid)).astype(str)))
    contact = np.char.add("C", cid.astype(str))
    spend = rng.gamma(4.0, 1 / rng.gamma(3.0, 1 / 150.0, n))[cid] * rng.gamma(6.0, 1 / 6.0, len(cid))
    orders = pa.table({"_file_id": pa.array(np.ones(len(cid), np.int32)),
                       "_row_number": pa.array(np.arange(len(cid), dtype=np.int32)),
                       "_brand": pa.array(np.full(len(cid), "brand_a")), "order_id": order_id, "ordered_at": at,
                       "status": pa.array(np.where(rng.random(len(cid)) < 0.03, "cancelled", "delivered")),
                       "total": pa.array(spend.round(2)), "_row_hash": pa.array(np.zeros(len(cid), np.int64))})
    items = pa.table({"_file_id": orders["_file_id"], "_row_number": orders["_row_number"], "_brand": orders["_brand"],
                      "order_id": order_id, "line_number": pa.array(np.ones(len(cid), np.int64)),
                      "sku": pa.array(np.char.add("S", rng.integers(0, 500, len(cid)).astype(str))),
                      "quantity": pa.array(np.where(rng.random(len(cid)) < 0.02, -1, 1).astype(np.int64)),
                      "_row_hash": orders["_row_hash"]})
    imap = pa.table({"brand": orders["_brand"], "entity": pa.array(np.full(len(cid), "orders")),
                     "source_key": order_id, "node_id": pa.array(contact), "contact_id": pa.array(contact),
                     "match_type": pa.array(np.full(len(cid), "deterministic")),
                     "_file_id": orders["_file_id"], "_row_number": orders["_row_number"]})
    return {"orders": orders, "items": items, "identity_map": imap}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"duckdb:///{Path(tmp) / 'bench.duckdb'}")
        t0 = time.perf_counter()
        data = synth_orders(args.contacts)
        create_quality_tables(engine)
        create_identity_tables(engine)
        with engine.begin() as conn:
            insert_arrow(conn, stg_tables["orders"], data["orders"])
            insert_arrow(conn, stg_tables["order_items"], data["items"])
            insert_arrow(conn, identity_map, data["identity_map"])
        print(f"contacts {args.contacts:,}  orders {data['orders'].num_rows:,}  setup {time.perf_counter() - t0:.1f}s")
        with engine.connect() as conn:
            t = time.perf_counter()
            feats = compute_features(conn, AS_OF)
            print(f"features SQL      {time.perf_counter() - t:6.1f}s  rows {len(feats):,}")
        buyers = feats[feats["purchase_count"] > 0]
        t = time.perf_counter()
        fit = bgnbd.fit(buyers["frequency"], buyers["t_x_weeks"], buyers["T_weeks"])
        print(f"BG/NBD fit        {time.perf_counter() - t:6.1f}s  {fit.params} converged={fit.converged}")
        t = time.perf_counter()
        gg = gamma_gamma.fit(buyers["frequency"], buyers["monetary_repeat"])
        print(f"Gamma-Gamma fit   {time.perf_counter() - t:6.1f}s  {gg.params} converged={gg.converged}")
        t = time.perf_counter()
        result = run_predictions(engine, as_of=AS_OF, model_dir=Path(tmp) / "models")
        print(f"whole stage       {time.perf_counter() - t:6.1f}s  (features x3, fits, 2 classifiers, write)")
        for task, outcome in result["classifiers"].items():
            m = outcome["metrics"]
            if outcome["status"] == "ok":
                print(f"  {task}: AUC classifier {m['classifier']['roc_auc']:.3f} recency "
                      f"{m['baseline_recency']['roc_auc']:.3f} bgnbd {m['baseline_bgnbd']['roc_auc']:.3f} -> {outcome['used']}")
            else:
                print(f"  {task}: {outcome['message']}")
        print(f"peak RSS {peak_mb():,.0f} MB")
        engine.dispose()


if __name__ == "__main__":
    main()
