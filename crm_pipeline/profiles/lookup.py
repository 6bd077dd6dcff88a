"""Finding a contact by email, phone or id, and the text `crm-pipeline profile` prints for it."""

from __future__ import annotations

import math

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.profiles.timeline import latest_timeline
from crm_pipeline.quality.standardize.email import standardize_email
from crm_pipeline.quality.standardize.phone import standardize_phone
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.profile_schema import profile_360, profile_360_brand

# Staged records that carry an email / a phone, with their natural key (the identity_map source_key).
_EMAIL_SOURCES = (("customers", "customer_id"), ("subscribers", "subscriber_id"), ("orders", "order_id"))
_PHONE_SOURCES = (("customers", "customer_id"), ("orders", "order_id"))


def find_contact(conn: sa.Connection, *, email: str | None = None, contact_id: str | None = None,
                 phone: str | None = None) -> str | None:
    """The contact id for an id, an email or a phone (first given wins); None when nobody matches.

    An email is standardized as in staging (trimmed, lowercased) and matched on the address
    itself or its match key (`j.a.n.e+shop@gmail.com` finds `jane@gmail.com`) across customer
    accounts, subscribers and orders, through `identity_map`. A phone is standardized to
    E.164. When several contacts match, the one with an exact match and the most matching
    records wins.
    """
    if contact_id is not None:
        found = conn.execute(sa.text("SELECT contact_id FROM identity_map WHERE contact_id = :c LIMIT 1"),
                             {"c": contact_id}).scalar()
        return found
    if email is not None:
        value, _valid, key = (s.iloc[0] for s in standardize_email(pd.Series([email], dtype="string")))
        return _best_match(conn, "email", _EMAIL_SOURCES, _text_or_none(value), _text_or_none(key))
    if phone is not None:
        value, _valid = (s.iloc[0] for s in standardize_phone(pd.Series([phone], dtype="string")))
        return _best_match(conn, "phone", _PHONE_SOURCES, _text_or_none(value), None)
    raise ValueError("find_contact needs email, contact_id or phone")


def _text_or_none(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value) else str(value)


def _best_match(conn: sa.Connection, column: str, sources, value: str | None, key: str | None) -> str | None:
    if value is None and key is None:
        return None
    keyed = column == "email" and key is not None
    parts = []
    for entity, key_column in sources:
        match = f"s.{column} = :value" + (" OR s.email_match_key = :key" if keyed else "")
        parts.append(f"""
            SELECT m.contact_id, CASE WHEN s.{column} = :value THEN 1 ELSE 0 END AS exact
            FROM stg_{entity} s
            JOIN identity_map m ON m.entity = '{entity}' AND m.brand = s._brand AND m.source_key = s.{key_column}
            WHERE {match}""")
    sql = f"""
        SELECT contact_id FROM ({" UNION ALL ".join(parts)}) hits
        GROUP BY contact_id ORDER BY MAX(exact) DESC, COUNT(*) DESC, contact_id LIMIT 1"""
    params = {"value": value, **({"key": key} if keyed else {})}
    return conn.execute(sa.text(sql), params).scalar()


# --- rendering ------------------------------------------------------------------------------------

def render_profile(conn: sa.Connection, contact_id: str, *, limit: int = 20) -> str:
    """Golden fields, overall and per-brand figures, consent, then the latest timeline entries."""
    overall = read_frame(conn, sa.select(profile_360).where(profile_360.c.contact_id == contact_id))
    if overall.empty:
        return f"No profile for contact {contact_id} (run the profiles build first, or the id is unknown)."
    p = overall.iloc[0]
    brands = read_frame(conn, sa.select(profile_360_brand).where(profile_360_brand.c.contact_id == contact_id)
                        .order_by(profile_360_brand.c.brand))
    name = " ".join(v for v in (_s(p.first_name), _s(p.last_name)) if v) or "(no name)"
    address = ", ".join(v for v in (_s(p.address_line1), _s(p.address_line2), _s(p.city),
                                    " ".join(x for x in (_s(p.region), _s(p.postal_code)) if x), _s(p.country)) if v)
    lines = [
        f"{name}  (contact {contact_id}, as of {_s(p.as_of)})",
        f"  email     {_s(p.email) or '-'}",
        f"  phone     {_s(p.phone) or '-'}",
        f"  address   {address or '-'}",
        f"  born      {_s(p.birth_date) or '-'}",
        f"  brands    {_s(p.brands) or '-'}",
        "",
        "Overall (amounts summed in their own currencies; no FX conversion)",
        *_figures(p),
        f"  email consent: {_s(p.email_consent_brands) or 'none'}",
        *_scoring(p),
    ]
    for _, b in brands.iterrows():
        subscription = _s(b.subscription_status) or "not on the list"
        if _s(b.subscribed_date):
            subscription += f" (subscribed {_s(b.subscribed_date)})"
        lines += ["", f"Brand {b.brand}", *_figures(b),
                  f"  subscription {subscription}; email consent {'yes' if bool(b.email_consent) else 'no'}",
                  *_scoring(b)]
    events = latest_timeline(conn, contact_id, limit=limit)
    lines += ["", f"Latest {len(events)} interactions"]
    for _, e in events.iterrows():
        when = pd.Timestamp(e.occurred_at).tz_convert("UTC").strftime("%Y-%m-%d %H:%M")
        lines.append(f"  {when}  {e.brand:<10} {e.event_type:<15} {e.detail}")
    return "\n".join(lines)


def _figures(r) -> list[str]:
    rate = "-" if _s(r.return_rate) is None else f"{float(r.return_rate):.1%}"
    aov = "-" if _s(r.average_order_value) is None else f"{float(r.average_order_value):.2f}"
    return [
        f"  orders {int(r.order_count)}  revenue {float(r.revenue):.2f} {_s(r.currencies) or ''}".rstrip()
        + f"  avg order {aov}  first {_s(r.first_order_date) or '-'}  last {_s(r.last_order_date) or '-'}",
        f"  units bought {int(r.purchased_unit_count)}  returned {int(r.returned_unit_count)}  return rate {rate}",
        f"  top category bought {_s(r.top_category_bought) or '-'}  browsed {_s(r.top_category_browsed) or '-'}"
        f"  price band {_s(r.price_band_bought) or '-'}",
        f"  opens 30/90/365d {int(r.email_open_30d_count)}/{int(r.email_open_90d_count)}/"
        f"{int(r.email_open_365d_count)}  clicks {int(r.email_click_30d_count)}/{int(r.email_click_90d_count)}/"
        f"{int(r.email_click_365d_count)}",
        f"  last open {_when(r.last_open_at)}  last click {_when(r.last_click_at)}"
        f"  last browse {_when(r.last_browse_at)}",
    ]


def _scoring(r) -> list[str]:
    """Engagement score with its growth and band, lifecycle stage and preferred channel (once scored)."""
    if _s(getattr(r, "engagement_score", None)) is None:
        return ["  engagement not scored for this day (run the scoring stage)"]
    return [f"  engagement score {float(r.engagement_score):.1f} ({_s(r.engagement_growth_band)}; "
            f"{float(r.engagement_change_7d):+.1f} vs 7d, {float(r.engagement_change_30d):+.1f} vs 30d; "
            f"top {float(r.engagement_top_percent):.1f}%)  lifecycle {_s(r.lifecycle_stage) or '-'}"
            f"  preferred channel {_s(r.preferred_channel) or '-'}"]


def _s(value) -> str | None:
    """A cell as text; None for a missing value (None, NaN, NaT, <NA>)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value)


def _when(value) -> str:
    return "-" if _s(value) is None else pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M")
