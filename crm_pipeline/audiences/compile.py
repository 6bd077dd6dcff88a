"""Rule trees -> SQLAlchemy boolean expressions with bound parameters (never SQL text from users).

Columns come from an allow-listed catalogue (`rules.SOURCES`), values are bound parameters,
and the day arithmetic is done in Python from `as_of`, so the same expression runs on DuckDB
and PostgreSQL. Every leaf is strictly true or false (a comparison on a missing value is
false), so `not` never meets SQL's unknown.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from crm_pipeline.audiences.rules import (
    EMAIL_EVENTS, All, AnyOf, EventCondition, FieldCondition, Node, Not,
)
from crm_pipeline.profiles.sql import NOT_PURCHASE_STATUSES
from crm_pipeline.warehouse.identity_schema import identity_map
from crm_pipeline.warehouse.quality_schema import stg_tables

_TYPES = {"int": sa.BigInteger, "float": sa.Double, "date": sa.Date, "timestamp": lambda: sa.DateTime(timezone=True),
          "string": sa.String, "bool": sa.Boolean}


def sa_type(kind: str):
    return _TYPES[kind]()


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC at the start of `day`."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


class Compiler:
    """Compiles rule trees against `base` (a table or alias holding the catalogue's columns) for one day.

    `brand` is the scope's brand (None across brands): event conditions without their own
    `brand` count that brand's events only.

    An event condition is a LEFT JOIN of `base` to its contacts (one row each) and the test that one matched,
    not `contact_id IN (subquery)`: a rule puts it under OR, NOT or CASE and the audiences' INSERT in an arm of
    a UNION ALL, shapes DuckDB 1.5.6 can park every thread on for good (duckdb/duckdb#24961). So a query with
    a compiled condition selects from `joined()`, which carries those joins.
    """

    def __init__(self, base: sa.FromClause, *, as_of: dt.date, brand: str | None = None):
        self.base, self.as_of, self.brand = base, as_of, brand
        self._events: list[sa.Subquery] = []  # the event conditions' contact sets, in the order compiled

    def joined(self) -> sa.FromClause:
        """`base` LEFT JOINed to the contact sets of the event conditions compiled so far."""
        joined = self.base
        for found in self._events:
            joined = joined.outerjoin(found, found.c.contact_id == self.base.c.contact_id)
        return joined

    def compile(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, All):
            return sa.and_(*(self.compile(n) for n in node.items))
        if isinstance(node, AnyOf):
            return sa.or_(*(self.compile(n) for n in node.items))
        if isinstance(node, Not):
            return sa.not_(self.compile(node.item))
        if isinstance(node, FieldCondition):
            return self._field(node)
        if isinstance(node, EventCondition):
            found = self._event_contacts(node).subquery()
            self._events.append(found)
            return found.c.contact_id.is_not(None)
        raise TypeError(f"not a rule node: {node!r}")

    # -- field conditions ---------------------------------------------------------------------------
    def _field(self, node: FieldCondition) -> ColumnElement[bool]:
        col = self.base.c[node.field]
        op, value = node.op, node.value
        if op == "is_null":
            return col.is_(None) if value else col.is_not(None)
        if op in ("within_days", "days_ago_between"):
            low, high = self._window(op, value)
            return sa.and_(*self._range(col, node.kind, low, high))
        if node.kind == "timestamp":  # a date compared with a timestamp: whole UTC days
            return sa.and_(col.is_not(None), self._timestamp_compare(col, op, value))
        if op == "in":
            cmp = col.in_([sa.bindparam(None, v, type_=sa_type(node.kind)) for v in value])
        else:
            bound = sa.bindparam(None, value, type_=sa_type(node.kind))
            cmp = {"=": col == bound, "!=": col != bound, "<": col < bound, "<=": col <= bound,
                   ">": col > bound, ">=": col >= bound}[op]
        return sa.and_(col.is_not(None), cmp)

    def _timestamp_compare(self, col, op: str, value):
        if op == "in":
            return sa.or_(*(self._timestamp_compare(col, "=", v) for v in value))
        start, end = day_start(value), day_start(value + dt.timedelta(days=1))
        return {"=": sa.and_(col >= start, col < end), "!=": sa.or_(col < start, col >= end),
                "<": col < start, "<=": col < end, ">": col >= end, ">=": col >= start}[op]

    def _window(self, op: str, value) -> tuple[dt.date | None, dt.date]:
        """The first and last day (inclusive) of a relative window; None = open start."""
        if op == "within_days":  # as_of - N < day <= as_of
            return self.as_of - dt.timedelta(days=value - 1), self.as_of
        low_days, high_days = value  # as_of - high <= day <= as_of - low
        first = None if high_days is None else self.as_of - dt.timedelta(days=high_days)
        return first, self.as_of - dt.timedelta(days=low_days)

    @staticmethod
    def _range(col, kind: str, first: dt.date | None, last: dt.date) -> list:
        terms = [col.is_not(None)]
        if kind == "timestamp":
            if first is not None:
                terms.append(col >= sa.bindparam(None, day_start(first), type_=sa_type(kind)))
            terms.append(col < sa.bindparam(None, day_start(last + dt.timedelta(days=1)), type_=sa_type(kind)))
        else:
            if first is not None:
                terms.append(col >= sa.bindparam(None, first, type_=sa.Date()))
            terms.append(col <= sa.bindparam(None, last, type_=sa.Date()))
        return terms

    # -- event conditions ---------------------------------------------------------------------------
    def _event_contacts(self, node: EventCondition) -> sa.Select:
        found = self._event_select(node.event, node)
        query = found.group_by(found.selected_columns.contact_id)
        if node.min_count > 1:
            counted = found.selected_columns.counted
            query = query.having(sa.func.count(sa.distinct(counted)) >= sa.bindparam(None, node.min_count))
        query = query.with_only_columns(found.selected_columns.contact_id)
        if node.without:
            excluded = self._event_select(node.without, node, for_without=True)
            query = sa.except_(query, excluded.with_only_columns(excluded.selected_columns.contact_id)).subquery()
            return sa.select(query.c.contact_id)
        return query

    def _event_select(self, event: str, node: EventCondition, for_without: bool = False) -> sa.Select:
        """contact_id, counted (what min_count counts) of the matching events, as of the end of as_of."""
        brand = node.brand or self.brand
        if event in EMAIL_EVENTS:
            s, entity, key, when = stg_tables["email_events"], "email_events", "event_id", "occurred_at"
            terms = [s.c.event_type == sa.bindparam(None, event.removeprefix("email_"))]
            if node.campaign_id and not for_without:
                terms.append(s.c.campaign_id == sa.bindparam(None, node.campaign_id))
            counted = s.c.event_id
        elif event == "purchase":
            s, entity, key, when = stg_tables["orders"], "orders", "order_id", "ordered_at"
            terms = [sa.or_(s.c.status.is_(None), s.c.status.not_in(list(NOT_PURCHASE_STATUSES)))]
            counted = s.c.order_id
        else:
            s, entity, key, when = stg_tables["web_events"], "web_events", "event_id", "occurred_at"
            terms = [s.c.event_type == sa.bindparam(None, event)]
            counted = s.c.event_id
        m = identity_map.alias("m")
        query = (sa.select(m.c.contact_id.label("contact_id"), counted.label("counted"))
                 .select_from(s.join(m, sa.and_(m.c.entity == sa.literal(entity), m.c.brand == s.c._brand,
                                                m.c.source_key == s.c[key]))))
        if brand:
            terms.append(s.c._brand == sa.bindparam(None, brand))
        if event != "purchase" and event not in EMAIL_EVENTS:
            if node.sku:
                terms.append(s.c.sku == sa.bindparam(None, node.sku))
            if node.category:
                products = stg_tables["products"].alias("p")
                query = query.join(products, sa.and_(products.c._brand == s.c._brand, products.c.sku == s.c.sku))
                terms.append(_category_matches(products.c.category, node.category))
        elif event == "purchase" and (node.sku or node.category):
            items = stg_tables["order_items"].alias("i")
            query = query.join(items, sa.and_(items.c._brand == s.c._brand, items.c.order_id == s.c.order_id))
            terms.append(items.c.quantity > 0)
            if node.sku:
                terms.append(items.c.sku == sa.bindparam(None, node.sku))
            if node.category:
                products = stg_tables["products"].alias("p")
                query = query.join(products, sa.and_(products.c._brand == items.c._brand,
                                                     products.c.sku == items.c.sku))
                terms.append(_category_matches(products.c.category, node.category))
        first, last = self._event_window(node)
        if first is not None:
            terms.append(s.c[when] >= sa.bindparam(None, day_start(first), type_=sa.DateTime(timezone=True)))
        terms.append(s.c[when] < sa.bindparam(None, day_start(last + dt.timedelta(days=1)),
                                              type_=sa.DateTime(timezone=True)))
        return query.where(*terms)

    def _event_window(self, node: EventCondition) -> tuple[dt.date | None, dt.date]:
        if node.within_days is not None:
            return self._window("within_days", node.within_days)
        if node.days_ago_between is not None:
            return self._window("days_ago_between", node.days_ago_between)
        return None, self.as_of


def _category_matches(path_col, value: str) -> ColumnElement[bool]:
    """True when any level of a `Women > Shoes > Boots` path is `value` (case-insensitive).

    The value is a bound LIKE pattern with its own wildcards escaped: it matches literally.
    """
    escaped = value.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    levels = sa.literal(">") + sa.func.replace(sa.func.replace(sa.func.lower(path_col), " > ", ">"), " >", ">") \
        + sa.literal(">")
    return levels.like(sa.bindparam(None, f"%>{escaped}>%"), escape="\\")
