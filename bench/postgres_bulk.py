"""PostgreSQL bulk load: COPY from CSV (the warehouse's path) against batched INSERTs (executemany).

    python bench/postgres_bulk.py [--rows 200000]

Starts a throwaway PostgreSQL server (initdb + pg_ctl, as the tests do), loads the same
Arrow table of raw-like text rows and of typed rows (integers, floats, booleans, dates,
timestamps, NULLs) both ways, checks both ways stored the same rows, and prints seconds,
rows/s and peak memory per way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import peak_rss_mb  # noqa: E402


def sample_tables(rows: int):
    import numpy as np
    import pyarrow as pa
    import sqlalchemy as sa

    rng = np.random.default_rng(7)
    ids = np.arange(rows)
    text = pa.table({
        "_file_id": pa.array(ids // 10_000, pa.int32()), "_row_number": pa.array(ids % 10_000 + 1, pa.int32()),
        "_brand": pa.array(np.where(ids % 2 == 0, "brand_a", "brand_b")),
        "order_id": pa.array([f"O{i:08d}" for i in ids]),
        "email": pa.array([None if i % 7 == 0 else f"person{i}@example.com" for i in ids]),
        "total": pa.array([f"{v:.2f}" for v in rng.gamma(2, 40, rows)]),
        "note": pa.array(["" if i % 5 == 0 else 'says "hi", then\nleaves' for i in ids]),
    })
    start = np.datetime64("2024-01-01T00:00:00", "us")
    typed = pa.table({
        "_file_id": pa.array(ids // 10_000, pa.int32()), "_row_number": pa.array(ids % 10_000 + 1, pa.int32()),
        "quantity": pa.array(rng.integers(1, 5, rows), pa.int64()),
        "total": pa.array(np.where(ids % 11 == 0, np.nan, rng.gamma(2, 40, rows))),
        "is_gift": pa.array(ids % 3 == 0),
        "ordered_at": pa.array(start + rng.integers(0, 365 * 86_400, rows).astype("timedelta64[s]"),
                               pa.timestamp("us", tz="UTC")),
        "ship_date": pa.array((start + rng.integers(0, 365, rows).astype("timedelta64[D]")).astype("datetime64[D]")),
    })
    meta = sa.MetaData()
    text_table = sa.Table("bench_text", meta, sa.Column("_file_id", sa.Integer), sa.Column("_row_number", sa.Integer),
                          *(sa.Column(c, sa.String) for c in text.column_names[2:]))
    typed_table = sa.Table("bench_typed", meta, sa.Column("_file_id", sa.Integer), sa.Column("_row_number", sa.Integer),
                           sa.Column("quantity", sa.BigInteger), sa.Column("total", sa.Double),
                           sa.Column("is_gift", sa.Boolean), sa.Column("ordered_at", sa.DateTime(timezone=True)),
                           sa.Column("ship_date", sa.Date))
    return meta, [(text_table, text), (typed_table, typed)]


def main() -> None:
    import sqlalchemy as sa

    from crm_pipeline.warehouse.bulk import executemany_insert_arrow, postgresql_copy_arrow
    from crm_pipeline.warehouse.engine import make_engine
    from crm_pipeline_tests.postgres.server import start_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    rows = parser.parse_args().rows
    meta, tables = sample_tables(rows)
    server = start_server()
    try:
        engine = make_engine(server.url())
        meta.create_all(engine)
        for table, data in tables:
            digests = {}
            for way, load in (("executemany", executemany_insert_arrow), ("COPY csv", postgresql_copy_arrow)):
                with engine.begin() as conn:
                    conn.execute(table.delete())
                started = time.perf_counter()
                with engine.begin() as conn:
                    load(conn, table, data)
                seconds = time.perf_counter() - started
                with engine.connect() as conn:
                    digests[way] = conn.execute(sa.text(
                        f"SELECT COUNT(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table.name} t")).one()
                print(f"{table.name:<12} {way:<12} rows={rows:>9,}  seconds={seconds:7.2f}  "
                      f"rows/s={rows / seconds:>10,.0f}  peak_mem={peak_rss_mb():6.0f} MB")
            same = len(set(digests.values())) == 1
            print(f"{table.name:<12} both ways stored the same rows: {same}")
        engine.dispose()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
