"""Benchmark of the predict stage at 100k or 1M contacts: seconds and peak memory per part, then the whole stage.

    PYTHONPATH=. python bench/predict.py --contacts 100000
    PYTHONPATH=. python bench/predict.py --contacts 1000000

Generating 1M people with `synth` and running them through ingest, quality and identity
takes far longer than the stage measured here, so this script writes the staged tables the
predict stage reads directly, with numpy (seeded): orders of a BG/NBD process (Gamma purchase
rates, Beta dropout after each purchase), one line item each, and email opens/clicks and web
events that happen mostly while the customer is still active (so engagement carries signal,
as `synth` does: engagement fades after a buyer's dropout). The warehouse is built once and
cached as bench/out/predict_<contacts>.duckdb; `--rebuild` makes it again.

Parts are timed one by one (peak memory per part via Linux's VmHWM, reset before each part),
then `run_predictions` runs the whole stage (features, windows, fits, two classifiers trained,
evaluated and scored, predictions written) once more, as the Dagster asset does. Last, on a copy
with the profile memory the stage follows (`contact_daily`, `profile_changes`), the runs a pipeline
makes: a full run that trains, a 1% drop (a web-events file dated that day) and a new day without
files, each as a share of the full run (`--runs-only` prints only these).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from threadpoolctl import threadpool_limits

from crm_pipeline.predict import bgnbd, classifier, gamma_gamma
from crm_pipeline.predict.features import compute_features, first_purchase_after
from crm_pipeline.predict.run import _bgnbd_at, run_predictions
from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.identity_schema import create_identity_tables, identity_map
from crm_pipeline.warehouse.quality_schema import create_quality_tables, stg_tables

AS_OF = dt.date(2025, 6, 30)
DAYS = 730
BASE = np.datetime64("2023-07-01T00:00:00")
OUT = Path(__file__).parent / "out"
# The runs' training day, as in the end-to-end bench (2025-06-30 is a weekly boundary there): the full run trains
# on it, the drop is dated on it (the day still filling) and the new day comes after it; both reuse its models.
TRAINED_ON = AS_OF


def _timestamps(day: np.ndarray) -> pa.Array:
    return pa.array(BASE + (day * 86400).astype("timedelta64[s]"), pa.timestamp("us", tz="UTC"))


# One file per staged table: a record's lineage (file, row) names it alone, as the profile stage expects.
FILE_IDS = {"orders": 1, "order_items": 2, "email_events": 3, "web_events": 4}


def _staged(columns: dict, n: int, table: str, file_id: int | None = None) -> pa.Table:
    """Lineage columns plus `columns`, in the staged table's column order (missing ones NULL)."""
    file_id = FILE_IDS[table] if file_id is None else file_id
    base = {"_file_id": pa.array(np.full(n, file_id, np.int32)), "_row_number": pa.array(np.arange(n, dtype=np.int32)),
            "_brand": pa.array(np.full(n, "brand_a")), "_row_hash": pa.array(np.zeros(n, np.int64))}
    return pa.table({**base, **columns})


def _activity(rng, start, end, rate, n) -> tuple[np.ndarray, np.ndarray]:
    """Events at `rate` per day, uniform over [start, end) per contact: (contact index, day)."""
    counts = rng.poisson(rate * np.maximum(end - start, 0))
    who = np.repeat(np.arange(n), counts)
    return who, start[who] + rng.random(who.size) * (end - start)[who]


def synth_warehouse(n: int, seed: int = 7) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.8, 1 / 40.0, n)            # purchases per day
    p = rng.beta(1.0, 4.0, n)
    start = rng.integers(0, DAYS, n).astype(float)
    death = np.full(n, float(DAYS))
    ids, days = [np.arange(n)], [start]
    alive, t, who = np.ones(n, bool), start.copy(), np.arange(n)
    while alive.any():                            # a loop over purchase rounds, not rows
        drop = alive & (rng.random(n) < p)
        death[drop] = t[drop]
        alive &= ~drop
        t = t + rng.exponential(1 / lam)
        alive &= t < DAYS
        ids.append(who[alive]); days.append(t[alive])
    cid, day = np.concatenate(ids), np.concatenate(days)
    contact = np.char.add("C", np.arange(n).astype(str))
    order_id = pa.array(np.char.add("O", np.arange(len(cid)).astype(str)))
    spend = rng.gamma(4.0, 1 / rng.gamma(3.0, 1 / 150.0, n))[cid] * rng.gamma(6.0, 1 / 6.0, len(cid))
    m = len(cid)
    orders = _staged({"order_id": order_id, "ordered_at": _timestamps(day),
                      "status": pa.array(np.where(rng.random(m) < 0.03, "cancelled", "delivered")),
                      "total": pa.array(spend.round(2))}, m, "orders")
    items = _staged({"order_id": order_id, "line_number": pa.array(np.ones(m, np.int64)),
                     "sku": pa.array(np.char.add("S", rng.integers(0, 500, m).astype(str))),
                     "quantity": pa.array(np.where(rng.random(m) < 0.02, -1, 1).astype(np.int64))}, m, "order_items")
    # Engagement while active (and a trickle after): email opens/clicks, browsing.
    e_who, e_day = _activity(rng, start, death, 0.03, n)
    l_who, l_day = _activity(rng, death, np.full(n, float(DAYS)), 0.004, n)
    e_who, e_day = np.concatenate([e_who, l_who]), np.concatenate([e_day, l_day])
    k = len(e_who)
    email = _staged({"event_id": pa.array(np.char.add("E", np.arange(k).astype(str))),
                     "event_type": pa.array(np.where(rng.random(k) < 0.2, "click", "open")),
                     "occurred_at": _timestamps(e_day)}, k, "email_events")
    w_who, w_day = _activity(rng, start, death, 0.02 + 2 * lam, n)
    w = len(w_who)
    web = _staged({"event_id": pa.array(np.char.add("W", np.arange(w).astype(str))),
                   "event_type": pa.array(np.full(w, "page_view")), "occurred_at": _timestamps(w_day)}, w, "web_events")

    def mapped(entity, keys, owner):
        rows = len(keys)
        return pa.table({"brand": pa.array(np.full(rows, "brand_a")), "entity": pa.array(np.full(rows, entity)),
                         "source_key": keys, "node_id": pa.array(contact[owner]), "contact_id": pa.array(contact[owner]),
                         "match_type": pa.array(np.full(rows, "deterministic")),
                         "_file_id": pa.array(np.full(rows, FILE_IDS[entity], np.int32)),
                         "_row_number": pa.array(np.arange(rows, dtype=np.int32))})
    imap = pa.concat_tables([mapped("orders", order_id, cid), mapped("email_events", email["event_id"], e_who),
                             mapped("web_events", web["event_id"], w_who)])
    return {"orders": orders, "order_items": items, "email_events": email, "web_events": web, "identity_map": imap}


def warehouse(n: int, rebuild: bool):
    OUT.mkdir(exist_ok=True)
    db = OUT / f"predict_{n}.duckdb"
    if rebuild:
        db.unlink(missing_ok=True)
    if db.exists():
        return make_engine(f"duckdb:///{db}"), 0.0
    started = time.perf_counter()
    partial = db.with_suffix(".building")          # renamed when complete, so an interrupted build is not reused
    partial.unlink(missing_ok=True)
    engine = make_engine(f"duckdb:///{partial}")
    data = synth_warehouse(n)
    create_quality_tables(engine)
    create_identity_tables(engine)
    with engine.begin() as conn:
        for name, table in data.items():
            target = identity_map if name == "identity_map" else stg_tables[name]
            insert_arrow(conn, target, table)
    engine.dispose()
    partial.rename(db)
    return make_engine(f"duckdb:///{db}"), time.perf_counter() - started


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")      # Linux: reset VmHWM (the peak resident set)


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Parts:
    def __init__(self):
        self.rows = []

    def __call__(self, name: str, fn):
        _reset_peak()
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
        self.rows.append((name, seconds, _peak_mb()))
        print(f"  {name:34s} {seconds:7.1f} s  peak {_peak_mb():7,.0f} MB", flush=True)
        return result


def _a_drop(conn, share: float, day: dt.date, seed: int = 3) -> int:
    """A new file of web events, `share` of the staged web events' count, of contacts drawn at random, dated
    `day` (as the end-to-end bench's 1% drop: one web-events file): staged rows and their identity rows."""
    total = conn.exec_driver_sql("SELECT COUNT(*) FROM stg_web_events").scalar()
    contacts = conn.exec_driver_sql("SELECT DISTINCT contact_id FROM identity_map ORDER BY 1").scalars().all()
    rng = np.random.default_rng(seed)
    n = max(int(total * share), 1)
    who = np.asarray(contacts, dtype=object)[rng.integers(0, len(contacts), n)]
    file_id = conn.exec_driver_sql("SELECT MAX(_file_id) + 1 FROM identity_map").scalar()
    keys = pa.array(np.char.add(f"D{file_id}-", np.arange(n).astype(str)))
    when = np.datetime64(day.isoformat()) + (rng.random(n) * 86400).astype("timedelta64[s]")
    web = _staged({"event_id": keys, "event_type": pa.array(np.full(n, "page_view")),
                   "occurred_at": pa.array(when, pa.timestamp("us", tz="UTC"))}, n, "web_events", file_id)
    mapped = pa.table({"brand": pa.array(np.full(n, "brand_a")), "entity": pa.array(np.full(n, "web_events")),
                       "source_key": keys, "node_id": pa.array(who.astype(str)), "contact_id": pa.array(who.astype(str)),
                       "match_type": pa.array(np.full(n, "deterministic")),
                       "_file_id": pa.array(np.full(n, file_id, np.int32)),
                       "_row_number": pa.array(np.arange(n, dtype=np.int32))})
    insert_arrow(conn, stg_tables["web_events"], web)
    insert_arrow(conn, identity_map, mapped)
    return n


def runs(n: int, rebuild: bool) -> None:
    """Full, 1% drop and new-day runs of the stage as the pipeline makes them, on a copy of the warehouse with
    the profile memory the stage follows (a full profile build first; an incremental one before each run)."""
    cached, _ = warehouse(n, rebuild)
    cached.dispose()
    db = OUT / f"predict_runs_{n}.duckdb"
    db.with_name(db.name + ".wal").unlink(missing_ok=True)     # an interrupted run's log would replay on the copy
    shutil.copyfile(OUT / f"predict_{n}.duckdb", db)
    engine = make_engine(f"duckdb:///{db}")
    models = OUT / "models"
    started = time.perf_counter()
    build_profiles(engine, as_of=AS_OF, full_refresh=True)
    print(f"profile memory for {n:,} contacts built in {time.perf_counter() - started:.0f} s "
          f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    rows = []

    def run(name: str, as_of: dt.date, **kw) -> None:
        profiles_started = time.perf_counter()
        build_profiles(engine, as_of=as_of)
        profiles = time.perf_counter() - profiles_started
        started = time.perf_counter()
        result = run_predictions(engine, as_of=as_of, model_dir=models, retrain_days=7, cadence_start=TRAINED_ON, **kw)
        seconds = time.perf_counter() - started
        rows.append(seconds)
        r = result["run"]
        print(f"  {name:10s} predictions {seconds:6.1f} s  {seconds / rows[0]:6.1%} of full  "
              f"[{r['mode']}; {'trained' if result['training']['retrained'] else 'models reused'}; "
              f"{r['contacts_recomputed']:,} contacts from their records, {r['contacts_rescored']:,} buyers scored]"
              f"{' ' + str(r['recomputed_because']) if r['recomputed_because'] else ''}"
              f"  (profile build before it {profiles:.1f} s; load {os.getloadavg()[0]:.1f})", flush=True)

    run("full", AS_OF, full_refresh=True)
    with engine.begin() as conn:
        added = _a_drop(conn, 0.01, AS_OF)
    print(f"  drop: {added:,} web events dated {AS_OF}")
    run("1% drop", AS_OF)
    run("new day", AS_OF + dt.timedelta(days=1))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--runs-only", action="store_true", help="only the full / 1%% drop / new-day runs")
    args = parser.parse_args()
    if args.runs_only:
        runs(args.contacts, args.rebuild)
        return
    engine, built = warehouse(args.contacts, args.rebuild)
    with engine.connect() as conn:
        counts = {t: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar()
                  for t in ("stg_orders", "stg_email_events", "stg_web_events")}
    print(f"contacts {args.contacts:,}  " + "  ".join(f"{k} {v:,}" for k, v in counts.items())
          + (f"  built in {built:.0f} s (cached in bench/out)" if built else "  (cached warehouse)"))
    part = Parts()
    with engine.connect() as conn:
        plan = {t.name: classifier.cutoffs(t, AS_OF) for t in classifier.TASKS}
        cuts = sorted({c for e, tr in plan.values() for c in (e, *tr)})
        every = classifier.sample_every(args.contacts)
        frame = part(f"features: as_of + {len(cuts)} cutoffs (1/{every})",
                     lambda: compute_features(conn, AS_OF, training=cuts, every=every))
        feats = frame[frame["as_of"] == AS_OF]
        windows = frame[frame["as_of"] != AS_OF]
        buyers = feats[feats["purchase_count"] > 0].reset_index(drop=True)
        first_after = part("labels (first purchase after)", lambda: first_purchase_after(conn, cuts, AS_OF))
    x, t_x, T = (buyers[c].to_numpy(dtype=float) for c in ("frequency", "t_x_weeks", "T_weeks"))
    bg = part("BG/NBD fit", lambda: bgnbd.fit(x, t_x, T))
    gg = part("Gamma-Gamma fit", lambda: gamma_gamma.fit(buyers["frequency"], buyers["monetary_repeat"]))
    part("CLV 12 months + P(alive) + E[X]", lambda: (
        gamma_gamma.clv(bg.params, gg.params, x, t_x, T, buyers["monetary_repeat"].to_numpy(float)),
        bgnbd.p_alive(bg.params, x, t_x, T), bgnbd.expected_purchases(bg.params, x, t_x, T, 52.0)))
    by_cutoff = {c: f.reset_index(drop=True) for c, f in windows.groupby("as_of")}
    params = part(f"BG/NBD fits at {len(cuts)} cutoffs", lambda: {c: _bgnbd_at(f).params for c, f in by_cutoff.items()})
    for task in classifier.TASKS:
        evaluate_at, train_at = plan[task.name]
        prep = {c: classifier.add_model_columns(by_cutoff[c], params[c], task.label_days) for c in (evaluate_at, *train_at)}
        train = pd.concat([prep[c] for c in train_at], ignore_index=True)
        score = classifier.add_model_columns(buyers, bg.params, task.label_days)
        out = part(f"{task.name}: train, evaluate, score", lambda: classifier.run_task(
            task, train, prep[evaluate_at], score, y_train=classifier.labels(train, first_after, task),
            y_eval=classifier.labels(prep[evaluate_at], first_after, task), model_dir=OUT / "models", as_of=AS_OF,
            windows={}))
        m = out.metrics
        print(f"      {len(train):,} training rows, {m['boosting_rounds']} rounds; held-out AUC "
              + ", ".join(f"{k.removeprefix('baseline_')} {m[k]['roc_auc']:.3f}"
                          for k in ("classifier", "baseline_recency", "baseline_bgnbd_expected_purchases"))
              + f" -> {out.used}")
    result = part("WHOLE STAGE run_predictions", lambda: run_predictions(engine, as_of=AS_OF, model_dir=OUT / "models"))
    print(f"  scored {result['customers_scored']:,} customers of {result['contacts_with_features']:,} contacts; "
          + "; ".join(f"{k}: {v['used']}" for k, v in result["classifiers"].items()))
    engine.dispose()
    runs(args.contacts, False)


if __name__ == "__main__":
    with threadpool_limits(limits=1):      # as run_predictions does (see its docstring)
        main()
