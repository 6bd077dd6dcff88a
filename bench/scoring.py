"""Benchmark: engagement scores, preferences, preferred channel and lifecycle for 1,000,000 contacts.

Usage: PYTHONPATH=. python bench/scoring.py [--contacts 1000000] [--db PATH]

Timed runs, in order: the first (full) run as of AS_OF; the same day again with nothing new; a new day
with no new file; a small drop on that day (one new product view for 1% of the contacts, written to the
staged web events, identity_map, the timeline and contact_daily as the earlier stages would); a full
refresh of that state. Each prints seconds, CPU seconds, the contacts whose daily aggregates it
recomputed and its steps, and the rows it wrote per table (by difference: the tables are kept as validity
intervals, so a new day with nothing new writes only the rows of the contacts whose values moved).

Generating a million people with `synth` and running them through ingestion, quality and identity
would take far longer than the stage measured here, so this script builds the scoring stage's
inputs directly in DuckDB with SQL (seeded by hashing, so every run builds the same rows): a
timeline-shaped table (about 22 interactions per contact over two years, 3 brands, a third of the
contacts on two brands, 1% of the rows after as_of, which must be ignored), the staged orders behind
its order rows (about 2.5 per contact, 2 lines each, web / store / app, 10% cancelled or refunded),
the staged web events behind its web rows (with skus), a catalogue of 6,000 products, and one
profile_360 row per contact and per contact and brand (so the step that fills the profile's scoring
columns is timed too). Not timed: building those. Timed: `run_scoring` per step (scratch, engagement,
channel, preferences, lifecycle, profile_360) and the 90-day lifecycle funnel the asset and
`crm-pipeline funnel` compute from history. Prints seconds per part, the total, the CPU seconds of the
process (DuckDB's threads included; on a shared machine wall time also counts waiting for a core, so
CPU / 2 is what two free cores need) and peak memory. `--db F --reuse` scores inputs built before.

On bench/e2e.py's built warehouse instead (CPU seconds per step, the fair clock on a shared machine):

    PYTHONPATH=. python bench/scoring.py --root /tmp/e2e100k --people 100000 --as-of 2025-07-01 [--repeat 2]

times, each on a fresh copy (the warehouse is never written): the first run (the copy's scoring tables dropped,
as on bench/e2e.py's fresh warehouse) and a 1% drop on `--as-of` (a new web-events file of 1% of the rows, as
bench/e2e.py's drop, run through ingest, quality, identity and profiles once on a copy cached under --scratch;
scoring's last run was of the same day, as in bench/e2e.py). Each prints CPU seconds per step of `run_scoring`
(`other`: what no step covers, the commit among it) and of the funnel the asset reads after it, then the
slowest SQL statements of the last run (wall seconds, `--statements`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import cpu_seconds, peak_rss_mb, slowest_statements, statement_clock  # noqa: E402
from crm_pipeline.profiles.sql import as_of_params  # noqa: E402
from crm_pipeline.scoring import run as scoring_run  # noqa: E402
from crm_pipeline.scoring.config import load_scoring_config  # noqa: E402
from crm_pipeline.scoring.lifecycle import funnel, stage_counts  # noqa: E402
from crm_pipeline.scoring.run import run_scoring  # noqa: E402
from crm_pipeline.step_clock import StepClock  # noqa: E402
from crm_pipeline.warehouse.engine import make_engine  # noqa: E402
from crm_pipeline.warehouse.identity_schema import create_identity_tables  # noqa: E402
from crm_pipeline.warehouse.profile_schema import create_profile_tables  # noqa: E402
from crm_pipeline.warehouse.quality_schema import create_quality_tables  # noqa: E402

AS_OF = dt.date(2025, 6, 30)
DAYS = 730
SECONDS = DAYS * 86_400
BRANDS = "['alpha', 'beta', 'gamma']"
TYPES = "['email_send', 'email_send', 'email_send', 'email_open', 'email_open', 'email_click', 'page_view', " \
        "'page_view', 'product_view', 'product_view', 'product_view', 'add_to_cart', 'search', 'checkout', " \
        "'subscribe', 'unsubscribe', 'email_bounce', 'page_view', 'product_view', 'email_open']"


DAILY_SQL = """
    INSERT INTO contact_daily (contact_id, brand, day, record_count, order_count, purchase_count, revenue,
                               email_send_count, email_open_count, email_click_count, email_opt_out_count,
                               web_event_count, product_view_count)
    SELECT contact_id, brand, CAST(occurred_at AS DATE), COUNT(*), 0, 0, 0, 0, 0, 0, 0, 0, 0
    FROM timeline WHERE {where} GROUP BY contact_id, brand, CAST(occurred_at AS DATE)"""


def small_drop(engine: sa.Engine, day: dt.date, every: int = 100) -> int:
    """One new product view at noon of `day` for every `every`-th contact, as a drop's stages leave it: a staged
    web event of a new file, its identity_map row, its timeline row, its contact_daily day and the build's log."""
    at = f"TIMESTAMPTZ '{day.isoformat()} 12:00:00+00'"
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        db.execute(f"""
            CREATE TEMP TABLE dropped AS
            SELECT contact_id, MIN(brand) AS brand, 'D-' || contact_id AS event_id
            FROM timeline WHERE hash(contact_id) % {every} = 0 GROUP BY contact_id""")
        db.execute(f"""
            INSERT INTO stg_web_events (_file_id, _row_number, _brand, _row_hash, event_id, cookie_id, event_type, sku,
                                        occurred_at)
            SELECT 2, CAST(row_number() OVER () AS INTEGER), brand, row_number() OVER (), event_id, 'ck',
                   'product_view', 'SKU7', {at} FROM dropped""")
        db.execute("""
            INSERT INTO identity_map (brand, entity, source_key, node_id, contact_id, match_type, _file_id, _row_number)
            SELECT brand, 'web_events', event_id, contact_id, contact_id, 'deterministic', 2,
                   CAST(row_number() OVER () AS INTEGER) FROM dropped""")
        db.execute(f"""
            INSERT INTO timeline (contact_id, event_number, brand, occurred_at, event_type, detail, source_entity,
                                  source_key, as_of)
            SELECT contact_id, 100000, brand, {at}, 'product_view', 'viewed SKU7', 'web_events', event_id,
                   (SELECT MAX(as_of) FROM timeline) FROM dropped""")
        db.execute(DAILY_SQL.format(where="source_key LIKE 'D-%'"))
        # Scoring redoes what the profile builds since its last run redid: log the drop as a profile build does.
        db.execute("""
            INSERT INTO profile_builds (build_number, as_of, mode, reason, contacts_recomputed, rules_key)
            SELECT COALESCE(MAX(build_number), 0) + 1, (SELECT MAX(as_of) FROM timeline), 'incremental', 'bench drop',
                   (SELECT COUNT(*) FROM dropped), '' FROM profile_builds""")
        # since_day: the drop's events fall on `day`, so scoring redoes the contacts' days from it on, as after a build
        db.execute(f"""
            INSERT INTO profile_changes (build_number, contact_id, reason, since_day)
            SELECT (SELECT MAX(build_number) FROM profile_builds), contact_id, 'records',
                   {(day - dt.date(1970, 1, 1)).days} FROM dropped""")
        n = db.execute("SELECT COUNT(*) FROM dropped").fetchone()[0]
        db.execute("DROP TABLE dropped")
        raw.commit()
    finally:
        raw.close()
    return n


def _h(*parts: str) -> str:
    """A deterministic pseudo-random non-negative integer from the parts (DuckDB's hash)."""
    return f"CAST(hash({', '.join(parts)}) % 1000000007 AS BIGINT)"


def build_inputs(engine: sa.Engine, contacts: int) -> dict:
    """The scoring inputs for `contacts` contacts, built in DuckDB with SQL (see the module docstring)."""
    end = as_of_params(AS_OF)["as_of_end"]
    create_quality_tables(engine)
    create_identity_tables(engine)
    create_profile_tables(engine)
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        db.execute(f"""
            CREATE TEMP TABLE people AS
            SELECT i, 'C' || CAST(i AS VARCHAR) AS contact_id,
                   {BRANDS}[1 + i % 3] AS brand1,
                   CASE WHEN {_h('i', "'second'")} % 3 = 0 THEN {BRANDS}[1 + (i + 1) % 3] END AS brand2
            FROM range({contacts}) t(i)""")
        # interactions other than orders: 0..40 per contact (about 19.5 on average)
        db.execute(f"""
            CREATE TEMP TABLE web_and_email AS
            SELECT p.contact_id,
                   CASE WHEN p.brand2 IS NOT NULL AND {_h('p.i', 'j', "'b'")} % 2 = 0 THEN p.brand2 ELSE p.brand1 END
                       AS brand,
                   {TYPES}[1 + {_h('p.i', 'j', "'t'")} % 20] AS event_type,
                   TIMESTAMPTZ '{end.isoformat()}' - to_seconds(CAST({_h('p.i', 'j', "'s'")} % {SECONDS}
                       AS BIGINT) - {int(SECONDS * 0.01)}) AS occurred_at,
                   'E' || CAST(p.i AS VARCHAR) || '-' || CAST(j AS VARCHAR) AS event_id,
                   {_h('p.i', 'j', "'k'")} % 2000 AS sku_number
            FROM people p, range(40) r(j)
            WHERE j < {_h('p.i', "'n'")} % 40""")
        db.execute(f"""
            CREATE TEMP TABLE orders AS
            SELECT p.contact_id,
                   CASE WHEN p.brand2 IS NOT NULL AND {_h('p.i', 'k', "'ob'")} % 2 = 0 THEN p.brand2 ELSE p.brand1 END
                       AS brand,
                   'O' || CAST(p.i AS VARCHAR) || '-' || CAST(k AS VARCHAR) AS order_id,
                   TIMESTAMPTZ '{end.isoformat()}' - to_seconds(CAST({_h('p.i', 'k', "'os'")} % {SECONDS}
                       AS BIGINT) - {int(SECONDS * 0.01)}) AS ordered_at,
                   ['delivered', 'delivered', 'delivered', 'shipped', 'delivered', 'placed', 'delivered',
                    'delivered', 'cancelled', 'refunded'][1 + {_h('p.i', 'k', "'st'")} % 10] AS status,
                   ['web', 'web', 'store', 'app'][1 + {_h('p.i', 'k', "'ch'")} % 4] AS channel,
                   p.i, k
            FROM people p, range(5) r(k)
            WHERE {_h('p.i', 'k', "'o'")} % 2 = 0""")
        db.execute(f"""
            INSERT INTO stg_products (_file_id, _row_number, _brand, _row_hash, sku, name, category, brand, price)
            SELECT 1, CAST(n AS INTEGER), b, n, 'SKU' || CAST(n % 2000 AS VARCHAR), 'Product',
                   ['Women', 'Men', 'Kids', 'Home', 'Beauty', 'Sport'][1 + n % 6] || ' > Things',
                   ['Acme', 'Zed', NULL][1 + n % 3], CAST(5 + n % 2000 / 10.0 AS DECIMAL(18, 2))
            FROM range(2000) r(n), (SELECT UNNEST({BRANDS}) AS b) brands""")
        db.execute(f"""
            INSERT INTO stg_orders (_file_id, _row_number, _brand, _row_hash, order_id, ordered_at, status, currency,
                                    subtotal, discount_total, total, channel)
            SELECT 1, CAST(row_number() OVER () AS INTEGER), brand, row_number() OVER (), order_id, ordered_at,
                   status, 'USD',
                   100, CASE WHEN {_h('i', 'k', "'d'")} % 4 = 0 THEN 10 ELSE 0 END, 90, channel
            FROM orders""")
        db.execute(f"""
            INSERT INTO stg_order_items (_file_id, _row_number, _brand, _row_hash, order_id, line_number, sku,
                                         quantity, unit_price)
            SELECT 1, CAST(row_number() OVER () AS INTEGER), brand, row_number() OVER (), order_id,
                   CAST(line AS INTEGER),
                   'SKU' || CAST({_h('i', 'k', 'line')} % 2000 AS VARCHAR), 1 + CAST(line AS INTEGER) % 2, 50
            FROM orders, range(1, 3) r(line)""")
        db.execute("""
            INSERT INTO stg_web_events (_file_id, _row_number, _brand, _row_hash, event_id, cookie_id, event_type,
                                        sku, occurred_at)
            SELECT 1, CAST(row_number() OVER () AS INTEGER), brand, row_number() OVER (), event_id, 'ck', event_type,
                   CASE WHEN event_type IN ('product_view', 'add_to_cart')
                        THEN 'SKU' || CAST(sku_number AS VARCHAR) END,
                   occurred_at
            FROM web_and_email
            WHERE event_type IN ('page_view', 'product_view', 'add_to_cart', 'search', 'checkout')""")
        # The timeline as the profile build writes it, as of AS_OF + 7 (so rows after AS_OF exist and must be cut).
        db.execute(f"""
            INSERT INTO timeline (contact_id, event_number, brand, occurred_at, event_type, detail, source_entity,
                                  source_key, as_of)
            SELECT contact_id, row_number() OVER (PARTITION BY contact_id ORDER BY occurred_at), brand, occurred_at,
                   event_type, event_type, source_entity, source_key, DATE '{AS_OF + dt.timedelta(days=7)}'
            FROM (
                SELECT contact_id, brand, occurred_at, event_type,
                       CASE WHEN event_type LIKE 'email%' OR event_type IN ('subscribe', 'unsubscribe')
                            THEN 'email_events' ELSE 'web_events' END AS source_entity, event_id AS source_key
                FROM web_and_email
                UNION ALL
                SELECT contact_id, brand, ordered_at, 'order', 'orders', order_id FROM orders
            ) e
            WHERE occurred_at < TIMESTAMPTZ '{end.isoformat()}' + INTERVAL 7 DAY""")
        # identity_map (one row per source record) and contact_daily (one row per contact, brand and day), which an
        # incremental run reads to find touched contacts and the contacts a new day brings records to.
        db.execute("""
            INSERT INTO identity_map (brand, entity, source_key, node_id, contact_id, match_type, _file_id, _row_number)
            SELECT brand, source_entity, source_key, contact_id, contact_id, 'deterministic', 1,
                   CAST(row_number() OVER () AS INTEGER)
            FROM timeline""")
        db.execute(DAILY_SQL.format(where="1 = 1"))
        # profile_360 of the same day, so the scores are attached to it (the last timed step).
        figures0 = ", ".join(["0"] * 10)
        db.execute(f"""
            INSERT INTO profile_360 (contact_id, as_of, brands, brand_count, order_count, revenue,
                                     purchased_unit_count, returned_unit_count, email_open_30d_count,
                                     email_open_90d_count, email_open_365d_count, email_click_30d_count,
                                     email_click_90d_count, email_click_365d_count, email_consent)
            SELECT contact_id, DATE '{AS_OF}', brand1, 1, {figures0}, false FROM people""")
        db.execute(f"""
            INSERT INTO profile_360_brand (contact_id, brand, as_of, order_count, revenue, purchased_unit_count,
                                           returned_unit_count, email_open_30d_count, email_open_90d_count,
                                           email_open_365d_count, email_click_30d_count, email_click_90d_count,
                                           email_click_365d_count, email_consent)
            SELECT contact_id, brand1, DATE '{AS_OF}', {figures0}, false FROM people
            UNION ALL
            SELECT contact_id, brand2, DATE '{AS_OF}', {figures0}, false FROM people WHERE brand2 IS NOT NULL""")
        counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("timeline", "stg_orders", "stg_order_items", "stg_web_events", "stg_products",
                            "profile_360", "profile_360_brand")}
        for t in ("people", "web_and_email", "orders"):
            db.execute(f"DROP TABLE {t}")
        raw.commit()
    finally:
        raw.close()
    return counts


class _CpuClock(StepClock):
    """The run's step clock, also keeping each step's CPU seconds (DuckDB's threads included)."""
    runs: list["_CpuClock"] = []

    def __init__(self) -> None:
        super().__init__()
        self.cpu: dict[str, float] = {}
        _CpuClock.runs.append(self)

    def run(self, name, fn, *args):
        started = time.process_time()
        try:
            return super().run(name, fn, *args)
        finally:
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - started


def score_as_the_asset(engine: sa.Engine, as_of: dt.date) -> tuple[dict, dict[str, float]]:
    """`run_scoring` and the funnel and stage counts the scoring asset reads after it; returns the run's figures
    and CPU seconds per step (`funnel` the asset's reads, `other` what no step covers, `total`)."""
    config = load_scoring_config()
    started = time.process_time()
    with mock.patch.object(scoring_run, "StepClock", _CpuClock):
        result = run_scoring(engine, as_of=as_of, config=config)
    cpu = dict(_CpuClock.runs[-1].cpu)
    ran = time.process_time() - started
    with engine.connect() as conn:
        funnel(conn, config, as_of=as_of, days=config.funnel_days, from_aggregates=True)
        stage_counts(conn, as_of)
    cpu["funnel"] = time.process_time() - started - ran
    cpu["other"] = ran - sum(v for k, v in cpu.items() if k != "funnel")
    cpu["total"] = time.process_time() - started
    return result, cpu


def _first_run_copy(warehouse: Path, copy: Path) -> None:
    """A copy of `warehouse` without its scoring tables, and profiles without scores: what a first run finds."""
    from crm_pipeline.profiles.profile360 import _PAIRS
    from crm_pipeline.warehouse.scoring_schema import SCORING_TABLES, SPANNED

    shutil.copy(warehouse, copy)
    engine = make_engine(f"duckdb:///{copy}")
    with engine.begin() as conn:
        for table in SPANNED:
            conn.execute(sa.text(f"DROP VIEW IF EXISTS {table.name}"))
        for table in SCORING_TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))
        for table in ("profile_360", "profile_360_brand"):
            conn.execute(sa.text(f"UPDATE {table} SET {', '.join(f'{c} = NULL' for c, _ in _PAIRS)}"))
    engine.dispose()


def _dropped_warehouse(root: Path, people: int, seed: int, as_of: dt.date, scratch: Path) -> Path:
    """bench/e2e.py's warehouse after a 1% drop on `as_of` run through the stages before scoring (made once)."""
    from bench._common import data_folder
    from bench._e2e_data import total_rows, write_drop
    from bench.e2e import _fresh_run_dir
    from bench.predict_day import prepare

    out = scratch / f"dropped_{as_of}.duckdb"
    if out.exists():
        return out
    run_dir = root / f"e2e_{people}_seed{seed}"
    copy = scratch / "run"
    _fresh_run_dir(run_dir, copy)  # the landing as hard links: the drop adds a file to the copy only
    write_drop(copy / "landing", round(total_rows(data_folder(root, people, seed)) * 0.01), as_of)
    prepare(run_dir / "warehouse.duckdb", copy / "landing", as_of, scratch / "preparing.duckdb",
            ["ingest", "quality", "identity"])
    (scratch / "preparing.duckdb").rename(out)
    return out


def time_e2e_warehouse(args) -> None:
    """CPU seconds per step of a first run and of a 1% drop on copies of bench/e2e.py's warehouse."""
    warehouse = args.root / f"e2e_{args.people}_seed{args.seed}" / "warehouse.duckdb"
    args.scratch.mkdir(parents=True, exist_ok=True)
    dropped = _dropped_warehouse(args.root, args.people, args.seed, args.as_of, args.scratch)
    print(f"load {os.getloadavg()[0]:.1f} (1 min)")
    copy = args.scratch / "copy.duckdb"
    for name in ("first run", "1% drop"):
        for i in range(args.repeat):
            if name == "first run":
                _first_run_copy(warehouse, copy)
            else:
                shutil.copy(dropped, copy)
            engine = make_engine(f"duckdb:///{copy}")
            spent = statement_clock(engine)
            result, cpu = score_as_the_asset(engine, args.as_of)
            engine.dispose()
            steps = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if k != "total")
            print(f"{name} #{i + 1} ({result['mode']}, recomputed {result['contacts_recomputed']:,}, rederived "
                  f"{result['contacts_rederived']:,}): CPU {cpu['total']:.2f} s; {steps}", flush=True)
        for line in slowest_statements(spent, args.statements):
            print(f"  {line}")
    copy.unlink(missing_ok=True)
    print(f"load {os.getloadavg()[0]:.1f} (1 min)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, help="bench/e2e.py's --root: time on copies of its built warehouse")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2025, 7, 1))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/scoring"))
    parser.add_argument("--statements", type=int, default=8, help="the slowest SQL statements shown (wall seconds)")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="DuckDB file (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="score the inputs already in --db (built before)")
    parser.add_argument("--drop-every", type=int, default=100,
                        help="the drop touches every N-th contact (7: about bench/e2e.py's drop, 14%% of them)")
    args = parser.parse_args()
    if args.root:
        time_e2e_warehouse(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "scoring.duckdb"
        if not (args.reuse and path.exists()):
            path.unlink(missing_ok=True)
        engine = make_engine(f"duckdb:///{path}")
        started = time.perf_counter()
        if args.reuse and path.exists():
            with engine.connect() as conn:
                counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                          for t in ("timeline", "stg_orders", "stg_order_items", "stg_web_events", "stg_products",
                                    "profile_360", "profile_360_brand")}
        else:
            counts = build_inputs(engine, args.contacts)
        print(f"contacts {args.contacts:,}; inputs ready in {time.perf_counter() - started:.1f} s (not timed)")
        for table, n in counts.items():
            print(f"  {table:<18} {n:>12,} rows")
        config = load_scoring_config()
        runs = []

        def timed(name: str, as_of: dt.date, **kwargs) -> dict:
            cpu0, started = cpu_seconds(), time.perf_counter()
            result = run_scoring(engine, as_of=as_of, config=config, **kwargs)
            runs.append((name, time.perf_counter() - started, cpu_seconds() - cpu0, result))
            return result

        result = timed("full (first run)", AS_OF)
        timed("same day, nothing new", AS_OF)
        timed("new day, no new file", AS_OF + dt.timedelta(days=1))
        dropped = small_drop(engine, AS_OF + dt.timedelta(days=1), args.drop_every)
        timed(f"small drop ({dropped:,} contacts)", AS_OF + dt.timedelta(days=1))
        timed("full refresh, same state", AS_OF + dt.timedelta(days=1), full_refresh=True)
        cpu0, started = cpu_seconds(), time.perf_counter()
        with engine.connect() as conn:
            moves = funnel(conn, config, as_of=AS_OF, days=90)
        funnel_seconds, funnel_cpu = time.perf_counter() - started, cpu_seconds() - cpu0
        engine.dispose()
    # recomputed: contacts whose daily aggregates were rewritten; rederived: contacts whose preferences, channel
    # and lifecycle rows were computed (the rest carried forward); engagement is derived for everyone every run.
    print(f"\n{'run':<30} {'seconds':>8} {'CPU s':>7} {'recomputed':>11} {'rederived':>10}  steps (s)")
    for name, seconds, cpu, figures in runs:
        steps = ", ".join(f"{k} {v:.1f}" for k, v in figures["step_seconds"].items())
        print(f"{name:<30} {seconds:8.2f} {cpu:7.1f} {figures['contacts_recomputed']:>11,} "
              f"{figures['contacts_rederived']:>10,}  {steps}")
    for name, _, _, figures in runs:
        if figures["rows_written"]:  # every run writes only the rows that differ
            print(f"rows written by difference, {name}: {figures['rows_written']}")
    print(f"funnel, last 90 days, from history (s): {funnel_seconds:.2f}   (CPU {funnel_cpu:.1f} s)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"engagement rows {result['engagement_rows']:,}; contacts scored {result['contacts_scored']:,}; "
          f"profiles updated {result['profiles_updated']:,}")
    print(f"growth bands {result['growth_bands']}")
    print(f"preferred channels {result['preferred_channels']}")
    print(f"lifecycle stages {result['lifecycle_stages']}")
    print(f"funnel moves (90 days, across brands): {int(moves['contacts'].sum()):,} in {len(moves)} kinds")
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
