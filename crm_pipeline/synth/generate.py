"""`generate`: a deterministic synthetic retail landing folder plus the ground truth behind it.

Writes `out/landing/<brand>/<entity>/<file>` per the data contract and `out/truth/`
(records.csv, bad_rows.csv, exact_duplicates.csv, people.csv, and the buying behaviour behind the
orders: dropout.csv and channels.csv, see `behaviour`). Same seed and end date give
the same bytes; all activity lies in the `days` before `end_date` (only planted
future_timestamp rows lie after it). See the module docstrings of `timestamps`,
`variations` and `writers` for the exact text formats.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from crm_pipeline.synth.bad_rows import eligible, plant
from crm_pipeline.synth.behaviour import BrandBehaviour, write_behaviour
from crm_pipeline.synth.browsing import build_web
from crm_pipeline.synth.channel_mix import person_mixes
from crm_pipeline.synth.columns import stream
from crm_pipeline.synth.commerce import BrandContext, build_customers, build_orders, order_id_for, stamp_receipts
from crm_pipeline.synth.email_activity import build_email
from crm_pipeline.synth.landed import LandedFile
from crm_pipeline.synth.memberships import brand_names, build_memberships, till_brand
from crm_pipeline.synth.population import build_population
from crm_pipeline.synth.products import build_catalogue
from crm_pipeline.synth.timestamps import DAY, epoch_seconds
from crm_pipeline.synth.writers import write_landed, write_truth

BAD_ROW_SHARE = 0.01
OFFSET_SHARE = {0: 0.0, 1: 0.2}   # share of ISO timestamps with a local offset, per brand (default 0.1)


def build_files(people: int, brands: int, days: int, seed: int, end_date: dt.date):
    """All landed files in memory (with bad rows planted), the population behind them, and a writer of the
    behaviour truth (dropout, channel mix) into a folder."""
    t_end = epoch_seconds(end_date)
    t_start = t_end - days * DAY
    pop = build_population(people, stream(seed, "population"), t_start, t_end)
    mem = build_memberships(people, brands, stream(seed, "memberships"), t_start, t_end)
    mixes = person_mixes(seed, people)
    files: list[LandedFile] = []
    orphan_makers = {}
    behaviour = []
    for b, brand in enumerate(brand_names(brands)):
        ctx = BrandContext(b, brand, pop, mem, mem.of_brand(b), t_start, t_end, seed,
                           b == till_brand(brands), OFFSET_SHARE.get(b, 0.1), mixes)
        catalogue, product_file = build_catalogue(b, brand, ctx.rng("catalogue"), t_end)
        accounts, customer_files = build_customers(ctx)
        orders, order_files, item_files = build_orders(ctx, accounts, catalogue)
        behaviour.append(BrandBehaviour(ctx.rows, orders.dropout_at, orders.purchase_rate))
        email_files, clicks = build_email(ctx, accounts, orders)
        stamp_receipts(orders, order_files, next(f for f in email_files if f.entity == "subscribers"))
        web_files = build_web(ctx, accounts, orders, clicks, catalogue)
        files += [product_file, *customer_files, *order_files, *item_files, *email_files, *web_files]
        orphan_makers[brand] = _orphan_ids(ctx)

    total = sum(f.n_rows for f in files)
    planted = sum(f.n_rows for f in files if eligible(f))
    rate = min(0.035, BAD_ROW_SHARE * total / max(planted, 1))
    for f in files:
        if eligible(f):
            plant(f, rate, stream(seed, "bad_rows", f.path), t_end, orphan_makers[f.brand])

    def write_behaviour_truth(truth: Path) -> None:
        write_behaviour(mem, pop, mixes, brand_names(brands), behaviour, truth)

    return files, pop, write_behaviour_truth


def _orphan_ids(ctx: BrandContext):
    """Order ids the brand never issued (counting down from the top of its id range)."""
    used = [0]

    def make(k: int):
        top = 99_999_999 if ctx.b == 1 else 999_999_999
        seq = top - used[0] - np.arange(k)
        used[0] += k
        return order_id_for(ctx, seq)

    return make


def _stamp_export_time(landing: Path, end_date: dt.date) -> None:
    """Date the files as exported at the end of `end_date` (or now, if that is later than now).

    The quality stage judges "future" timestamps against the day a file was written, so a
    data set generated for a past end date still has its planted future rows caught.
    """
    end = dt.datetime.combine(end_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc).timestamp()
    stamp = min(end, time.time())
    for path in landing.rglob("*"):
        if path.is_file():
            os.utime(path, (stamp, stamp))


def generate(out: Path, people: int = 10_000, brands: int = 3, days: int = 730, seed: int = 7, *,
             end_date: dt.date | str) -> dict:
    """Generate the landing folder and truth under `out`; returns a summary of what was written."""
    started = time.perf_counter()
    if isinstance(end_date, str):
        end_date = dt.date.fromisoformat(end_date)
    if people < 10 or brands < 1 or days < 30:
        raise ValueError("generate needs people >= 10, brands >= 1 and days >= 30")
    out = Path(out)
    landing, truth = out / "landing", out / "truth"
    for folder in (landing, truth):   # a previous run's files would no longer match the truth
        if folder.exists():
            shutil.rmtree(folder)
    files, pop, write_behaviour_truth = build_files(people, brands, days, seed, end_date)
    # Landed files and truth files are written side by side (Arrow's writers release the GIL).
    with ThreadPoolExecutor(max_workers=1) as pool:
        truth_written = pool.submit(write_truth, files, pop, truth)
        sizes = [write_landed(f, landing) for f in files]
        counts = truth_written.result()
    write_behaviour_truth(truth)
    _stamp_export_time(landing, end_date)
    rows: dict[str, int] = {}
    for f in files:
        rows[f.entity] = rows.get(f.entity, 0) + f.n_rows
    return {
        "out": str(out), "files": len(files), "bytes": int(sum(sizes)), "people": people, "brands": brands,
        "rows": rows, "rows_total": int(sum(rows.values())), "bad_rows": counts["bad_rows"],
        "exact_duplicates": counts["exact_duplicates"], "seconds": round(time.perf_counter() - started, 2),
    }
