"""Listing audiences and exporting one day's members: CSV, Parquet, or hashed identifiers.

- Suppressed people (by contact id or email hash in `suppression_list`) are never exported,
  even when the list changed after the audience was materialized.
- CSV cells that start with `=`, `+`, `-`, `@`, a tab or a carriage return get a leading single
  quote, so a spreadsheet shows them as text instead of running them as a formula, unless the
  whole cell is plain data no spreadsheet runs: a number (`-12.5`, `+3`), an E.164 phone
  (`+17862509256`) or an ISO date. An ESP or ad platform then imports the phone as it is.
- `hashed` writes the SHA-256 (lowercase hex) of the trimmed, lowercased email and of the
  E.164 phone (`+14155550123`); an empty or unparseable value gets no hash.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from pathlib import Path
from typing import BinaryIO, TextIO, Union

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from crm_pipeline.audiences.materialize import audience_summary
from crm_pipeline.quality.standardize.phone import standardize_phone
from crm_pipeline.warehouse.audience_schema import audience_members, audience_sizes, suppression_list

FORMATS = ("csv", "parquet", "hashed")
EXPORT_COLUMNS = ["contact_id", "email", "phone", "first_name", "last_name", "brand_scope"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A whole cell that is a number (an E.164 phone is one) is data, never a formula. ISO dates and
# timestamps start with a digit, so they are never touched either.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)

Out = Union[str, Path, BinaryIO, TextIO]


def list_audiences(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """Every audience of `as_of`: size, the previous snapshot's size, the change, entries and exits."""
    out = audience_summary(conn, as_of)
    previous = conn.execute(sa.select(sa.func.max(audience_sizes.c.as_of))
                            .where(audience_sizes.c.as_of < as_of)).scalar_one()
    out["previous_as_of"] = previous
    if previous is None:
        out["previous_size"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    else:
        before = dict(conn.execute(sa.select(audience_sizes.c.audience, audience_sizes.c.size)
                                   .where(audience_sizes.c.as_of == previous)).all())
        out["previous_size"] = pd.array([before.get(a) for a in out["audience"]], dtype="Int64")
    out["change"] = out["size"].astype("Int64") - out["previous_size"].fillna(0)
    return out[["audience", "label", "kind", "brand_scope", "size", "previous_as_of", "previous_size", "change",
                "entered", "exited", "note"]]


def normalize_email(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    text = str(value).strip().lower()
    return text or None


def sha256_hex(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def escape_cell(value):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading quote,
    unless the whole cell is a number, an E.164 phone or an ISO date (data, kept as is)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def members(conn: sa.Connection, name: str, as_of: dt.date) -> pd.DataFrame:
    """The audience's members of `as_of` minus everyone on the suppression list now."""
    m = audience_members
    known = conn.execute(sa.select(sa.func.count()).select_from(audience_sizes)
                         .where(audience_sizes.c.as_of == as_of, audience_sizes.c.audience == name)).scalar_one()
    query = (sa.select(*[m.c[c] for c in EXPORT_COLUMNS])
             .where(m.c.as_of == as_of, m.c.audience == name,
                    ~sa.exists().where(suppression_list.c.contact_id == m.c.contact_id))
             .order_by(m.c.contact_id))
    frame = pd.DataFrame(conn.execute(query).all(), columns=EXPORT_COLUMNS)
    if not known and frame.empty:
        raise KeyError(f"no audience {name!r} materialized for {as_of}")
    hashes = {str(h).strip().lower() for h in conn.execute(
        sa.select(suppression_list.c.email_sha256).where(suppression_list.c.email_sha256.is_not(None))).scalars()}
    if hashes and len(frame):
        email_hash = frame["email"].map(lambda v: sha256_hex(normalize_email(v)))
        frame = frame[~email_hash.isin(hashes)].reset_index(drop=True)
    return frame


def hashed(frame: pd.DataFrame) -> pd.DataFrame:
    emails = frame["email"].map(lambda v: sha256_hex(normalize_email(v)))
    phones = frame["phone"].astype("string")
    e164, _valid = standardize_phone(phones) if len(phones) else (phones, None)
    phone_hash = pd.Series([sha256_hex(v) if isinstance(v, str) and v else None for v in e164.astype(object)
                            .where(e164.notna(), None)], index=frame.index, dtype=object)
    return pd.DataFrame({"email_sha256": emails.astype(object), "phone_sha256": phone_hash})


def export_audience(conn: sa.Connection, name: str, as_of: dt.date, fmt: str = "csv", out: Out = None) -> int:
    """Write the audience's members of `as_of` to `out` (path or file object); returns the rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if out is None:
        raise ValueError("out: a path or file object is required")
    frame = members(conn, name, as_of)
    if fmt == "parquet":
        table = pa.Table.from_pandas(frame.astype(object).where(frame.notna(), None), preserve_index=False,
                                     schema=pa.schema([(c, pa.string()) for c in EXPORT_COLUMNS]))
        pq.write_table(table, out if not isinstance(out, Path) else str(out))
        return len(frame)
    data = hashed(frame) if fmt == "hashed" else frame
    data = data.astype(object).where(data.notna(), None).map(escape_cell)
    buffer = io.StringIO()
    data.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    text = buffer.getvalue()
    if isinstance(out, (str, Path)):
        Path(out).write_text(text, encoding="utf-8")
    elif isinstance(out, io.TextIOBase):
        out.write(text)
    else:
        out.write(text.encode("utf-8"))
    return len(frame)
