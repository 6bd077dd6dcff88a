"""Profile build at scale: synthetic staging + identity tables, then `build_profiles` full, a new day, a drop.

Usage: PYTHONPATH=. python bench/profiles.py [--contacts 100000 1000000] [--seed 7] [--keep DIR]
       PYTHONPATH=. python bench/profiles.py --warehouse W.duckdb [--memory-limit 4GB] [--keep DIR]
       PYTHONPATH=. python bench/profiles.py --drop W.duckdb --landing L --as-of D [--repeat 2] [--full] [--keep DIR]

Per scale: generates (numpy, seeded) staging rows for every person-linked entity plus
the catalogue and order lines, links them to contacts in `identity_map`, inserts them
with `insert_arrow` into a fresh DuckDB file, then runs each build in a fresh process so
its peak memory is its own:
1. full: the first build, as of AS_OF (every contact);
2. same day again: nothing changed, nothing recomputed;
3. new day: as of AS_OF + 1, no new record (contacts due: records dated on the new day,
   opens or clicks leaving a 30/90/365-day window);
4. small drop: new web events (a new file id), same day as 3: 1% of the rows, from 14% of the contacts, as
   bench/e2e.py's drop (`--drop-share`, `--drop-touches`);
5. full refresh of the same state (`full_refresh=True`) on a copy of the file, and a check in
   SQL that every profile table of the incremental warehouse equals the rebuilt one.
Prints rows per table, wall and CPU seconds and contacts recomputed per build, its steps and peak RSS, and a
SUMMARY line: the drop and the new day as shares of the full build (issue #13's targets: 5% and 10%), with the
machine's load.
With `--warehouse`, instead: a full rebuild of a copy of a built warehouse (a 1M-people e2e run's), as of
its last build's day, under a DuckDB memory limit, each step printed as it finishes with its wall and CPU
seconds and the load, then DuckDB's checkpoint of what the build wrote.
With `--drop W.duckdb --landing L --as-of D`, instead: the incremental build of a drop on a built warehouse, as in
bench/e2e.py (`--drop-rows` web events of existing visitors dated on D, `bench._e2e_data.write_drop`), staged and
resolved once on a copy (`bench.predict_day.prepare`, then `resolve_identities` as the identity asset calls it: that
asset's group also builds the profiles; cached in `--keep`), then built `--repeat` times on fresh copies of that:
CPU per step ('commit' holds DuckDB's checkpoint when the build's log passed its threshold), the slowest statements;
with `--full`, a full refresh of the same state too, and the rows that differ between the two (0 = identical).
`--drop-rows 0` with a later `--as-of` times a new day without a file.
Per contact on average: 1.2 customer accounts, 0.6 subscriber records, 2.5 orders of
2 lines (5% with a return line), 8 email events and 6 web events over two years; 1% of
events fall after as_of (and must be ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AS_OF = dt.date(2025, 6, 30)
BRANDS = np.array(["alpha", "beta", "gamma"])
TOPS = np.array(["Women", "Men", "Kids", "Home", "Beauty", "Sport"])
SUBS = np.array(["Shoes", "Shirts", "Coats", "Bags", "Kitchen", "Care"])
FIRST = np.array(["Ann", "Bo", "Cara", "Dan", "Eve", "Finn", "Gia", "Hal", "Ida", "Jon"])
LAST = np.array(["Lee", "Kim", "Diaz", "Smith", "Ng", "Brown", "Khan", "Rossi", "Weber", "Moreau"])
COUNTRIES = np.array(["US", "US", "US", "GB", "DE", "FR", "CA"])
ORDER_STATUS = np.array(["delivered", "shipped", "placed", "cancelled", "refunded", "partially_refunded"])
ORDER_P = [0.62, 0.1, 0.05, 0.06, 0.05, 0.12]
EMAIL_TYPES = np.array(["send", "open", "click", "bounce", "unsubscribe", "complaint"])
EMAIL_P = [0.55, 0.3, 0.12, 0.015, 0.012, 0.003]
WEB_TYPES = np.array(["page_view", "product_view", "add_to_cart", "search", "checkout"])
WEB_P = [0.4, 0.35, 0.12, 0.08, 0.05]
PRODUCTS_PER_BRAND = 2_000
SECONDS = 730 * 86_400


def ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(numbers).cast(pa.string()), "")


def times(rng: np.random.Generator, n: int) -> pa.Array:
    """Over the two years before as_of, 1% in the week after it."""
    end = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc).timestamp()
    late = rng.random(n) < 0.01
    secs = np.where(late, end + rng.integers(0, 7 * 86_400, n), end - rng.integers(1, SECONDS, n))
    return pa.array((secs * 1_000_000).astype("int64"), pa.timestamp("us", tz="UTC"))


def lineage(n: int, brand: np.ndarray) -> dict:
    rows = np.arange(1, n + 1)
    return {"_file_id": pa.array(np.ones(n, np.int64)), "_row_number": pa.array(rows),
            "_brand": pa.array(brand), "_row_hash": pa.array(rows)}


def generate(contacts: int, seed: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    cid = lambda idx: ids("K", idx)  # noqa: E731
    out: dict[str, pa.Table] = {}
    links = []

    # catalogue per brand
    n_prod = PRODUCTS_PER_BRAND * len(BRANDS)
    p_brand = np.repeat(BRANDS, PRODUCTS_PER_BRAND)
    p_num = np.tile(np.arange(PRODUCTS_PER_BRAND), len(BRANDS))
    cat = pc.binary_join_element_wise(pa.array(TOPS[rng.integers(0, len(TOPS), n_prod)]),
                                      pa.array(SUBS[rng.integers(0, len(SUBS), n_prod)]), " > ")
    prices = np.round(rng.lognormal(3.5, 0.8, n_prod), 2)
    out["products"] = pa.table({**lineage(n_prod, p_brand), "sku": ids("A-", p_num), "name": ids("Product ", p_num),
                                "category": cat, "price": pa.array(prices)})

    # customers: one account per contact, 20% a second account in another brand
    home = rng.integers(0, len(BRANDS), contacts)
    extra = np.flatnonzero(rng.random(contacts) < 0.2)
    owner = np.concatenate([np.arange(contacts), extra])
    brand = BRANDS[np.concatenate([home, (home[extra] + 1) % len(BRANDS)])]
    n = owner.size
    email = pc.binary_join_element_wise(ids("p", owner), pa.array(np.full(n, "example.com")), "@")
    out["customers"] = pa.table({
        **lineage(n, brand), "customer_id": ids("C", np.arange(n)), "email": email,
        "email_match_key": email, "phone": ids("+1415", 2_000_000 + owner % 7_000_000),
        "first_name": pa.array(FIRST[owner % len(FIRST)]), "last_name": pa.array(LAST[(owner // 10) % len(LAST)]),
        "address_line1": ids("Main Street ", owner % 999), "city": pa.array(np.full(n, "Springfield")),
        "postal_code": ids("", 10_000 + owner % 89_999), "country": pa.array(COUNTRIES[owner % len(COUNTRIES)]),
        "created_at": times(rng, n), "updated_at": times(rng, n)})
    links.append(("customers", brand, out["customers"]["customer_id"], owner))

    # subscribers: 60% of contacts, in their home brand
    who = np.flatnonzero(rng.random(contacts) < 0.6)
    n = who.size
    brand = BRANDS[home[who]]
    sub_at = times(rng, n)
    status = np.where(rng.random(n) < 0.8, "subscribed", "unsubscribed")
    unsub = pc.if_else(pa.array(status == "unsubscribed"), times(rng, n), pa.nulls(n, pa.timestamp("us", tz="UTC")))
    email = pc.binary_join_element_wise(ids("p", who), pa.array(np.full(n, "example.com")), "@")
    out["subscribers"] = pa.table({
        **lineage(n, brand), "subscriber_id": ids("S", np.arange(n)), "email": email, "email_match_key": email,
        "status": pa.array(status), "subscribed_at": sub_at, "unsubscribed_at": unsub,
        "source": pa.array(np.full(n, "popup")), "first_name": pa.array(FIRST[who % len(FIRST)])})
    links.append(("subscribers", brand, out["subscribers"]["subscriber_id"], who))

    # orders and lines
    per = rng.poisson(2.5, contacts)
    owner = np.repeat(np.arange(contacts), per)
    n = owner.size
    brand_idx = np.where(rng.random(n) < 0.8, home[owner], rng.integers(0, len(BRANDS), n))
    brand = BRANDS[brand_idx]
    status = ORDER_STATUS[rng.choice(len(ORDER_STATUS), n, p=ORDER_P)]
    ordered = times(rng, n)
    order_id = ids("O-", np.arange(n))
    out["orders"] = pa.table({
        **lineage(n, brand), "order_id": order_id, "customer_id": pa.nulls(n, pa.string()),
        "email": pc.binary_join_element_wise(ids("p", owner), pa.array(np.full(n, "example.com")), "@"),
        "ordered_at": ordered, "status": pa.array(status), "currency": pa.array(np.where(brand_idx == 2, "EUR", "USD")),
        "total": pa.array(np.round(rng.lognormal(4.0, 0.7, n), 2)), "shipping_country": pa.array(COUNTRIES[owner % 7]),
        "updated_at": ordered})
    links.append(("orders", brand, order_id, owner))
    lines = 1 + rng.poisson(1.0, n)
    o_idx = np.repeat(np.arange(n), lines)
    line_no = np.arange(o_idx.size) - np.repeat(np.cumsum(lines) - lines, lines) + 1
    qty = 1 + rng.poisson(0.3, o_idx.size)
    sku_num = rng.integers(0, PRODUCTS_PER_BRAND, o_idx.size)
    # a partially refunded order returns one unit of its first line, on an extra line
    ret = np.flatnonzero((line_no == 1) & (status[o_idx] == "partially_refunded"))
    line_no = np.concatenate([line_no, lines[o_idx[ret]] + 1])
    o_idx = np.concatenate([o_idx, o_idx[ret]])
    sku_num = np.concatenate([sku_num, sku_num[ret]])
    qty = np.concatenate([qty, -np.ones(ret.size, np.int64)])
    m = o_idx.size
    out["order_items"] = pa.table({
        **lineage(m, brand[o_idx]), "order_id": order_id.take(pa.array(o_idx)), "line_number": pa.array(line_no),
        "sku": ids("A-", sku_num), "quantity": pa.array(qty), "unit_price": pa.array(np.round(rng.lognormal(3.5, 0.8, m), 2))})

    # email events (home brand) and web events (any brand, mostly home)
    for entity, mean, kinds, p in (("email_events", 8, EMAIL_TYPES, EMAIL_P), ("web_events", 6, WEB_TYPES, WEB_P)):
        owner = np.repeat(np.arange(contacts), rng.poisson(mean, contacts))
        n = owner.size
        brand = BRANDS[home[owner]] if entity == "email_events" else \
            BRANDS[np.where(rng.random(n) < 0.85, home[owner], rng.integers(0, len(BRANDS), n))]
        kind = kinds[rng.choice(len(kinds), n, p=p)]
        event_id = ids("E-" if entity == "email_events" else "W-", np.arange(n))
        cols = {**lineage(n, brand), "event_id": event_id, "event_type": pa.array(kind), "occurred_at": times(rng, n)}
        if entity == "email_events":
            cols |= {"campaign_id": ids("CP-", rng.integers(0, 300, n)),
                     "url": pc.if_else(pa.array(kind == "click"), ids("https://shop/c/", rng.integers(0, 300, n)),
                                       pa.nulls(n, pa.string()))}
        else:
            is_product = np.isin(kind, ["product_view", "add_to_cart"])
            cols |= {"cookie_id": ids("ck", owner), "url": ids("https://shop/p/", rng.integers(0, 5_000, n)),
                     "sku": pc.if_else(pa.array(is_product), ids("A-", rng.integers(0, PRODUCTS_PER_BRAND, n)),
                                       pa.nulls(n, pa.string()))}
        out[entity] = pa.table(cols)
        links.append((entity, brand, event_id, owner))

    ent, br, key, own = zip(*links)
    n_links = sum(len(k) for k in key)
    out["identity_map"] = pa.table({
        "brand": pa.array(np.concatenate(br)),
        "entity": pa.array(np.concatenate([np.full(len(k), e) for e, k in zip(ent, key)])),
        "source_key": pa.concat_arrays([k.combine_chunks() if isinstance(k, pa.ChunkedArray) else k for k in key]),
        "node_id": ids("N", np.arange(n_links)), "contact_id": cid(np.concatenate(own)),
        "match_type": pa.array(np.full(n_links, "deterministic")),
        "_file_id": pa.array(np.ones(n_links, np.int64)), "_row_number": pa.array(np.arange(1, n_links + 1)),
    })
    return out


def load(url: str, tables: dict[str, pa.Table]) -> None:
    from crm_pipeline.warehouse.bulk import insert_arrow
    from crm_pipeline.warehouse.engine import make_engine
    from crm_pipeline.warehouse.identity_schema import create_identity_tables, identity_map
    from crm_pipeline.warehouse.quality_schema import create_quality_tables, stg_tables

    engine = make_engine(url)
    create_quality_tables(engine)
    create_identity_tables(engine)
    with engine.begin() as conn:
        for name, data in tables.items():
            table = identity_map if name == "identity_map" else stg_tables[name]
            data = data.select([c for c in data.column_names if c in table.c])
            insert_arrow(conn, table, data)
    engine.dispose()


def build_only(url: str, as_of: str, full_refresh: bool) -> None:
    """Run in a child process: the build alone, with its own peak memory."""
    from crm_pipeline.profiles.build import build_profiles
    from crm_pipeline.warehouse.engine import make_engine

    cpu = time.process_time()
    figures = build_profiles(make_engine(url), as_of=dt.date.fromisoformat(as_of), full_refresh=full_refresh)
    figures["cpu_seconds"] = round(time.process_time() - cpu, 3)  # every thread of the process (DuckDB's too)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(figures))


def small_drop(url: str, contacts: int, seed: int, events: int, touched: float) -> int:
    """`events` new web events (file id 2) of a `touched` share of the contacts, dated on the new day: like
    bench/e2e.py's 1% drop, a sample of existing visitors' events (at 100k people it touches 14% of them);
    returns the rows added."""
    from crm_pipeline.warehouse.bulk import insert_arrow
    from crm_pipeline.warehouse.engine import make_engine
    from crm_pipeline.warehouse.identity_schema import identity_map
    from crm_pipeline.warehouse.quality_schema import stg_tables

    rng = np.random.default_rng(seed + 1)
    who = rng.choice(contacts, max(1, round(contacts * touched)), replace=False)
    owner = np.sort(rng.choice(who, max(1, events)))
    n = owner.size
    day = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc).timestamp()
    at = pa.array(((day + rng.integers(0, 86_400, n)) * 1_000_000).astype("int64"), pa.timestamp("us", tz="UTC"))
    engine = make_engine(url)
    with engine.begin() as conn:
        # each contact's brand: that of one of its customer accounts
        brands = dict(conn.exec_driver_sql(
            "SELECT contact_id, MIN(brand) FROM identity_map WHERE entity = 'customers' GROUP BY contact_id").all())
        brand = np.array([brands[f"K{o}"] for o in owner])
        rows = np.arange(1, n + 1)
        event_id = ids("W-drop-", np.arange(n))
        insert_arrow(conn, stg_tables["web_events"], pa.table({
            "_file_id": pa.array(np.full(n, 2, np.int64)), "_row_number": pa.array(rows), "_brand": pa.array(brand),
            "_row_hash": pa.array(rows), "event_id": event_id, "event_type": pa.array(np.full(n, "product_view")),
            "occurred_at": at, "cookie_id": ids("ck", owner), "url": ids("https://shop/p/", owner % 5_000),
            "sku": ids("A-", owner % PRODUCTS_PER_BRAND)}))
        insert_arrow(conn, identity_map, pa.table({
            "brand": pa.array(brand), "entity": pa.array(np.full(n, "web_events")), "source_key": event_id,
            "node_id": ids("N-drop-", np.arange(n)), "contact_id": ids("K", owner),
            "match_type": pa.array(np.full(n, "deterministic")),
            "_file_id": pa.array(np.full(n, 2, np.int64)), "_row_number": pa.array(rows)}))
    engine.dispose()
    return n


def differences(path: Path, other: Path) -> dict[str, int]:
    """Rows of each profile table in one warehouse and not the other (both ways): 0 everywhere = identical."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    con.execute(f"ATTACH '{other}' AS rebuilt (READ_ONLY)")
    out = {}
    for table in ("golden_records", "profile_360", "profile_360_brand", "timeline", "contact_daily",
                  "contact_browse_daily"):
        out[table] = con.execute(f"SELECT (SELECT COUNT(*) FROM (SELECT * FROM {table} EXCEPT ALL "
                                 f"SELECT * FROM rebuilt.{table})) + (SELECT COUNT(*) FROM (SELECT * FROM "
                                 f"rebuilt.{table} EXCEPT ALL SELECT * FROM {table}))").fetchone()[0]
    con.close()
    return out


load_seen: list[float] = []  # the 1-minute load average at each build's start and end


def build(url: str, as_of: dt.date, full_refresh: bool = False) -> dict:
    load_seen.append(os.getloadavg()[0])
    try:
        return _build(url, as_of, full_refresh)
    finally:
        load_seen.append(os.getloadavg()[0])


def _build(url: str, as_of: dt.date, full_refresh: bool) -> dict:
    args = [sys.executable, __file__, "--build-only", url, as_of.isoformat()] + (["--full"] if full_refresh else [])
    child = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def run(contacts: int, seed: int, folder: Path, drop_share: float, touched: float) -> None:
    path = folder / f"profiles_{contacts}.duckdb"
    url = f"duckdb:///{path}"
    t = time.perf_counter()
    tables = generate(contacts, seed)
    t_gen = time.perf_counter() - t
    t = time.perf_counter()
    load(url, tables)
    t_load = time.perf_counter() - t
    rows = {k: v.num_rows for k, v in tables.items()}
    del tables
    print(f"\n== {contacts:,} contacts: generated in {t_gen:.1f} s, inserted in {t_load:.1f} s")
    print("   rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
    next_day = AS_OF + dt.timedelta(days=1)
    runs = [("full build", build(url, AS_OF)), ("same day, no change", build(url, AS_OF)),
            ("new day, no new record", build(url, next_day))]
    added = small_drop(url, contacts, seed, round(sum(v for k, v in rows.items() if k != 'identity_map') * drop_share), touched)
    runs.append((f"small drop ({added:,} web events, {drop_share:.0%} of the rows)", build(url, next_day)))
    copy = path.with_name(path.stem + "_rebuilt.duckdb")
    shutil.copyfile(path, copy)
    runs.append(("full refresh of the same state", build(f"duckdb:///{copy}", next_day, full_refresh=True)))
    full_seconds = runs[0][1]["seconds"]
    for label, f in runs:
        share = f["seconds"] / full_seconds
        print(f"   {label}: {f['seconds']:.1f} s, CPU {f['cpu_seconds']:.1f} s ({share:.0%} of the full build), "
              f"{f['mode']}, "
              f"{f['contacts_recomputed']:,} contacts recomputed ({f['reason']}; rebuilt whole "
              f"{f.get('contacts_rebuilt_whole', 0):,}, browse figures only {f.get('contacts_browse_only', 0):,}, "
              f"window counts only {f.get('contacts_windows_only', 0):,}), peak RSS {f['peak_rss_mb']:,} MB")
        print(f"      steps {f['step_seconds']}")
    f = runs[0][1]
    print(f"   contacts profiled {f['contacts_profiled']:,}, contact-brand rows {f['contact_brand_rows']:,}, "
          f"golden values {f['golden_values']:,}, timeline rows {f['timeline_rows']:,}")
    print(f"   incremental vs full refresh, rows differing per table: {differences(path, copy)}")
    full, day, drop = runs[0][1]["seconds"], runs[2][1]["seconds"], runs[3][1]["seconds"]
    cpu = {name: runs[i][1]["cpu_seconds"] for i, name in ((0, "full"), (2, "new day"), (3, "drop"))}
    print(f"   SUMMARY {contacts:,}: full {full:.1f} s | drop {drop:.1f} s = {drop / full:.1%} of full "
          f"(issue #13: 5%) | new day {day:.1f} s = {day / full:.1%} of full (10%) | CPU s "
          f"{' '.join(f'{k} {v:.1f}' for k, v in cpu.items())} | 1-min load "
          f"{' '.join(f'{x:.1f}' for x in load_seen)} on {os.cpu_count()} CPUs")


class StepCpu:
    """The CPU seconds of each build step (the process's, DuckDB's threads included), as `on_step` hears of them:
    the CPU since the previous step ended (the first step's includes the plan). Steadier than wall seconds on a
    shared machine."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.last = time.process_time()
        self.cpu: dict[str, float] = {}

    def __call__(self, name: str, seconds: float) -> None:
        now = time.process_time()
        self.cpu[name] = round(now - self.last, 2)
        self.last = now
        if self.echo:
            print(f"   {name:<15} {seconds:8.1f} s, CPU {self.cpu[name]:6.1f} s  (1-min load {os.getloadavg()[0]:.1f})",
                  flush=True)

    def rest(self, name: str) -> None:
        """The CPU since the last step under `name` (the build's log and commit, a checkpoint)."""
        self(name, 0.0)


def timed_build(engine, as_of: dt.date, *, full_refresh: bool, echo: bool = False) -> tuple[dict, dict[str, float]]:
    """`build_profiles` and then DuckDB's checkpoint of what it wrote (at commit when its log passed the threshold,
    else when the file is closed: a cost of the build either way), with the CPU of each step."""
    from crm_pipeline.profiles.build import build_profiles

    steps = StepCpu(echo)
    figures = build_profiles(engine, as_of=as_of, full_refresh=full_refresh, on_step=steps)
    steps.rest("commit")
    t = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
    figures["step_seconds"]["checkpoint"] = round(time.perf_counter() - t, 3)
    steps("checkpoint", figures["step_seconds"]["checkpoint"])
    return figures, steps.cpu


def rebuild_copy(warehouse: Path, folder: Path, memory_limit: str, top: int) -> None:
    """A full profile build on a copy of `warehouse` (the original is never written), step by step, and its `top`
    slowest statements."""
    from bench._common import slowest_statements, statement_clock
    from crm_pipeline.warehouse.engine import make_engine

    copy = folder / "warehouse_copy.duckdb"
    t = time.perf_counter()
    shutil.copyfile(warehouse, copy)
    print(f"== full rebuild of a copy of {warehouse} (copied in {time.perf_counter() - t:.0f} s), "
          f"memory limit {memory_limit}, {os.cpu_count()} CPUs", flush=True)
    engine = make_engine(f"duckdb:///{copy}", memory_limit=memory_limit)
    try:
        with engine.connect() as conn:
            as_of = conn.exec_driver_sql("SELECT as_of FROM profile_builds ORDER BY build_number DESC LIMIT 1").scalar()
        spent = statement_clock(engine)
        cpu = time.process_time()
        figures, _ = timed_build(engine, as_of, full_refresh=True, echo=True)
        for line in slowest_statements(spent, top, width=150):
            print(f"    {line}")
        print(f"   SUMMARY full rebuild {figures['seconds']:.1f} s, CPU {time.process_time() - cpu:.1f} s with the "
              f"checkpoint, as of {as_of}, {figures['contact_slices']} contact slices, timeline rows "
              f"{figures['timeline_rows']:,}, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} "
              "MB", flush=True)
    finally:
        engine.dispose()
        copy.unlink(missing_ok=True)
        for spill in folder.glob("warehouse_copy.duckdb*"):
            shutil.rmtree(spill, ignore_errors=True) if spill.is_dir() else spill.unlink()


def prepared_drop(warehouse: Path, landing: Path, as_of: dt.date, rows: int, folder: Path) -> Path:
    """A copy of `warehouse` with a drop of `rows` web events dated `as_of` (none for 0) ingested, staged and
    resolved, ready for the profile build (made once per folder: its landing links the original files, which stay
    untouched)."""
    from bench._e2e_data import write_drop
    from bench.predict_day import prepare
    from crm_pipeline.identity.config import load_identity_config
    from crm_pipeline.identity.probabilistic import match_people
    from crm_pipeline.identity.resolve import resolve_identities
    from crm_pipeline.warehouse.engine import make_engine

    ready = folder / f"drop_{as_of}_{rows}.duckdb"
    if ready.exists():
        return ready
    copied = folder / "landing"
    shutil.rmtree(copied, ignore_errors=True)
    for source in landing.rglob("*"):
        if source.is_file():
            target = copied / source.relative_to(landing)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
    if rows:
        write_drop(copied, rows, as_of)
    preparing = folder / "preparing.duckdb"
    prepare(warehouse, copied, as_of, preparing, ["ingest", "quality"])
    # identity as its asset resolves it (the asset's group also builds the profiles, which are timed here)
    engine = make_engine(f"duckdb:///{preparing}")
    resolve_identities(engine, as_of=as_of, config=load_identity_config(), find_pairs=match_people)
    engine.dispose()
    preparing.rename(ready)
    return ready


def drop_build(ready: Path, as_of: dt.date, full_refresh: bool, top: int) -> None:
    """Run in a child process: one build of a copy of `ready` (kept beside it for the comparison)."""
    from bench._common import slowest_statements, statement_clock
    from crm_pipeline.warehouse.engine import make_engine

    copy = ready.with_name(f"run_{'full' if full_refresh else 'drop'}.duckdb")
    shutil.copyfile(ready, copy)
    engine = make_engine(f"duckdb:///{copy}")
    spent = statement_clock(engine)
    cpu = time.process_time()
    figures, steps = timed_build(engine, as_of, full_refresh=full_refresh)
    cpu = time.process_time() - cpu
    engine.dispose()
    print(f"  {figures['mode']}: {figures['seconds'] + figures['step_seconds']['checkpoint']:.2f} s, CPU {cpu:.2f} s "
          f"(1-min load {os.getloadavg()[0]:.1f}); contacts recomputed {figures['contacts_recomputed']:,} (rebuilt "
          f"whole {figures['contacts_rebuilt_whole']:,}, browse only {figures['contacts_browse_only']:,}); "
          f"{figures['reason']}")
    print(f"    CPU per step {steps}")
    print(f"    wall per step {figures['step_seconds']}")
    for line in slowest_statements(spent, top, width=150):
        print(f"    {line}")


def time_drop(args) -> None:
    folder = args.keep or Path("/tmp/bench_profiles_drop")
    folder.mkdir(parents=True, exist_ok=True)
    ready = prepared_drop(args.drop, args.landing, args.as_of, args.drop_rows, folder)
    print(f"== profile build of a {args.drop_rows:,}-row drop on {args.as_of}, on copies of {ready}", flush=True)
    child = [sys.executable, __file__, "--drop-build", str(ready), args.as_of.isoformat(), str(args.top)]
    for _ in range(args.repeat):
        subprocess.run(child, check=True)
    if args.full:
        subprocess.run([*child, "--full"], check=True)
        print(f"  incremental vs full refresh, rows differing per table: "
              f"{differences(ready.with_name('run_drop.duckdb'), ready.with_name('run_full.duckdb'))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drop-share", type=float, default=0.01, help="the drop's web events as a share of all rows")
    parser.add_argument("--drop-touches", type=float, default=0.14, help="the share of contacts the drop touches")
    parser.add_argument("--keep", type=Path, help="folder for the DuckDB files (default: a temporary one)")
    parser.add_argument("--warehouse", type=Path, help="a built warehouse: time a full rebuild of a copy of it")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory limit of --warehouse's rebuild")
    parser.add_argument("--drop", type=Path, help="a built warehouse: time the profile build of a drop on it")
    parser.add_argument("--landing", type=Path, help="--drop's landing folder (linked, never written)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, help="--drop's day (that of its last build: a "
                        "same-day drop as bench/e2e.py's)")
    parser.add_argument("--drop-rows", type=int, default=44_991,
                        help="--drop's web events (1%% of the 100k set; 0: none, a new day when --as-of is one)")
    parser.add_argument("--repeat", type=int, default=2, help="--drop's incremental builds, each on a fresh copy")
    parser.add_argument("--top", type=int, default=10, help="the slowest statements printed (--warehouse, --drop)")
    parser.add_argument("--build-only", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--drop-build", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true",
                        help="with --drop, also a full refresh of the same state, compared with the drop's build")
    args = parser.parse_args()
    if args.build_only:
        build_only(*args.build_only, full_refresh=args.full)
        return
    if args.drop_build:
        drop_build(Path(args.drop_build[0]), dt.date.fromisoformat(args.drop_build[1]), args.full,
                   int(args.drop_build[2]))
        return
    if args.drop:
        time_drop(args)
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_profiles_"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.warehouse:
        try:
            rebuild_copy(args.warehouse, folder, args.memory_limit, args.top)
        finally:
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        for contacts in args.contacts:
            load_seen.clear()
            run(contacts, args.seed, folder, args.drop_share, args.drop_touches)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
