"""Hand-made profile_360 / profile_360_brand rows for audience tests: say only what matters."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.warehouse.bulk import insert_arrow
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.profile_schema import create_profile_tables, profile_360, profile_360_brand

AS_OF = dt.date(2025, 6, 30)
_ZERO = ("order_count", "revenue", "purchased_unit_count", "returned_unit_count",
         *[f"email_{k}_{n}d_count" for k in ("open", "click") for n in (30, 90, 365)])


def day(days_ago: int, as_of: dt.date = AS_OF) -> dt.date:
    return as_of - dt.timedelta(days=days_ago)


def at(days_ago: int, as_of: dt.date = AS_OF, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day(days_ago, as_of), dt.time(hour), tzinfo=dt.timezone.utc)


def _row(table: sa.Table, values: dict) -> dict:
    row = {c.name: None for c in table.columns}
    row.update({c: 0 for c in _ZERO})
    row["as_of"] = AS_OF
    row.update(values)
    return row


def _arrow(table: sa.Table, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=_schema(table))


def _schema(table: sa.Table) -> pa.Schema:
    fields = []
    for c in table.columns:
        t = c.type
        if isinstance(t, sa.DateTime):
            kind = pa.timestamp("us", tz="UTC")
        elif isinstance(t, sa.Date):
            kind = pa.date32()
        elif isinstance(t, sa.Boolean):
            kind = pa.bool_()
        elif isinstance(t, sa.Integer):
            kind = pa.int64()
        elif isinstance(t, sa.Float):
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(c.name, kind))
    return pa.schema(fields)


class Profiles:
    """Contacts with per-brand rows; the overall row is derived (sum of counts, latest dates)."""

    def __init__(self, tmp_path, url: str | None = None):
        self.engine = make_engine(url or f"duckdb:///{tmp_path}/w.duckdb")
        create_profile_tables(self.engine)
        self.contacts: dict[str, dict] = {}
        self.brand_rows: list[dict] = []

    def brand(self, contact_id: str, brand: str = "brand_a", *, email: str | None = None, **figures) -> None:
        """One brand row; `email_consent` defaults to True when subscribed."""
        figures.setdefault("email_consent", figures.get("subscription_status") == "subscribed")
        row = _row(profile_360_brand, {"contact_id": contact_id, "brand": brand, **figures})
        self.brand_rows.append(row)
        self.contacts.setdefault(contact_id, {"email": email or f"{contact_id.lower()}@example.com",
                                              "first_name": contact_id, "phone": None})
        if email:
            self.contacts[contact_id]["email"] = email

    def contact(self, contact_id: str, **golden) -> None:
        self.contacts.setdefault(contact_id, {}).update(golden)

    def save(self) -> None:
        overall = []
        for cid, golden in self.contacts.items():
            rows = [r for r in self.brand_rows if r["contact_id"] == cid]
            o = _row(profile_360, {"contact_id": cid, **golden})
            for c in _ZERO:
                o[c] = sum(r[c] for r in rows)
            for c, pick in (("first_order_date", min), ("last_order_date", max), ("last_open_at", max),
                            ("last_click_at", max), ("last_browse_at", max)):
                values = [r[c] for r in rows if r[c] is not None]
                o[c] = pick(values) if values else None
            for c in ("top_category_bought", "top_category_browsed", "price_band_bought"):
                o[c] = next((r[c] for r in rows if r[c] is not None), None)
            o["brands"] = ",".join(sorted(r["brand"] for r in rows))
            o["brand_count"] = len(rows)
            consent = sorted(r["brand"] for r in rows if r["email_consent"])
            o["email_consent_brands"] = ",".join(consent) or None
            o["email_consent"] = bool(consent)
            overall.append(o)
        with self.engine.begin() as conn:
            conn.execute(profile_360.delete())
            conn.execute(profile_360_brand.delete())
            insert_arrow(conn, profile_360, _arrow(profile_360, overall))
            insert_arrow(conn, profile_360_brand, _arrow(profile_360_brand, self.brand_rows))

    def members(self, as_of: dt.date = AS_OF) -> dict[str, set[str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT audience, contact_id FROM audience_members WHERE as_of = :d"),
                                {"d": as_of}).all()
        out: dict[str, set[str]] = {}
        for audience, contact in rows:
            out.setdefault(audience, set()).add(contact)
        return out
