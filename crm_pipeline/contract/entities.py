"""The seven entities of the data contract: the single source of truth.

docs/data-contract.md is rendered from this module (`crm-pipeline contract --markdown`)
and a test keeps the two identical.
"""

from __future__ import annotations

from crm_pipeline.contract.model import Column, Entity

ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "refunded", "partially_refunded")
CHANNELS = ("web", "store", "app", "marketplace")
SUBSCRIBER_STATUSES = ("subscribed", "unsubscribed", "bounced", "pending")
SUBSCRIBER_SOURCES = ("popup", "preference_center", "account", "in_store", "import")
EMAIL_EVENT_TYPES = ("send", "open", "click", "bounce", "unsubscribe", "complaint")
WEB_EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "search", "checkout")
BOOLEAN_VALUES = ("true", "false", "1", "0", "yes", "no", "t", "f", "y", "n")

_UPDATED_AT = Column(
    "updated_at", "timestamp",
    description="When the source system last changed the record; the newest wins when a key repeats.",
)

CUSTOMERS = Entity(
    name="customers",
    description="Shop accounts: one row per customer account of a brand.",
    key=("customer_id",),
    columns=(
        Column("customer_id", required=True, description="The brand's account id; unique within the brand."),
        Column("email", description="Email address as typed by the customer."),
        Column("phone", description="Phone number in any common format; standardized to E.164."),
        Column("first_name"),
        Column("last_name"),
        Column("address_line1"),
        Column("address_line2"),
        Column("city"),
        Column("region", description="State, county or province."),
        Column("postal_code"),
        Column("country", description="Any common spelling (US, USA, United States ...); standardized to ISO 3166-1 alpha-2."),
        Column("birth_date", "date"),
        Column("created_at", "timestamp", description="When the account was opened."),
        _UPDATED_AT,
    ),
)

ORDERS = Entity(
    name="orders",
    description="Order headers from the shop, the tills and marketplaces.",
    key=("order_id",),
    columns=(
        Column("order_id", required=True, description="Unique within the brand."),
        Column("customer_id", description="The buyer's account id; empty for a guest checkout."),
        Column("email", description="The buyer's email; the only identity of a guest checkout."),
        Column("ordered_at", "timestamp", required=True),
        Column("status", allowed=ORDER_STATUSES),
        Column("currency", description="ISO 4217 code, e.g. USD."),
        Column("subtotal", "decimal"),
        Column("discount_total", "decimal"),
        Column("shipping_total", "decimal"),
        Column("tax_total", "decimal"),
        Column("total", "decimal", required=True, description="What the customer paid, in `currency`."),
        Column("shipping_country", description="Any common spelling; standardized to ISO 3166-1 alpha-2."),
        Column("channel", allowed=CHANNELS),
        Column("phone", description="The buyer's phone where the till or shop captured one."),
        _UPDATED_AT,
    ),
    one_of=(("customer_id", "email"),),
)

ORDER_ITEMS = Entity(
    name="order_items",
    description="Order lines; a negative quantity is a return.",
    key=("order_id", "line_number"),
    columns=(
        Column("order_id", required=True),
        Column("line_number", "integer", required=True, description="1, 2, ... within the order."),
        Column("sku", required=True, description="The product's sku (see products)."),
        Column("quantity", "integer", required=True, description="Units; negative for a return."),
        Column("unit_price", "decimal", required=True, description="Price of one unit; never negative."),
        Column("discount", "decimal", description="Discount on the whole line."),
    ),
)

PRODUCTS = Entity(
    name="products",
    description="The catalogue.",
    key=("sku",),
    columns=(
        Column("sku", required=True),
        Column("name"),
        Column("category", description="A path such as `Women > Shoes > Boots`."),
        Column("brand", description="The product's maker, not necessarily the selling brand."),
        Column("price", "decimal", description="List price; never negative."),
        Column("currency"),
        Column("active", "boolean", allowed=BOOLEAN_VALUES),
        _UPDATED_AT,
    ),
    person_linked=False,
)

SUBSCRIBERS = Entity(
    name="subscribers",
    description="Email list members from the ESP.",
    key=("subscriber_id",),
    columns=(
        Column("subscriber_id", required=True, description="The ESP's id, or the email when the ESP has none."),
        Column("email", required=True),
        Column("status", allowed=SUBSCRIBER_STATUSES),
        Column("subscribed_at", "timestamp"),
        Column("unsubscribed_at", "timestamp"),
        Column("source", allowed=SUBSCRIBER_SOURCES),
        Column("country"),
        Column("first_name"),
        Column("last_name"),
        Column("preferences", "json", description="JSON object text, e.g. {\"topics\": [\"shoes\"]}."),
        _UPDATED_AT,
    ),
)

EMAIL_EVENTS = Entity(
    name="email_events",
    description="Sends, opens, clicks, bounces, unsubscribes and complaints from the ESP.",
    key=("event_id",),
    columns=(
        Column("event_id", required=True),
        Column("subscriber_id"),
        Column("email"),
        Column("campaign_id"),
        Column("event_type", required=True, allowed=EMAIL_EVENT_TYPES),
        Column("occurred_at", "timestamp", required=True),
        Column("url", description="The clicked link, for clicks."),
    ),
    one_of=(("subscriber_id", "email"),),
)

WEB_EVENTS = Entity(
    name="web_events",
    description="On-site browse events; anonymous (cookie only) until a login ties them to a person.",
    key=("event_id",),
    columns=(
        Column("event_id", required=True),
        Column("cookie_id", required=True),
        Column("session_id"),
        Column("customer_id", description="Set when the visitor is logged in."),
        Column("email", description="Set when the visitor is logged in or arrived from an email click."),
        Column("event_type", required=True, allowed=WEB_EVENT_TYPES),
        Column("url"),
        Column("sku", description="The product viewed or added, for product events."),
        Column("occurred_at", "timestamp", required=True),
    ),
)

ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (CUSTOMERS, ORDERS, ORDER_ITEMS, PRODUCTS, SUBSCRIBERS, EMAIL_EVENTS, WEB_EVENTS)
}


def get_entity(name: str) -> Entity:
    try:
        return ENTITIES[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; the contract has {', '.join(ENTITIES)}") from None
