"""Deterministic identity resolution on files run through the real ingest and quality stages."""

from __future__ import annotations

import random
from datetime import date

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.resolve import resolve_identities
from crm_pipeline.landing.ingest import ingest_folder
from crm_pipeline.quality.publish import publish
from crm_pipeline.quality.typing_run import type_new_files
from crm_pipeline_tests.conftest import NOW, drop

AS_OF = date(2025, 6, 1)
CUSTOMERS = "customer_id,email,phone,first_name,last_name,address_line1,postal_code,country,updated_at\n"
SUBSCRIBERS = "subscriber_id,email,status,subscribed_at,first_name,last_name\n"
ORDERS = "order_id,customer_id,email,phone,ordered_at,status,total\n"
WEB = "event_id,cookie_id,session_id,customer_id,email,event_type,url,sku,occurred_at\n"


def run(engine, folder, landing_dir, files: dict[str, str], as_of=AS_OF):
    for path, text in files.items():
        drop(landing_dir, path, text)
    ingest_folder(engine, folder, now=NOW)
    type_new_files(engine, now=NOW)
    publish(engine, hold_share=0.05)
    return resolve_identities(engine, as_of=as_of, config=load_identity_config(), find_pairs=None)


def contact_of(engine) -> dict[tuple[str, str, str], str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT brand, entity, source_key, contact_id FROM identity_map")).all()
    return {(b, e, k): c for b, e, k, c in rows}


def test_a_multichannel_shopper_is_one_contact(engine, folder, landing_dir):
    files = {
        # brand_a: browses anonymously, later logs in on the same cookie; a shop account.
        "brand_a/web_events/w.csv": WEB
        + "W1,K1,S1,,,product_view,/p/1,A-1,2025-03-01T10:00:00Z\n"
        + "W2,K1,S2,A1,,page_view,/account,,2025-03-05T10:00:00Z\n",
        "brand_a/customers/c.csv": CUSTOMERS
        + "A1, Ann.Lee@Example.COM ,(415) 234-5678,Ann,Lee,1 Main St,02134,USA,2025-01-01T00:00:00Z\n",
        # brand_a's ESP knows her by another spelling of the same email.
        "brand_a/subscribers/s.csv": SUBSCRIBERS + "S1,ann.lee@example.com,subscribed,2025-01-02T00:00:00Z,Ann,Lee\n",
        # brand_b: a till account with her phone only, and a guest web order with her email.
        "brand_b/customers/c.csv": CUSTOMERS + "T9,,+1 415 234 5678,ANN,LEE,,,US,2025-01-01T00:00:00Z\n",
        "brand_b/orders/o.csv": ORDERS + "G1,,ann.lee@example.com,,2025-04-01T10:00:00Z,delivered,30\n",
    }
    run(engine, folder, landing_dir, files)
    contacts = contact_of(engine)
    assert len(set(contacts.values())) == 1, contacts
    assert set(contacts) == {("brand_a", "web_events", "W1"), ("brand_a", "web_events", "W2"),
                             ("brand_a", "customers", "A1"), ("brand_a", "subscribers", "S1"),
                             ("brand_b", "customers", "T9"), ("brand_b", "orders", "G1")}
    with engine.connect() as conn:
        [(brands, match_type)] = conn.execute(sa.text("SELECT brands, match_type FROM contacts")).all()
    assert brands == "brand_a,brand_b" and match_type == "deterministic"


def test_junk_identifiers_and_a_shared_store_email_do_not_fuse_people(engine, folder, landing_dir):
    people = [("Ann", "Lee"), ("Bob", "Ray"), ("Cy", "Zed"), ("Di", "Moe"), ("Ed", "Poe")]
    rows = "".join(f"J{i},test@test.com,0000000000,{f},{l},,,US,2025-01-01T00:00:00Z\n"
                   for i, (f, l) in enumerate(people))
    rows += "".join(f"T{i},store@brand-a.com,,{f},{l},,,US,2025-01-01T00:00:00Z\n"
                    for i, (f, l) in enumerate(people))
    report = run(engine, folder, landing_dir, {"brand_a/customers/c.csv": CUSTOMERS + rows})
    contacts = contact_of(engine)
    assert len(set(contacts.values())) == 10  # nobody joined on junk or on the store email
    assert report.junk_values >= 1 and report.capped_values == 1
    with engine.connect() as conn:
        alerts = dict(conn.execute(sa.text("SELECT subject, kind FROM identity_alerts")).all())
    assert alerts["email:store@brand-a.com"] == "identifier_capped"
    assert alerts["email:test@test.com"] == "junk_identifier"


def test_a_device_shared_by_two_people_joins_nobody(engine, folder, landing_dir):
    files = {
        # K1: a family computer; Ann and Bob each log in, and someone signs up for the newsletter on it.
        # K2: Cy's phone, on which she logs in to both her accounts (one person, two accounts).
        "brand_a/web_events/w.csv": WEB
        + "W1,K1,S1,A1,,page_view,/account,,2025-03-01T10:00:00Z\n"
        + "W2,K1,S2,B1,,page_view,/account,,2025-03-02T10:00:00Z\n"
        + "W3,K1,S3,,ann.lee@x.com,page_view,/newsletter/subscribed,,2025-03-03T10:00:00Z\n"
        + "W4,K2,S4,C1,,page_view,/account,,2025-03-04T10:00:00Z\n"
        + "W5,K2,S5,C2,,page_view,/account,,2025-03-05T10:00:00Z\n",
        "brand_a/customers/c.csv": CUSTOMERS
        + "A1,,,Ann,Lee,,,US,2025-01-01T00:00:00Z\n" + "B1,,,Bob,Ray,,,US,2025-01-01T00:00:00Z\n"
        + "C1,cy@x.com,,Cy,Zed,,,US,2025-01-01T00:00:00Z\n" + "C2,zed.cy@x.com,,Cy,Zed,,,US,2025-01-01T00:00:00Z\n",
        "brand_a/subscribers/s.csv": SUBSCRIBERS + "S1,ann.lee@x.com,subscribed,2025-03-03T00:00:00Z,,\n",
    }
    report = run(engine, folder, landing_dir, files)
    contacts = contact_of(engine)
    a, b = contacts[("brand_a", "customers", "A1")], contacts[("brand_a", "customers", "B1")]
    assert a != b and contacts[("brand_a", "subscribers", "S1")] not in (a, b)
    assert contacts[("brand_a", "customers", "C1")] == contacts[("brand_a", "customers", "C2")]
    assert report.shared_devices == 1
    with engine.connect() as conn:
        alerts = dict(conn.execute(sa.text("SELECT subject, kind FROM identity_alerts")).all())
    assert alerts["device:brand_a|cookie|K1"] == "device_shared"


def test_a_household_sharing_an_address_stays_apart(engine, folder, landing_dir):
    rows = ("H1,ann@x.com,,Ann,Lee,1 Main St,02134,US,2025-01-01T00:00:00Z\n"
            "H2,bob@x.com,,Bob,Lee,1 Main St,02134,US,2025-01-01T00:00:00Z\n")
    run(engine, folder, landing_dir, {"brand_a/customers/c.csv": CUSTOMERS + rows})
    contacts = contact_of(engine)
    assert contacts[("brand_a", "customers", "H1")] != contacts[("brand_a", "customers", "H2")]


def test_ids_survive_a_rerun_and_the_oldest_survives_a_merge(engine, folder, landing_dir):
    first = {"brand_a/customers/c.csv": CUSTOMERS
             + "A1,ann@x.com,,Ann,Lee,,,US,2025-01-01T00:00:00Z\n"
             + "B1,,(617) 555-0199,Ann,Lee,,,US,2025-01-01T00:00:00Z\n"
             + "Z1,zed@x.com,,Zed,Poe,,,US,2025-01-01T00:00:00Z\n"}
    run(engine, folder, landing_dir, first)
    before = contact_of(engine)
    a, b = before[("brand_a", "customers", "A1")], before[("brand_a", "customers", "B1")]
    assert a != b

    run(engine, folder, landing_dir, {})  # same data again: nothing moves
    assert contact_of(engine) == before

    # A new file ties the two: the same person's order with both her email and her phone.
    run(engine, folder, landing_dir, {"brand_b/orders/o.csv": ORDERS
                                      + "O1,,ann@x.com,617-555-0199,2025-05-01T10:00:00Z,delivered,10\n"},
        as_of=date(2025, 6, 2))
    after = contact_of(engine)
    survivor, retired = min(a, b), max(a, b)
    assert {after[("brand_a", "customers", "A1")], after[("brand_a", "customers", "B1")],
            after[("brand_b", "orders", "O1")]} == {survivor}
    assert after[("brand_a", "customers", "Z1")] == before[("brand_a", "customers", "Z1")]
    with engine.connect() as conn:
        log = pd.read_sql(sa.text("SELECT kind, old_contact_id, new_contact_id, as_of FROM merge_log"), conn)
    assert log.to_dict("records") == [{"kind": "merge", "old_contact_id": retired, "new_contact_id": survivor,
                                       "as_of": date(2025, 6, 2)}]


def test_every_staged_person_record_is_mapped_once_with_how_it_matched(engine, folder, landing_dir):
    files = {"brand_a/customers/c.csv": CUSTOMERS + "A1,ann@x.com,,Ann,Lee,,,US,2025-01-01T00:00:00Z\n"
             + "L1,lone@x.com,,Lo,Ne,,,US,2025-01-01T00:00:00Z\n",
             "brand_a/subscribers/s.csv": SUBSCRIBERS + "S1,ann@x.com,subscribed,2025-01-02T00:00:00Z,Ann,Lee\n"}
    run(engine, folder, landing_dir, files)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT entity, source_key, match_type FROM identity_map ORDER BY 1, 2")).all()
    assert rows == [("customers", "A1", "deterministic"), ("customers", "L1", "singleton"),
                    ("subscribers", "S1", "deterministic")]


def test_a_long_chain_of_shared_identifiers_is_one_contact(engine, folder, landing_dir):
    # 40 accounts of one person, each sharing its email with one neighbour and its phone with the other:
    # a path 40 nodes long, laid in shuffled id order, which takes the warehouse's components several rounds.
    ids = [f"K{n:02d}" for n in random.Random(4).sample(range(40), 40)]
    rows = "".join(f"{key},ann{(i + 1) // 2}@x.com,+1 415 234 56{i // 2:02d},Ann,Lee,,,US,2025-01-01T00:00:00Z\n"
                   for i, key in enumerate(ids))
    report = run(engine, folder, landing_dir, {"brand_a/customers/c.csv": CUSTOMERS + rows})
    contacts = contact_of(engine)
    assert len(contacts) == 40 and len(set(contacts.values())) == 1
    assert report.rounds["deterministic"] >= 3 and report.largest_cluster == 40
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT DISTINCT match_type FROM identity_map")).scalars().all() == ["deterministic"]
