"""The contract is the single source of truth: the docs page is rendered from it."""

from pathlib import Path

import pytest

from crm_pipeline.contract import ENTITIES, classify, get_entity, is_in_progress
from crm_pipeline.contract.markdown import render_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def test_docs_page_matches_the_code():
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), (
        "docs/data-contract.md is stale: run `crm-pipeline contract --markdown > docs/data-contract.md`")


def test_the_seven_entities_and_their_keys():
    assert {name: e.key for name, e in ENTITIES.items()} == {
        "customers": ("customer_id",), "orders": ("order_id",), "order_items": ("order_id", "line_number"),
        "products": ("sku",), "subscribers": ("subscriber_id",), "email_events": ("event_id",),
        "web_events": ("event_id",),
    }


def test_orders_need_a_customer_id_or_an_email():
    orders = get_entity("orders")
    assert orders.missing_header_columns(["order_id", "ordered_at", "total", "email"]) == []
    assert orders.missing_header_columns(["order_id", "ordered_at", "total"]) == ["customer_id|email"]
    assert orders.source_key({"order_id": "O-1"}) == "O-1"
    assert get_entity("order_items").source_key({"order_id": "O-1", "line_number": "2"}) == "O-1:2"


def test_unknown_entity_names_the_known_ones():
    with pytest.raises(KeyError, match="customers"):
        get_entity("coupons")


@pytest.mark.parametrize("path, expected", [
    ("brand_a/orders/2025-q1.csv", ("brand_a", "orders", "csv")),
    ("brand_a/orders/2025-q1.CSV.GZ", ("brand_a", "orders", "csv.gz")),
    ("brand-b/web_events/w.parquet", ("brand-b", "web_events", "parquet")),
    ("brand_c/email_events/e.jsonl", ("brand_c", "email_events", "jsonl")),
])
def test_place_gives_brand_entity_and_format(path, expected):
    place = classify(path)
    assert place.accepted and (place.brand, place.entity, place.format) == expected


@pytest.mark.parametrize("path, words", [
    ("orders/x.csv", "layout"),
    ("Brand A/orders/x.csv", "slug"),
    ("brand_a/coupons/x.csv", "not an entity"),
    ("brand_a/orders/x.xlsx", "unsupported file type"),
    ("brand_a/orders/deep/x.csv", "layout"),
])
def test_places_that_fit_no_entity_say_why(path, words):
    place = classify(path)
    assert not place.accepted and words in place.reason and path in place.reason


def test_temp_names_are_in_progress():
    assert all(is_in_progress(n) for n in ["x.csv.part", "x.tmp", ".x.csv", "~x.csv", "x.csv~"])
    assert not is_in_progress("x.csv")
