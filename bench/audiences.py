"""Benchmark: every default audience (across brands and per brand) over 1,000,000 synthetic profiles.

Usage: PYTHONPATH=. python bench/audiences.py [--contacts 1000000] [--days 60] [--db PATH | --url URL]
Prints generation and load time, audience time, members written and peak memory (max RSS of
this process, DuckDB included). The first day is timed on an empty history (the full run); then `--days`
earlier snapshots are stored (copies of that day, written in SQL) and one more day is timed (a new day),
then its re-run with nothing new, then a 1% drop: a purchase today for every 100th contact, re-run the same
day as a drop's run does. A re-run writes only the rows that changed ("rows written").
"""

from __future__ import annotations

import argparse
import os
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.audiences.materialize import materialize_audiences
from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.profile_schema import create_profile_tables, profile_360, profile_360_brand

AS_OF = dt.date(2025, 6, 30)
BRANDS = ("brand_a", "brand_b", "brand_c")
_COUNTS = [f"email_{k}_{n}d_count" for k in ("open", "click") for n in (30, 90, 365)]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dates(rng, n, missing_share, max_days):
    days = rng.integers(0, max_days, n)
    values = (np.datetime64(AS_OF) - days.astype("timedelta64[D]"))
    mask = rng.random(n) < missing_share
    return pa.array(values.astype("datetime64[D]"), pa.date32(), mask=mask)


def _times(rng, n, missing_share, max_days):
    secs = rng.integers(0, max_days * 86400, n)
    end = np.datetime64(dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time()), "s")
    values = end - secs.astype("timedelta64[s]")
    mask = rng.random(n) < missing_share
    return pa.array(values, pa.timestamp("s", tz="UTC"), mask=mask).cast(pa.timestamp("us", tz="UTC"))


def _figures(rng, n) -> dict:
    orders = rng.choice([0, 0, 0, 1, 1, 2, 3, 5], n)
    has = orders > 0
    last = _dates(rng, n, 0.0, 730)
    out = {
        "order_count": pa.array(orders, pa.int64()),
        "revenue": pa.array(orders * 60.0),
        "first_order_date": pa.array(last.to_numpy(zero_copy_only=False), pa.date32(), mask=~has),
        "last_order_date": pa.array(last.to_numpy(zero_copy_only=False), pa.date32(), mask=~has),
        "purchased_unit_count": pa.array(orders * 2, pa.int64()),
        "returned_unit_count": pa.array(np.zeros(n, dtype=np.int64)),
        "last_open_at": _times(rng, n, 0.4, 365),
        "last_click_at": _times(rng, n, 0.6, 365),
        "last_browse_at": _times(rng, n, 0.5, 365),
    }
    for c in _COUNTS:
        out[c] = pa.array(rng.integers(0, 4, n), pa.int64())
    return out


def generate(engine, contacts: int, seed: int = 7) -> int:
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.arange(contacts).astype(str))
    # each contact is at each brand with probability 0.55 (at least one brand)
    member = rng.random((contacts, len(BRANDS))) < 0.55
    member[~member.any(axis=1), 0] = True
    rows, idx = [], np.arange(contacts)
    for b, brand in enumerate(BRANDS):
        sel = idx[member[:, b]]
        n = len(sel)
        figs = _figures(rng, n)
        status = rng.choice(np.array(["subscribed", "subscribed", "subscribed", "unsubscribed", None], dtype=object), n)
        consent = (status == "subscribed") & (rng.random(n) > 0.05)
        rows.append(pa.table({"contact_id": pa.array(ids[sel]), "brand": pa.array([brand] * n), "as_of":
                              pa.array([AS_OF] * n, pa.date32()), **figs,
                              "subscription_status": pa.array(status, pa.string()),
                              "subscribed_date": pa.array(_dates(rng, n, 0.0, 900).to_numpy(zero_copy_only=False),
                                                          pa.date32(), mask=(status == None)),  # noqa: E711
                              "email_consent": pa.array(consent)}))
    brand_table = pa.concat_tables(rows)
    overall = {
        "contact_id": pa.array(ids), "as_of": pa.array([AS_OF] * contacts, pa.date32()),
        "email": pa.array(np.char.add(np.char.lower(ids), "@example.com")),
        "phone": pa.array(np.char.add("+1415555", np.char.zfill((np.arange(contacts) % 10000).astype(str), 4))),
        "first_name": pa.array(["Ann"] * contacts), "last_name": pa.array(["Lee"] * contacts),
        "brands": pa.array(["x"] * contacts), "brand_count": pa.array(member.sum(axis=1), pa.int64()),
        **_figures(rng, contacts),
        "email_consent": pa.array(rng.random(contacts) > 0.2),
    }
    with engine.begin() as conn:
        insert_arrow(conn, profile_360, pa.table(overall))
        insert_arrow(conn, profile_360_brand, brand_table)
    return brand_table.num_rows


def _timed(engine, as_of: dt.date, label: str, contacts: int):
    start = time.perf_counter()
    summary = materialize_audiences(engine, as_of=as_of)
    seconds = time.perf_counter() - start
    members = int(summary["size"].sum())
    written = summary.attrs["members_written"]
    print(f"{label}: {len(summary)} audiences, {members:,} memberships in {seconds:.1f} s "
          f"({contacts / seconds:,.0f} contacts/s); rows written "
          f"{'whole day' if written is None else f'{written:,}'}, history {summary.attrs['history_written']:,}; "
          f"peak RSS {_rss_mb():,.0f} MB")
    return summary


def _drop(engine, every: int = 100) -> int:
    """A purchase on AS_OF for every `every`-th contact, at each of its brands, as a drop's profile build leaves it."""
    picked = f"CAST(SUBSTR(contact_id, 2) AS INTEGER) % {every} = 0"
    with engine.begin() as conn:
        for table in ("profile_360", "profile_360_brand"):
            conn.execute(sa.text(f"UPDATE {table} SET order_count = order_count + 1, revenue = revenue + 60, "
                                 f"last_order_date = :d, first_order_date = COALESCE(first_order_date, :d) "
                                 f"WHERE {picked}").bindparams(sa.bindparam("d", type_=sa.Date())), {"d": AS_OF})
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM profile_360 WHERE {picked}")).scalar_one()


def _store_days(engine, first: dt.date, days: int) -> None:
    """`days` more stored days after `first`: its rows copied with the day shifted, one INSERT a table and day."""
    with engine.begin() as conn:
        for table in ("audience_members", "audience_sizes", "audience_history"):
            cols = [c for c in conn.execute(sa.text(f"SELECT * FROM {table} WHERE 1 = 0")).keys() if c != "as_of"]
            listed = ", ".join(cols)
            copy = sa.text(f"INSERT INTO {table} (as_of, {listed}) SELECT :day, {listed} FROM {table} "
                           "WHERE as_of = :first").bindparams(sa.bindparam("day", type_=sa.Date()),
                                                              sa.bindparam("first", type_=sa.Date()))
            for n in range(1, days + 1):
                conn.execute(copy, {"day": first + dt.timedelta(days=n), "first": first})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--db", default=None)
    parser.add_argument("--url", default=None, help="a SQLAlchemy URL (an empty PostgreSQL database) instead of DuckDB")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    engine = make_engine(args.url or f"duckdb:///{args.db or folder / 'bench.duckdb'}")
    create_profile_tables(engine)
    start = time.perf_counter()
    brand_rows = generate(engine, args.contacts)
    loaded = time.perf_counter() - start
    print(f"generated and loaded {args.contacts:,} contacts, {brand_rows:,} brand rows in {loaded:.1f} s "
          f"(peak RSS {_rss_mb():,.0f} MB)")
    first = AS_OF - dt.timedelta(days=args.days + 1)
    summary = _timed(engine, first, f"day 1 ({first}, no day stored)", args.contacts)
    _store_days(engine, first, args.days)
    print(f"stored {args.days} more days of snapshots, history and sizes (copies of {first})")
    for label in ("new day", "re-run, nothing new"):
        summary = _timed(engine, AS_OF, f"{label} ({AS_OF}, {args.days + 1} days stored)", args.contacts)
    dropped = _drop(engine)
    summary = _timed(engine, AS_OF, f"1% drop ({dropped:,} contacts buy on {AS_OF}), re-run", args.contacts)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(summary[["audience", "size", "entered", "exited"]].head(30).to_string(index=False))


if __name__ == "__main__":
    main()
