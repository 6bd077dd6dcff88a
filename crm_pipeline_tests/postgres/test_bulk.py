"""Bulk loading into PostgreSQL (COPY) keeps every value exactly as the DuckDB path does."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.engine import make_engine

UTC = dt.timezone.utc
meta = sa.MetaData()
sample = sa.Table(
    "bulk_sample", meta,
    sa.Column("id", sa.Integer), sa.Column("label", sa.String), sa.Column("amount", sa.Double),
    sa.Column("count_n", sa.BigInteger), sa.Column("flag", sa.Boolean), sa.Column("day", sa.Date),
    sa.Column("seen_at", sa.DateTime(timezone=True)),
)
DATA = pa.table({
    "id": pa.array([1, 2, 3, 4], pa.int32()),
    "label": ["plain", "", None, 'quote " comma , newline \n é 😀'],   # '' and NULL stay apart
    "amount": [1.25, None, 1e-7, 123456789.5],
    "count_n": pa.array([3.0, None, 0.0, 7.0], pa.float64()),       # pandas' integers-with-gaps as floats
    "flag": [True, False, None, True],
    "day": [dt.date(2025, 6, 30), None, dt.date(1970, 1, 1), dt.date(2024, 2, 29)],
    "seen_at": pa.array([dt.datetime(2025, 6, 30, 23, 59, 59, 123456, tzinfo=UTC), None,
                    dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2024, 2, 29, 12, tzinfo=UTC)],
                   pa.timestamp("us", tz="UTC")),
})


@pytest.fixture
def pg_engine(postgres_server, request):
    engine = make_engine(postgres_server.create_database(f"bulk_{request.node.name[-20:].lower()}"))
    meta.create_all(engine)
    yield engine
    engine.dispose()


def stored(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(sample).order_by(sample.c.id))]


def test_copy_stores_the_same_values_as_duckdb(pg_engine, tmp_path):
    duck = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    meta.create_all(duck)
    for engine in (pg_engine, duck):
        with engine.begin() as conn:
            assert insert_arrow(conn, sample, DATA) == 4
    assert stored(pg_engine) == stored(duck)
    assert [r[1] for r in stored(pg_engine)] == ["plain", "", None, 'quote " comma , newline \n é 😀']
    assert stored(pg_engine)[0][6] == dt.datetime(2025, 6, 30, 23, 59, 59, 123456, tzinfo=UTC)
    duck.dispose()


def test_copy_is_part_of_the_callers_transaction(pg_engine):
    with pytest.raises(RuntimeError), pg_engine.begin() as conn:
        insert_arrow(conn, sample, DATA)
        raise RuntimeError("the step fails after loading")
    assert stored(pg_engine) == []
    with pg_engine.connect() as conn:  # a plain connection: the COPY lands only with the caller's commit
        insert_arrow(conn, sample, DATA)
        conn.commit()
    assert len(stored(pg_engine)) == 4


def test_a_fraction_bound_for_an_integer_column_is_refused_not_rounded(pg_engine):
    bad = DATA.set_column(3, "count_n", pa.array([3.5, None, 0.0, 7.0]))
    with pytest.raises(pa.ArrowInvalid), pg_engine.begin() as conn:
        insert_arrow(conn, sample, bad)
    assert stored(pg_engine) == []


def test_read_frame_on_postgresql_gives_the_frame_duckdb_gives(pg_engine, tmp_path):
    duck = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    meta.create_all(duck)
    frames = []
    for engine in (pg_engine, duck):
        with engine.begin() as conn:
            insert_arrow(conn, sample, DATA)
            frames.append(read_frame(conn, sa.select(sample).where(sample.c.id >= 2).order_by(sample.c.id)))
    duck.dispose()
    pg, dk = frames
    assert list(pg.columns) == list(dk.columns) and len(pg) == len(dk) == 3
    assert pg["label"].isna().tolist() == dk["label"].isna().tolist() == [False, True, False]
    assert pg["label"].dtype == dk["label"].dtype  # the same string dtype downstream code sees
    pd.testing.assert_series_equal(pg["seen_at"], dk["seen_at"].dt.tz_convert("UTC"))  # tz-aware, in UTC
    pd.testing.assert_frame_equal(pg.drop(columns="seen_at"), dk.drop(columns="seen_at"), check_dtype=False)


def test_a_table_with_empty_chunks_loads_cleanly(pg_engine):
    """pd.concat with an empty frame leaves zero-row chunks, which Arrow's CSV writer turned into NUL bytes."""
    frames = [pd.DataFrame({"label": "junk", "id": pd.Series([], dtype="int64")}),   # none of this kind
              pd.DataFrame({"label": "kept", "id": pd.Series([7], dtype="int64")})]
    data = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
    assert min(len(c) for c in data.column("label").chunks) == 0  # the shape that broke the load
    with pg_engine.begin() as conn:
        assert insert_arrow(conn, sample, data) == 1
    assert [(r[0], r[1]) for r in stored(pg_engine)] == [(7, "kept")]
