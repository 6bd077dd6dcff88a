"""Orders and their lines land before the customers they belong to: nothing is lost, and they link up later."""

from __future__ import annotations

from crm_pipeline_tests.faults.harness import (
    CUSTOMER_HEADER, IDENTITY, ITEM_HEADER, ORDER_HEADER, assert_accounting_balanced, assert_loaded_exactly_once,
    customers, order_items, run_assets, write_csv,
)

N = 12


def contact_of(site, entity: str) -> dict[str, str]:
    return dict(site.query("SELECT source_key, contact_id FROM identity_map WHERE entity = :e", e=entity))


def test_orders_before_their_customers_are_kept_and_link_to_the_contact_later(site, dagster_instance):
    # Half the orders name the account only (customer_id), half are guest orders known by email only:
    # neither kind can meet its customer record until the customers file lands.
    account_orders = [f"O{i},C{i},,2025-05-0{1 + i % 9}T10:00:00Z,delivered,USD,{10 + i}.50" for i in range(1, 7)]
    guest_orders = [f"O{i},,person{i}@example.com,2025-05-0{1 + i % 9}T10:00:00Z,delivered,USD,{10 + i}.50"
                    for i in range(7, N + 1)]
    write_csv(site.landing, "brand_a/order_items/items.csv", ITEM_HEADER, order_items(N))
    write_csv(site.landing, "brand_a/orders/orders.csv", ORDER_HEADER, account_orders + guest_orders)
    assert run_assets(site, dagster_instance, IDENTITY).success
    assert site.query("SELECT COUNT(*) FROM stg_orders") == [(N,)]
    assert site.query("SELECT COUNT(*) FROM stg_order_items") == [(N,)]
    before = contact_of(site, "orders")
    assert len(before) == N and len(set(before.values())) == N  # each order its own person, for now

    write_csv(site.landing, "brand_a/customers/customers.csv", CUSTOMER_HEADER, customers(N))
    assert run_assets(site, dagster_instance, IDENTITY).success

    assert_loaded_exactly_once(site, {"brand_a/order_items/items.csv": N, "brand_a/orders/orders.csv": N,
                                      "brand_a/customers/customers.csv": N})
    assert_accounting_balanced(site)
    assert site.query("SELECT COUNT(*), COUNT(DISTINCT order_id) FROM stg_orders") == [(N, N)]
    assert site.query("SELECT COUNT(*) FROM stg_order_items") == [(N,)]
    orders, people = contact_of(site, "orders"), contact_of(site, "customers")
    assert {f"O{i}": orders[f"O{i}"] for i in range(1, N + 1)} == {f"O{i}": people[f"C{i}"] for i in range(1, N + 1)}
    assert site.query("SELECT COUNT(*) FROM contacts") == [(N,)]
