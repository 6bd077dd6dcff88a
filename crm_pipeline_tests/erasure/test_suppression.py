"""Ingestion keeps erased people out by their hashed identifiers, in any spelling, and counts what it kept out."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from crm_pipeline.erasure.identifiers import normalize_email, normalize_phone
from crm_pipeline.erasure.suppression import add_suppressions
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.warehouse.erasure_schema import create_erasure_tables
from crm_pipeline_tests.conftest import NOW, drop

ERASED_AT = dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc)


def suppress(engine, **values: set[str]) -> None:
    create_erasure_tables(engine)
    with engine.begin() as conn:
        add_suppressions(conn, values, request_id=1, added_at=ERASED_AT)


def loaded_keys(engine, entity: str, key: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT _brand || '|' || {key} AS k FROM raw_{entity} ORDER BY k")).scalars())


def test_rows_carrying_an_erased_email_phone_or_key_are_not_loaded_in_any_spelling(engine, folder, landing_dir):
    email, key = normalize_email("J.Doe+shop@gmail.com")
    suppress(engine, email={email}, email_key={key}, phone={normalize_phone("+1 415 555 0199")},
             order={"brand_a|SO-9"})
    drop(landing_dir, "brand_a/customers/c.csv",
         "customer_id,email,phone,first_name,country\n"
         "1,jdoe@googlemail.com,,Jo,US\n"           # the same inbox, another spelling
         "2,ann@example.com,(415) 555-0199,Ann,US\n"  # the erased phone, national format
         "3,bob@example.com,,Bob,US\n"
         "4,  J.DOE+SHOP@GMAIL.COM ,,Jo,US\n")
    drop(landing_dir, "brand_a/order_items/i.csv",
         "order_id,line_number,sku,quantity,unit_price\nSO-9,1,A,1,5\nSO-10,1,A,1,5\n")
    drop(landing_dir, "brand_b/order_items/i.csv",
         "order_id,line_number,sku,quantity,unit_price\nSO-9,1,A,1,5\n")  # another brand's order SO-9

    outcomes = {o.path: o for o in ingest_folder(engine, folder, now=NOW)}

    assert loaded_keys(engine, "customers", "customer_id") == ["brand_a|3"]
    assert loaded_keys(engine, "order_items", "order_id") == ["brand_a|SO-10", "brand_b|SO-9"]
    customers = outcomes["brand_a/customers/c.csv"]
    assert (customers.rows_read, customers.rows_loaded, customers.rows_suppressed) == (4, 1, 3)
    with engine.connect() as conn:
        counts = conn.execute(sa.text(
            "SELECT f.path, e.cause, e.row_count FROM erasure_row_counts e JOIN files f ON f.file_id = e.file_id "
            "ORDER BY f.path")).all()
        kept_rows = conn.execute(sa.text("SELECT _row_number FROM raw_customers")).scalars().all()
    assert [tuple(c) for c in counts] == [("brand_a/customers/c.csv", "suppressed_on_load", 3),
                                          ("brand_a/order_items/i.csv", "suppressed_on_load", 1)]
    assert kept_rows == [3]  # lineage still points at the row in the file


def test_with_nobody_erased_every_row_loads(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/c.csv", "customer_id,email\n1,a@example.com\n2,b@example.com\n")
    [outcome] = ingest_folder(engine, folder, now=NOW)
    assert (outcome.rows_read, outcome.rows_loaded, outcome.rows_suppressed) == (2, 2, 0)


def test_a_suppression_added_between_two_ingestion_runs_applies_to_the_next_file(engine, folder, landing_dir):
    drop(landing_dir, "brand_a/customers/a.csv", "customer_id,email\n1,a@example.com\n")
    ingest_folder(engine, folder, now=NOW)
    suppress(engine, email={"a@example.com"})
    drop(landing_dir, "brand_a/customers/b.csv", "customer_id,email\n1,a@example.com\n2,b@example.com\n")
    outcomes = {o.path: o for o in ingest_folder(engine, folder, now=NOW)}
    assert outcomes["brand_a/customers/b.csv"].rows_loaded == 1
    assert outcomes["brand_a/customers/a.csv"].already_known  # loaded before the erasure; erase removes it
