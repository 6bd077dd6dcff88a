"""Identity's probabilistic pass on Spark (Splink's Spark backend) gives DuckDB's pairs and contacts.

A small generated landing, and a hand-made pair of customer files: six people in brand A whose second account in
brand B shares no email or phone, with a typo'd or shortened first name, the same birth date and address (the
pass's true pairs), a reviewer's cannot-link on one of them, and a father and son of one name at one address (never
one person). DuckDB stages it and resolves with its probabilistic pass (`match_people`); the staged rows
go to Spark, which resolves with its own pass, trained on Spark. Every pair (ids, and probability to 1e-6),
identity_map, identity_nodes, contacts and identity_alerts row must be equal. The data is small enough that
Splink's samples are the whole data on both engines (see `crm_pipeline/spark/probabilistic.py`).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pyarrow as pa
import pytest
import sqlalchemy as sa

from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.probabilistic import match_people
from crm_pipeline.identity.resolve import resolve_identities
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.landing.scan import LandingFolder
from crm_pipeline.quality.publish import publish
from crm_pipeline.quality.typing_run import type_new_files
from crm_pipeline.spark.identity import create_identity_tables_on_spark, resolve_identities_on_spark
from crm_pipeline.synth.generate import generate
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.identity_schema import (
    contacts, create_identity_tables, identity_alerts, identity_decisions, identity_map, identity_nodes,
    identity_pairs,
)
from crm_pipeline.warehouse.quality_schema import stg_tables
from crm_pipeline.warehouse.spark import SparkWarehouse
from crm_pipeline_tests.conftest import drop
from crm_pipeline_tests.spark import tables

NOW = datetime(2025, 7, 1, 6, 0, tzinfo=timezone.utc)
AS_OF = date(2025, 6, 30)
CONFIG = load_identity_config()
COMPARED = [identity_pairs.name, identity_map.name, identity_nodes.name, contacts.name, identity_alerts.name]
HEADER = ("customer_id,email,phone,first_name,last_name,address_line1,city,region,postal_code,country,birth_date,"
          "updated_at\n")
AT = "2025-06-01T00:00:00Z"
# brand A's people; brand B's second accounts: new emails, no phone, the first name typo'd or shortened.
PEOPLE = [("P1", "Katherine", "Oyelaran", "41 Quarry Ln", "Boise", "ID", "83702", "1979-03-14"),
          ("P2", "Jonathan", "Vasquez-Lind", "7 Elm Ct", "Tulsa", "OK", "74103", "1990-11-02"),
          ("P3", "Margaret", "Thistlewood", "1550 Ridge Rd", "Fresno", "CA", "93704", "1965-07-30"),
          ("P4", "Bartholomew", "Nakagawa", "88 Harbor View Dr", "Mobile", "AL", "36602", "1983-01-21"),
          ("P5", "Priscilla", "Abernathy", "302 Birch St", "Akron", "OH", "44308", "1972-09-09"),
          ("P6", "Ignatius", "Fairweather", "19 Mill Pond Way", "Bangor", "ME", "04401", "1958-05-17")]
SECOND_NAMES = {"P1": "Kathrine", "P2": "Jon", "P3": "Margaret", "P4": "Bartholomew", "P5": "Priscila",
                "P6": "Ignatius"}
BRAND_A = HEADER + "".join(f"{p},{p.lower()}.first@example.org,,{first},{last},{street},{city},{region},{postal},US,"
                           f"{born},{AT}\n" for p, first, last, street, city, region, postal, born in PEOPLE) + (
    f"SR1,sr.one@example.org,,Cornelius,Blackwood,5 Old Forge Rd,Keene,NH,03431,US,1941-02-02,{AT}\n")
BRAND_B = HEADER + "".join(f"Q{p[1]},{p.lower()}.second@example.net,,{SECOND_NAMES[p]},{last},{street},{city},"
                           f"{region},{postal},US,{born},{AT}\n"
                           for p, _, last, street, city, region, postal, born in PEOPLE) + (
    f"JR1,jr.one@example.net,,Cornelius,Blackwood,5 Old Forge Rd,Keene,NH,03431,US,1972-06-06,{AT}\n")
# A reviewer's decision: brand A's P6 and brand B's Q6 are two people, however alike.
CANNOT = {"node_a": ["brand_a|customer|P6"], "node_b": ["brand_b|customer|Q6"], "decision": ["cannot_link"],
          "note": ["two people of one name"], "decided_at": [datetime(2025, 6, 29, tzinfo=timezone.utc)]}


def contact_of(mapped, brand: str, key: str) -> str:
    return mapped.loc[(mapped["entity"] == "customers") & (mapped["source_key"] == key)
                      & (mapped["node_id"].str.startswith(brand)), "contact_id"].item()


# For this module's tiny tables: Splink's wide SQL compiled to Java per query (whole-stage codegen) and re-planned
# per stage (adaptive execution) cost more than they save; without them the Spark resolution took 28 s of JVM CPU
# instead of 40-45 (61 s wall instead of 107-115 on a loaded machine). Neither changes a result.
QUICK = {"spark.sql.codegen.wholeStage": "false", "spark.sql.adaptive.enabled": "false"}


@pytest.fixture(scope="module")
def both(spark, tmp_path_factory):
    saved = {key: spark.conf.get(key) for key in QUICK}
    for key, value in QUICK.items():
        spark.conf.set(key, value)
    try:
        yield from _both(spark, tmp_path_factory)
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)


def _both(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("spark_probabilistic")
    generate(root / "data", people=60, brands=2, days=30, seed=5, end_date=date(2025, 6, 30))
    landing = root / "data" / "landing"
    drop(landing, "brand_a/customers/customers_twins.csv", BRAND_A)
    drop(landing, "brand_b/customers/customers_twins.csv", BRAND_B)
    duck = make_engine(f"duckdb:///{root / 'warehouse.duckdb'}")
    ingest_folder(duck, LandingFolder(landing), now=NOW)
    type_new_files(duck, now=NOW)
    publish(duck, hold_share=0.05)
    warehouse = SparkWarehouse(spark, root / "spark_warehouse", database="crm_parity_probabilistic")
    create_identity_tables(duck)
    with duck.begin() as conn:
        conn.execute(identity_decisions.insert(), [dict(zip(CANNOT, row)) for row in zip(*CANNOT.values())])
    create_identity_tables_on_spark(warehouse)
    warehouse.write(identity_decisions.name, pa.table(CANNOT), overwrite=False)
    duck_report = resolve_identities(duck, as_of=AS_OF, config=CONFIG, find_pairs=match_people)
    with duck.connect() as conn:  # DuckDB's staged rows into Spark's partitions (pyarrow: no Spark job per table)
        raw = conn.connection.driver_connection
        for table in stg_tables.values():
            warehouse.write(table.name, raw.execute(f'SELECT * FROM "{table.name}"').arrow().read_all(),
                            overwrite=True)
    report = resolve_identities_on_spark(warehouse, as_of=AS_OF, config=CONFIG, probabilistic=True)
    yield duck, warehouse, report, duck_report
    duck.dispose()


def test_spark_pass_gives_duckdbs_pairs_and_contacts(both):
    duck, warehouse, report, duck_report = both
    duck_tables = tables.duckdb_tables(duck, COMPARED)
    spark_tables = tables.spark_tables(warehouse, COMPARED)
    assert tables.mismatches(duck_tables, spark_tables) == {}
    pairs = spark_tables[identity_pairs.name]
    # the true pairs (typo, nickname, new email) found; the Sr./Jr. never; the cannot-linked pair is a pair, but
    # not one contact
    found = set(zip(pairs["node_a"], pairs["node_b"]))
    assert {(f"brand_a|customer|P{i}", f"brand_b|customer|Q{i}") for i in range(1, 7)} <= found
    assert not any(key in a + b for a, b in found for key in ("SR1", "JR1"))
    mapped = spark_tables[identity_map.name]
    for i in range(1, 6):
        assert contact_of(mapped, "brand_a", f"P{i}") == contact_of(mapped, "brand_b", f"Q{i}")
    assert contact_of(mapped, "brand_a", "P6") != contact_of(mapped, "brand_b", "Q6")
    assert report.probabilistic_pairs == duck_report.probabilistic_pairs == len(pairs) - 1
    assert report.match.threshold == pytest.approx(duck_report.match.threshold, abs=1e-6)
    assert report.contacts == duck_report.contacts and report.records == duck_report.records


def test_the_pass_leaves_nothing_in_sparks_cache(both):
    """Splink's tables are checkpointed, never left persisted: a long-lived session would keep each run's copies."""
    _, warehouse, _, _ = both
    assert warehouse.spark._jsparkSession.sharedState().cacheManager().isEmpty()


def test_spark_trains_duckdbs_model(both):
    """m and u of every level, and the prior, as DuckDB trained them (the whole data is Splink's sample on both)."""
    _, _, report, duck_report = both

    def parameters(found):
        model = found.model
        levels = [(c["output_column_name"], i, level.get("m_probability"), level.get("u_probability"))
                  for c in model["comparisons"] for i, level in enumerate(c["comparison_levels"])]
        return model["probability_two_random_records_match"], levels

    (prior, levels), (duck_prior, duck_levels) = parameters(report.match), parameters(duck_report.match)
    assert prior == pytest.approx(duck_prior, rel=1e-9)
    assert [lv[:2] for lv in levels] == [lv[:2] for lv in duck_levels]
    for (_, _, m, u), (_, _, dm, du) in zip(levels, duck_levels):
        assert (m is None) == (dm is None) and (u is None) == (du is None)
        assert m is None or m == pytest.approx(dm, rel=1e-6)
        assert u is None or u == pytest.approx(du, rel=1e-6)
    assert report.match.blocking.equals(duck_report.match.blocking)
