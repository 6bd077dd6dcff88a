"""The same erasure on PostgreSQL removes exactly what it removes on DuckDB (portable SQL, bound parameters)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

import crm_pipeline.warehouse.audience_schema  # noqa: F401  (each module adds its tables to the metadata)
import crm_pipeline.warehouse.identity_schema  # noqa: F401
import crm_pipeline.warehouse.predict_schema  # noqa: F401
import crm_pipeline.warehouse.profile_schema  # noqa: F401
import crm_pipeline.warehouse.quality_schema  # noqa: F401
import crm_pipeline.warehouse.scoring_schema  # noqa: F401
from crm_pipeline.erasure.erase import erase
from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.erasure_schema import create_erasure_tables
from crm_pipeline.warehouse.quality_schema import create_quality_tables
from crm_pipeline.warehouse.schema import metadata
from crm_pipeline_tests.erasure.helpers import people, table_counts
from crm_pipeline_tests.postgres.conftest import postgres_server  # noqa: F401  (the session's server)

REQUESTED_AT = dt.datetime(2025, 7, 1, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def postgres_copy(warehouse, postgres_server, tmp_path):
    """The built warehouse's tables, created from the project's definitions in a new database on the
    session's throwaway PostgreSQL server, and its views."""
    engine = None
    try:
        url = postgres_server.create_database(f"erasure_{tmp_path.name}".lower()[:60])
        engine = make_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
        create_erasure_tables(engine)
        with warehouse.engine.connect() as source:
            names = [t for t in sa.inspect(source).get_table_names() if t in metadata.tables]
            metadata.create_all(engine, tables=[metadata.tables[t] for t in names])
            with engine.begin() as target:  # through the warehouse's own bulk path (COPY), not row INSERTs
                for name in names:
                    rows = source.connection.driver_connection.execute(f'SELECT * FROM "{name}"').arrow()
                    insert_arrow(target, metadata.tables[name], rows.read_all() if hasattr(rows, "read_all") else rows)
        create_quality_tables(engine)  # the typed_<entity> views over the copied staged and unstaged rows
        yield engine
    finally:
        if engine is not None:
            engine.dispose()


def test_erasure_on_postgresql_matches_duckdb(warehouse, postgres_copy):
    person = people(warehouse.engine).iloc[0]
    assert table_counts(postgres_copy) == {t: n for t, n in table_counts(warehouse.engine).items()
                                           if t in table_counts(postgres_copy)}

    on_duckdb = erase(warehouse.engine, email=person["email"], requested_at=REQUESTED_AT)
    on_postgres = erase(postgres_copy, email=person["email"], requested_at=REQUESTED_AT)

    pd.testing.assert_frame_equal(on_postgres.sort_values("table").reset_index(drop=True),
                                  on_duckdb.sort_values("table").reset_index(drop=True), check_dtype=False)
    duck_after = table_counts(warehouse.engine)
    assert table_counts(postgres_copy) == {t: duck_after[t] for t in table_counts(postgres_copy)}
    with postgres_copy.connect() as conn:
        left = conn.execute(sa.text("SELECT COUNT(*) FROM typed_customers WHERE email = :e"),
                            {"e": person["email"]}).scalar_one()
    assert left == 0 and on_postgres["rows_removed"].sum() > 0
