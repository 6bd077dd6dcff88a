"""The identifiers erasure works with: normalized exactly as staging does, then hashed.

A person is kept out by the SHA-256 (lowercase hex) of each normalized identifier, per kind:
- `email`: trimmed, lowercased, NFKC (the email standardizer); `email_key`: its identity match
  key (plus-tag dropped, Gmail dots dropped), so `J.Doe+shop@gmail.com` is kept out as `jdoe@gmail.com`;
- `phone`: E.164, read with the row's country as staging does;
- `customer`, `subscriber`, `order`, `cookie`: the brand-scoped source key `<brand>|<id>` (id cleaned
  like staging), so the rows that carry no email or phone (order lines, logged-in browsing) stay out too.

Clear values live only in memory while a request runs; tables and logs get the digests.
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.contract import Entity
from crm_pipeline.quality.standardize import clean_text, standardize_country, standardize_email, standardize_phone

# Suppression kind -> the column that carries that source key in any entity having it.
KEY_COLUMNS = {"customer": "customer_id", "subscriber": "subscriber_id", "order": "order_id", "cookie": "cookie_id"}
# The column whose standardized country is the region a row's phone is read with.
_PHONE_REGION_COLUMNS = ("country", "shipping_country")


def sha256_text(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def sha256_series(values: pd.Series) -> pd.Series:
    """Hex SHA-256 of every non-missing value, computed once per distinct value (missing stays missing)."""
    array = pa.array(values.astype("string").array, type=pa.large_string())
    encoded = pc.dictionary_encode(array)
    digests = pa.array([sha256_text(v) for v in encoded.dictionary.to_pylist()], type=pa.large_string())
    hashed = pc.take(digests, encoded.indices)
    return pd.Series(pd.array(hashed, dtype=pd.StringDtype("pyarrow")), index=values.index)


def normalize_email(text: str) -> tuple[str | None, str | None]:
    """(email, match key) as staging writes them; the key is None for an address that is not valid."""
    email, _valid, key = standardize_email(pd.Series([text], dtype="string"))
    return _scalar(email.iloc[0]), _scalar(key.iloc[0])


def normalize_phone(text: str, region: str = "US") -> str | None:
    """E.164 for `text` read in `region` (a `+` prefix wins); None when it is not a phone number."""
    e164, _valid = standardize_phone(pd.Series([text], dtype="string"), region)
    return _scalar(e164.iloc[0])


def brand_key(brand: str, value: str) -> str:
    return f"{brand}|{value}"


def landed_identifiers(entity: Entity, rows: pd.DataFrame, kinds: set[str] | None = None) -> dict[str, pd.Series]:
    """Per suppression kind, the normalized value each landed row carries (missing where none).

    `rows` is in raw layout (text as landed plus `_brand`); only `kinds` are computed when given,
    so a file pays for phone parsing only when a phone is on the list.
    """
    wanted = set(kinds) if kinds is not None else {"email", "email_key", "phone", *KEY_COLUMNS}
    out: dict[str, pd.Series] = {}
    if entity.has_column("email") and wanted & {"email", "email_key"}:
        email, _valid, key = standardize_email(rows["email"])
        out["email"], out["email_key"] = email, key
    if entity.has_column("phone") and "phone" in wanted:
        region_column = next((c for c in _PHONE_REGION_COLUMNS if entity.has_column(c)), None)
        region = standardize_country(rows[region_column])[0].fillna("US") if region_column else "US"
        out["phone"] = standardize_phone(rows["phone"], region)[0]
    brand = rows["_brand"].astype("string")
    for kind, column in KEY_COLUMNS.items():
        if kind in wanted and entity.has_column(column):
            out[kind] = brand + "|" + clean_text(rows[column]).astype("string")
    return {kind: values for kind, values in out.items() if kind in wanted}


def _scalar(value) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)

