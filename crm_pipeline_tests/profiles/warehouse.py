"""A hand-built warehouse for profile tests: staging rows and identity links, a few at a time."""

from __future__ import annotations

import datetime as dt
import itertools

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.quality.standardize.email import standardize_email
from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.identity_schema import create_identity_tables, identity_map
from crm_pipeline.warehouse.quality_schema import create_quality_tables, stg_tables

AS_OF = dt.date(2025, 6, 30)
KEYS = {"customers": "customer_id", "subscribers": "subscriber_id", "orders": "order_id",
        "email_events": "event_id", "web_events": "event_id"}


def ts(text: str) -> dt.datetime:
    """'2025-06-30 10:00' -> an aware UTC datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def days_before(days: int, at: str = "12:00") -> dt.datetime:
    """A time `days` days before AS_OF (0 = on AS_OF)."""
    return ts(f"{AS_OF - dt.timedelta(days=days)} {at}")


class Warehouse:
    """Staging rows added per entity; person-linked rows are linked to a contact at once."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._row = itertools.count(1)
        create_quality_tables(engine)
        create_identity_tables(engine)

    def add(self, entity: str, contact: str | None = None, brand: str = "alpha", **values) -> dict:
        """One staged row of `entity` (and its identity link to `contact` when given)."""
        n = next(self._row)
        row = {"_file_id": 1, "_row_number": n, "_brand": brand, "_row_hash": n, **values}
        table = stg_tables[entity]
        if values.get("email") and "email_match_key" in table.c:  # as staging derives it
            row["email_match_key"] = standardize_email(pd.Series([values["email"]], dtype="string"))[2].iloc[0]
        with self.engine.begin() as conn:
            insert_arrow(conn, table, _arrow(table, [row]))
            if contact is not None:
                link = {"brand": brand, "entity": entity, "source_key": str(values[KEYS[entity]]),
                        "node_id": f"{entity}:{values[KEYS[entity]]}", "contact_id": contact,
                        "match_type": "deterministic", "match_probability": None}
                # lineage of the staged row, where the identity room records it
                link.update({c: row[c] for c in ("_file_id", "_row_number") if c in identity_map.c})
                insert_arrow(conn, identity_map, _arrow(identity_map, [link]))
        return row

    def customer(self, contact: str, customer_id: str, brand: str = "alpha", **values) -> dict:
        return self.add("customers", contact, brand, customer_id=customer_id, **values)

    def order(self, contact: str, order_id: str, ordered_at: dt.datetime, total: float, *, brand: str = "alpha",
              status: str = "delivered", currency: str = "USD", lines=(), **values) -> dict:
        """An order and its lines: `lines` = [(sku, quantity, unit_price), ...]."""
        row = self.add("orders", contact, brand, order_id=order_id, ordered_at=ordered_at, total=total,
                       status=status, currency=currency, **values)
        for number, (sku, quantity, price) in enumerate(lines, start=1):
            self.add("order_items", None, brand, order_id=order_id, line_number=number, sku=sku,
                     quantity=quantity, unit_price=price)
        return row

    def product(self, sku: str, price: float, category: str, name: str | None = None, brand: str = "alpha"):
        return self.add("products", None, brand, sku=sku, price=price, category=category, name=name or sku)

    def subscriber(self, contact: str, subscriber_id: str, email: str, status: str, *, brand: str = "alpha",
                   **values) -> dict:
        return self.add("subscribers", contact, brand, subscriber_id=subscriber_id, email=email, status=status,
                        **values)

    _events = itertools.count(1)

    def email_event(self, contact: str, event_type: str, occurred_at: dt.datetime, *, brand: str = "alpha",
                    **values) -> dict:
        return self.add("email_events", contact, brand, event_id=f"E{next(self._events)}", event_type=event_type,
                        occurred_at=occurred_at, **values)

    def web_event(self, contact: str, event_type: str, occurred_at: dt.datetime, *, brand: str = "alpha",
                  **values) -> dict:
        return self.add("web_events", contact, brand, event_id=f"W{next(self._events)}", cookie_id="ck",
                        event_type=event_type, occurred_at=occurred_at, **values)

    def frame(self, sql: str, **params) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn, params=params)

    def one(self, sql: str, **params) -> dict:
        rows = self.frame(sql, **params).to_dict("records")
        assert len(rows) == 1, rows
        return rows[0]


def _arrow(table: sa.Table, rows: list[dict]) -> pa.Table:
    """Rows as Arrow with the table's column types, so an all-None column still has a type."""
    types = {sa.String: pa.string(), sa.Integer: pa.int64(), sa.BigInteger: pa.int64(), sa.Float: pa.float64(),
             sa.Boolean: pa.bool_(), sa.Date: pa.date32()}
    fields = []
    names = list(rows[0])
    for name in names:
        col_type = table.c[name].type
        if isinstance(col_type, sa.DateTime):
            fields.append(pa.field(name, pa.timestamp("us", tz="UTC")))
        else:
            fields.append(pa.field(name, next(v for k, v in types.items() if isinstance(col_type, k))))
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))
