"""The identity graph's raw material, read from staging in SQL.

Every person-linked source record joins the graph through a node: a customer account
(`brand|customer|<customer_id>`; orders and logged-in browsing with that id join it
too), a subscriber, a guest order, a web cookie, or an email recipient known only
from email events. Nodes carry identifiers (normalized email match key, E.164 phone);
nodes sharing an identifier value, or tied directly (a cookie that logged in), belong
to one person unless a guard says otherwise.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.warehouse.bulk import read_frame

# Per entity: the SQL expression of a record's node and of its natural key, over stg alias `t`.
RECORD_NODES: dict[str, tuple[str, str, str]] = {
    # entity: (node expression, source key expression, row filter)
    "customers": ("t._brand || '|customer|' || t.customer_id", "t.customer_id", "TRUE"),
    "subscribers": ("t._brand || '|subscriber|' || t.subscriber_id", "t.subscriber_id", "TRUE"),
    "orders": ("CASE WHEN t.customer_id IS NOT NULL THEN t._brand || '|customer|' || t.customer_id "
               "ELSE t._brand || '|guest|' || t.order_id END", "t.order_id", "TRUE"),
    "web_events": ("t._brand || '|cookie|' || t.cookie_id", "t.event_id", "t.cookie_id IS NOT NULL"),
    "email_events": ("CASE WHEN t.subscriber_id IS NOT NULL THEN t._brand || '|subscriber|' || t.subscriber_id "
                     "ELSE t._brand || '|recipient|' || t.email_match_key END", "t.event_id",
                     "(t.subscriber_id IS NOT NULL OR t.email_match_key IS NOT NULL)"),
}

# Identifiers each entity's records lend to their node.
_IDENTIFIERS: dict[str, list[tuple[str, str]]] = {
    "customers": [("email", "t.email_match_key"), ("phone", "t.phone")],
    "subscribers": [("email", "t.email_match_key")],
    "orders": [("email", "t.email_match_key"), ("phone", "t.phone")],
    "web_events": [("email", "t.email_match_key")],
    "email_events": [("email", "t.email_match_key")],
}

IDENTIFIER_KINDS = tuple(sorted({kind for identifiers in _IDENTIFIERS.values() for kind, _ in identifiers}))

# Per entity, the last file id an earlier resolution read: the rows after it are the new ones (file ids only grow).
Since = dict[str, int]


def _within(entity: str, since: Since | None) -> str:
    """A row filter keeping the rows of `entity` in files after `since[entity]`; None: all rows."""
    return "" if since is None else f" AND t._file_id > {int(since[entity])}"


def identifier_edges_sql(since: Since | None = None) -> str:
    """SELECT node_id, kind, value: distinct identifiers of every node, over all entities (of the records in files after
    `since` only, when given)."""
    parts = []
    for entity, identifiers in _IDENTIFIERS.items():
        node, _, where = RECORD_NODES[entity]
        for kind, expr in identifiers:
            parts.append(f"SELECT {node} AS node_id, '{kind}' AS kind, {expr} AS value "
                         f"FROM stg_{entity} t WHERE {where} AND {expr} IS NOT NULL{_within(entity, since)}")
    return "SELECT DISTINCT node_id, kind, value FROM (" + " UNION ALL ".join(parts) + ") e"


def direct_edges_sql(since: Since | None = None) -> str:
    """SELECT node_a, node_b: node pairs tied by the data itself, a cookie whose session logged in to an account
    (of the records in files after `since`
    only, when given)."""
    return ("SELECT DISTINCT t._brand || '|cookie|' || t.cookie_id AS node_a, "
            "t._brand || '|customer|' || t.customer_id AS node_b "
            f"FROM stg_web_events t WHERE t.cookie_id IS NOT NULL AND t.customer_id IS NOT NULL"
            f"{_within('web_events', since)}")


def all_nodes_sql(since: Since | None = None) -> str:
    """SELECT DISTINCT node_id: every node a record joins through (of the records in files after `since`
    only, when given)."""
    union = " UNION ALL ".join(f"SELECT {node} AS node_id FROM stg_{entity} t WHERE {where}{_within(entity, since)}"
                               for entity, (node, _, where) in RECORD_NODES.items())
    return f"SELECT DISTINCT node_id FROM ({union}) r"


# The nodes of named records (customers, subscribers): the ones `person_records` reads.
PERSON_NODES_SQL = ("SELECT t._brand || '|customer|' || t.customer_id AS node_id FROM stg_customers t "
                    "UNION SELECT t._brand || '|subscriber|' || t.subscriber_id FROM stg_subscribers t")


def person_records_sql(since: Since | None = None) -> str:
    """SELECT the named records (customers, subscribers) with the fields the guards and probabilistic matching use
    (of the files after `since` only, when given)."""
    return ("SELECT t._brand || '|customer|' || t.customer_id AS node_id, t.first_name, t.last_name, t.birth_date, "
            "t.address_line1, t.postal_code, t.city, t.region, t.country, t.email_match_key, t.phone "
            f"FROM stg_customers t WHERE TRUE{_within('customers', since)} "
            "UNION ALL "
            "SELECT t._brand || '|subscriber|' || t.subscriber_id, t.first_name, t.last_name, CAST(NULL AS DATE), "
            "CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), t.country, "
            "t.email_match_key, CAST(NULL AS VARCHAR) "
            f"FROM stg_subscribers t WHERE TRUE{_within('subscribers', since)}")


def person_records(conn: sa.Connection) -> pd.DataFrame:
    """Named records (customers, subscribers) with the fields the guards and probabilistic matching use.

    One row per node; when a node has several rows (a customer re-sent), the staged one wins (staging
    already keeps one row per key).
    """
    return read_frame(conn, sa.text(person_records_sql()))
