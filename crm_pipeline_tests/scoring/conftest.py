"""A hand-built warehouse for scoring tests: staged rows linked to contacts, profiles built, then scored."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from crm_pipeline.profiles.build import build_profiles
from crm_pipeline.scoring.config import ScoringConfig, load_scoring_config
from crm_pipeline.scoring.run import run_scoring
from crm_pipeline_tests.profiles.warehouse import AS_OF, Warehouse


@pytest.fixture
def wh(engine) -> Warehouse:
    return Warehouse(engine)


def score(w: Warehouse, *, as_of: dt.date = AS_OF, profile_as_of: dt.date | None = None,
          config: ScoringConfig | None = None) -> dict:
    """Build the profiles (and so the timeline) as of `profile_as_of`, then score as of `as_of`."""
    build_profiles(w.engine, as_of=profile_as_of or as_of)
    return run_scoring(w.engine, as_of=as_of, config=config or load_scoring_config())


def product(w: Warehouse, sku: str, price: float, category: str, *, maker: str | None = None,
            brand: str = "alpha") -> None:
    """A catalogue row with its maker (`brand` is the selling brand; Warehouse.add keeps that name for itself)."""
    from crm_pipeline.warehouse.bulk import insert_arrow
    from crm_pipeline.warehouse.quality_schema import stg_tables
    from crm_pipeline_tests.profiles.warehouse import _arrow

    n = 10_000 + next(_product_rows)
    row = {"_file_id": 1, "_row_number": n, "_brand": brand, "_row_hash": n, "sku": sku, "name": sku,
           "price": price, "category": category, "brand": maker}
    with w.engine.begin() as conn:
        insert_arrow(conn, stg_tables["products"], _arrow(stg_tables["products"], [row]))


_product_rows = itertools.count(1)
