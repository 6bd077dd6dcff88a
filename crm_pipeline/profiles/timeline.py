"""The timeline: one row per interaction of a contact up to as_of, numbered in time order.

Event types: order (every order, whatever its status), return (one per negative order
line, at the order's last change), subscribe / unsubscribe (from subscriber records, and
unsubscribe events from the ESP), email_send / email_open / email_click / email_bounce /
email_complaint, and the web events (page_view, product_view, add_to_cart, search,
checkout). `detail` is a compact line a person can read (`order O-123 delivered 79.90 USD`,
`clicked https://...`, `viewed A-000123 Leather Boots`); `source_entity` and `source_key`
lead back to the staged record (`order_id:line_number` for an order line).
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.profiles import rewrite
from crm_pipeline.profiles.sql import WHOLE, money_text, text
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.profile_schema import TIMELINE_EVENT_TYPES, timeline

KEY = ("contact_id", "event_number")
_CAMPAIGN = "CASE WHEN campaign_id IS NOT NULL THEN 'campaign ' || campaign_id END"
_EMAIL_TYPES = {"send": "email_send", "open": "email_open", "click": "email_click", "bounce": "email_bounce",
                "unsubscribe": "unsubscribe", "complaint": "email_complaint"}
_EMAIL_DETAIL = {
    "send": f"CONCAT_WS(' ', 'sent', {_CAMPAIGN})",
    "open": f"CONCAT_WS(' ', 'opened', {_CAMPAIGN})",
    "click": f"CONCAT_WS(' ', 'clicked', COALESCE(url, {_CAMPAIGN}))",
    "bounce": f"CONCAT_WS(' ', 'bounced', {_CAMPAIGN})",
    "unsubscribe": f"CONCAT_WS(' ', 'unsubscribed via', COALESCE({_CAMPAIGN}, 'email'))",
    "complaint": f"CONCAT_WS(' ', 'complained about', COALESCE({_CAMPAIGN}, 'an email'))",
}
_WEB_DETAIL = {
    "page_view": "CONCAT_WS(' ', 'viewed page', url)",
    "product_view": "CONCAT_WS(' ', 'viewed', sku, product_name)",
    "add_to_cart": "CONCAT_WS(' ', 'added', sku, product_name, 'to cart')",
    "search": "CONCAT_WS(' ', 'searched', url)",
    "checkout": "CONCAT_WS(' ', 'checkout', url)",
}


def _case(column: str, mapping: dict[str, str], default: str, *, quote: bool) -> str:
    whens = " ".join(f"WHEN '{k}' THEN {repr(v) if quote else v}" for k, v in mapping.items())
    return f"CASE {column} {whens} ELSE {default} END"


def _events(orders: str | None, subscribers: str, email: str, web: str) -> str:
    """Timeline rows (without number and as_of) from scratch tables of orders (None: no orders), subscriber
    records, email and web events."""
    parts = [] if orders is None else [f"""
    SELECT contact_id, brand, ordered_at AS occurred_at, 'order' AS event_type,
           CONCAT_WS(' ', 'order', order_id, status, {money_text('total')}, currency) AS detail,
           'orders' AS source_entity, order_id AS source_key
    FROM {orders}""", f"""
    SELECT o.contact_id, o.brand, o.changed_at, 'return',
           CONCAT_WS(' ', 'returned', {text('-i.quantity')}, 'x', i.sku, p.name, '(order ' || o.order_id || ')'),
           'order_items', i.order_id || ':' || {text('i.line_number')}
    FROM {orders} o
    JOIN stg_order_items i ON i._brand = o.brand AND i.order_id = o.order_id
    LEFT JOIN tmp_profile_products p ON p.brand = i._brand AND p.sku = i.sku
    WHERE i.quantity < 0 AND o.changed_at < :as_of_end"""]
    parts += [f"""
    SELECT contact_id, brand, subscribed_at AS occurred_at, 'subscribe' AS event_type,
           CONCAT_WS(' ', 'subscribed', email, 'via ' || source) AS detail, 'subscribers' AS source_entity,
           subscriber_id AS source_key
    FROM {subscribers} WHERE subscribed_at IS NOT NULL""", f"""
    SELECT contact_id, brand, unsubscribed_at, 'unsubscribe',
           CONCAT_WS(' ', 'unsubscribed', email, CASE WHEN status = 'bounced' THEN '(bounced)' END),
           'subscribers', subscriber_id
    FROM {subscribers} WHERE unsubscribed_at IS NOT NULL""", f"""
    SELECT contact_id, brand, occurred_at, {_case('event_type', _EMAIL_TYPES, "'email_' || event_type", quote=True)},
           {_case('event_type', _EMAIL_DETAIL, "event_type", quote=False)}, 'email_events', event_id
    FROM {email}""", f"""
    SELECT contact_id, brand, occurred_at, event_type,
           {_case('event_type', _WEB_DETAIL, "CONCAT_WS(' ', event_type, url)", quote=False)}, 'web_events', event_id
    FROM {web}"""]
    return "\n    UNION ALL".join(parts)


# Same-instant events keep a sensible order: an order before its return, a subscribe before an unsubscribe.
_RANK = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(TIMELINE_EVENT_TYPES))
# The source entities `_events` gives, as numbers in their alphabetical order: the same order as the names, with
# a narrower sort key (the numbering's sort is most of the timeline's CPU after its write).
_SOURCE_ENTITIES = " ".join(f"WHEN '{e}' THEN {i}" for i, e in enumerate(
    sorted(("orders", "order_items", "subscribers", "email_events", "web_events"))))
_ORDER = (f"ORDER BY occurred_at, CASE event_type {_RANK} ELSE 99 END, CASE source_entity {_SOURCE_ENTITIES} END, "
          "source_key")
_COLUMNS = "brand, occurred_at, event_type, detail, source_entity, source_key"

_TIMELINE_SQL = f"""
INSERT INTO {{into}} (contact_id, event_number, {_COLUMNS}, as_of)
SELECT contact_id, ROW_NUMBER() OVER (PARTITION BY contact_id {_ORDER}), {_COLUMNS}, :as_of
FROM ({_events("tmp_profile_orders", "tmp_profile_subscribers", "tmp_profile_email", "tmp_profile_web")}) e
WHERE occurred_at IS NOT NULL{{scope}}
"""

_TAIL = "tmp_profile_tail"
_TAIL_EVENTS = "tmp_profile_tail_events"
_NEW_EVENTS = f"""
SELECT * FROM ({_events(None, "tmp_profile_new_subscribers", "tmp_profile_new_email_all",
                        "tmp_profile_new_web_all")}) e
WHERE occurred_at IS NOT NULL AND occurred_at < :as_of_end"""
_DAY_EVENTS = f"""
SELECT * FROM ({_events("tmp_profile_win_orders", "tmp_profile_win_subscribers", "tmp_profile_win_email_all",
                        "tmp_profile_win_web_all")}) e
WHERE occurred_at >= :since AND occurred_at < :as_of_end"""
# Per appended contact: where its new events start (`since`) and how many stored events come before (`head`).
_TAIL_SQL = f"""
CREATE TEMPORARY TABLE {_TAIL} AS
SELECT c.contact_id, c.since, SUM(CASE WHEN t.occurred_at < c.since THEN 1 ELSE 0 END) AS head
FROM (SELECT contact_id, MIN(occurred_at) AS since FROM {_TAIL_EVENTS} GROUP BY contact_id) c
LEFT JOIN timeline t ON t.contact_id = c.contact_id
GROUP BY c.contact_id, c.since"""
_STORED_TAIL = f"SELECT t.* FROM timeline t JOIN {_TAIL} c ON c.contact_id = t.contact_id AND t.occurred_at >= c.since"
_APPEND_SQL = f"""
INSERT INTO {{into}} (contact_id, event_number, {_COLUMNS}, as_of)
SELECT e.contact_id, c.head + ROW_NUMBER() OVER (PARTITION BY e.contact_id {_ORDER}), {_COLUMNS}, :as_of
FROM (SELECT contact_id, {_COLUMNS} FROM {_TAIL_EVENTS}
      UNION ALL SELECT t.contact_id, {", ".join("t." + c for c in _COLUMNS.split(", "))} FROM ({_STORED_TAIL}) t) e
JOIN {_TAIL} c ON c.contact_id = e.contact_id
"""


def _scope(full: bool) -> str:
    return "" if full else f" AND contact_id IN (SELECT contact_id FROM {WHOLE})"


def build_timeline(conn: sa.Connection, params: dict, *, full: bool = True, whole: bool = True, since=None) -> int:
    """Rewrite the timeline rows of the contacts rebuilt whole (all when `full`) from the scratch tables, inside
    the caller's transaction (none unless `whole`); then the appended contacts' tails: their new events (new records, and records
    dated from `since`, the previous build's day end, when the day moved) merged with the stored events from the
    earliest new one on, renumbered after the events before it, which stay as they are. Returns the table's
    rows. Numbering is per contact, so one contact's renumbering never touches another's rows."""
    bound = {"as_of": params["as_of"], "as_of_end": params["as_of_end"]}
    if whole:
        into = rewrite.begin(conn, "timeline", full=full)
        conn.execute(sa.text(_TIMELINE_SQL.replace("{into}", into).replace("{scope}", _scope(full))), bound)
        rewrite.finish(conn, "timeline", KEY, WHOLE, full=full)
    if not full:
        events = _NEW_EVENTS if since is None else f"{_NEW_EVENTS}\nUNION\n{_DAY_EVENTS}"
        conn.execute(sa.text(f"CREATE TEMPORARY TABLE {_TAIL_EVENTS} AS {events}"), {**bound, "since": since}
                     if since is not None else bound)
        conn.execute(sa.text(_TAIL_SQL))
        into = rewrite.begin(conn, "timeline", full=False)
        conn.execute(sa.text(_APPEND_SQL.replace("{into}", into)), {"as_of": params["as_of"]})
        rewrite.finish(conn, "timeline", KEY, _TAIL, full=False, stored=_STORED_TAIL)
        for name in (_TAIL, _TAIL_EVENTS):
            conn.execute(sa.text(f"DROP TABLE {name}"))
    return conn.execute(sa.text("SELECT COUNT(*) FROM timeline")).scalar_one()


def latest_timeline(conn: sa.Connection, contact_id: str, limit: int = 20) -> pd.DataFrame:
    """A contact's latest `limit` interactions, newest first."""
    t = timeline.c
    query = (sa.select(t.occurred_at, t.brand, t.event_type, t.detail, t.source_entity, t.source_key,
                       t.event_number)
             .where(t.contact_id == contact_id)
             .order_by(t.event_number.desc())
             .limit(limit))
    return read_frame(conn, query)
