"""One file's raw rows -> typed, standardized rows plus the hard rules each row broke.

Only rules a row can break on its own live here (missing required field, unparseable
date, negative price, malformed email, future timestamp, bad number or value).
Rules that need other rows (a key used twice, an order line with no order) are
decided in SQL when staging is published (`quality/publish.py`).

A timestamp is "in the future" when it lies after the day its file was written: a
file cannot describe what happened after it was exported. This keeps staging
independent of the run's as-of day, so replaying a past day never quarantines
rows that were fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from crm_pipeline.contract import Entity
from crm_pipeline.contract import violations as rules
from crm_pipeline.quality import standardize as std

EMAIL_COLUMNS = {"email"}
PHONE_COLUMNS = {"phone"}
COUNTRY_COLUMNS = {"country", "shipping_country"}
NAME_COLUMNS = {"first_name", "last_name"}
ADDRESS_COLUMNS = {"address_line1", "address_line2"}
PLACE_COLUMNS = {"city", "region"}
PRICE_COLUMNS = {"unit_price", "price", "total", "subtotal"}  # never negative (returns are negative quantities)
FREE_TEXT_COLUMNS = NAME_COLUMNS | ADDRESS_COLUMNS | PLACE_COLUMNS | {"name"}
TRUE_VALUES = {"true", "1", "yes", "t", "y"}
FALSE_VALUES = {"false", "0", "no", "f", "n"}
ROW_HASH = "_row_hash"  # a hash of the raw contract values: equal raw rows, equal hash


@dataclass
class TypedRows:
    rows: pd.DataFrame  # lineage + typed contract columns + email_match_key + _flags + _row_hash
    violations: pd.DataFrame  # _file_id, _row_number, column, rule, raw_value


def standardize_rows(entity: Entity, raw: pd.DataFrame, *, written_on: date | pd.Series) -> TypedRows:
    """Type and standardize `raw` (text columns as landed) for `entity`.

    `written_on` is the day the rows' file was written: one date, or one per row when
    `raw` holds several files. A `_row_hash` column in `raw` (computed by the warehouse)
    is kept; without it the raw values are hashed here.
    """
    if isinstance(written_on, pd.Series):
        written_on = written_on.set_axis(raw.index).astype("datetime64[us]")
    else:
        written_on = pd.Timestamp(written_on)
    out = pd.DataFrame({"_file_id": raw["_file_id"].astype("int64"),
                        "_row_number": raw["_row_number"].astype("int64"),
                        "_brand": raw["_brand"].astype("str")}, index=raw.index)
    found: list[pd.DataFrame] = []
    flags: list[pd.Series] = []

    def hard(column: str, rule: str, where: pd.Series) -> None:
        where = where.fillna(False).astype(bool)
        if where.any():
            value = raw.loc[where, column] if column in raw.columns else None
            found.append(pd.DataFrame({"_file_id": out.loc[where, "_file_id"],
                                       "_row_number": out.loc[where, "_row_number"],
                                       "column": column, "rule": rule, "raw_value": value}))

    def soft(name: str, where: pd.Series) -> None:
        where = where.fillna(False).astype(bool)
        if where.any():
            flags.append(pd.Series(np.where(where, name, None), index=raw.index, dtype="object"))

    needed = set(entity.required_columns) | {c for group in entity.one_of for c in group}
    present = {c: raw[c].notna() & (raw[c].astype("str").str.strip() != "") for c in needed}
    for column in entity.required_columns:
        hard(column, rules.MISSING_REQUIRED_FIELD, ~present[column])
    for group in entity.one_of:
        none = ~np.logical_or.reduce([present[c] for c in group])
        hard("|".join(group), rules.MISSING_REQUIRED_FIELD, pd.Series(none, index=raw.index))

    countries = {}
    for column in entity.column_names:
        if column in COUNTRY_COLUMNS:
            iso2, known = std.standardize_country(raw[column])
            out[column] = iso2
            countries[column] = iso2
            soft(f"unknown_{column}", ~known)
    region = countries.get("country", countries.get("shipping_country", "US"))

    for col in entity.columns:
        name, values = col.name, raw[col.name]
        if name in out.columns:
            continue
        if name in EMAIL_COLUMNS:
            email, valid, match_key = std.standardize_email(values)
            out[name], out["email_match_key"] = email, match_key
            hard(name, rules.MALFORMED_EMAIL, ~valid)
        elif name in PHONE_COLUMNS:
            e164, valid = std.standardize_phone(values, region if isinstance(region, str) else region.fillna("US"))
            out[name] = e164
            soft("invalid_phone", ~valid)
        elif name == "postal_code":
            code, valid = std.standardize_postal_code(values, region)
            out[name] = code
            soft("invalid_postal_code", ~valid)
        elif name in NAME_COLUMNS:
            out[name] = std.standardize_name(values)
        elif name in ADDRESS_COLUMNS:
            out[name] = std.standardize_address_line(values)
        elif name in PLACE_COLUMNS:
            place = std.standardize_city(values)
            # Short regions are codes (MA, NSW, ON): upper case; longer ones are names: title case.
            out[name] = place.where(place.str.len() > 3, place.str.upper()) if name == "region" else place
        elif name == "currency":
            code, known = std.standardize_currency(values)
            out[name] = code
            soft("unknown_currency", ~known)
        elif col.type == "timestamp":
            ts, parsed = std.parse_timestamps(values)
            out[name] = ts
            hard(name, rules.UNPARSEABLE_DATE, ~parsed)
            out_of_range = std.flag_out_of_range(ts, written_on)
            hard(name, rules.FUTURE_TIMESTAMP, out_of_range == "future_timestamp")
            soft(f"{name}_before_1990", out_of_range == "before_1990")
        elif col.type == "date":
            day, parsed = std.parse_dates(values)
            out[name] = day
            hard(name, rules.UNPARSEABLE_DATE, ~parsed)
            soft(f"{name}_in_future", day > written_on)
        elif col.type in ("decimal", "integer"):
            number, parsed = std.parse_decimal(values)
            if col.type == "integer":
                whole = number.notna() & (number == np.floor(number.fillna(0)))
                parsed = parsed & (number.isna() | whole)
                number = number.where(parsed).astype("Int64")
            out[name] = number
            hard(name, rules.INVALID_NUMBER, ~parsed)
            if name in PRICE_COLUMNS:
                hard(name, rules.NEGATIVE_PRICE, parsed & (number < 0))
        elif col.type == "boolean":
            text = values.astype("str").str.strip().str.lower().where(values.notna())
            out[name] = pd.Series(np.select([text.isin(TRUE_VALUES), text.isin(FALSE_VALUES)], [True, False], None),
                                  index=raw.index, dtype="boolean")
            soft(f"unknown_{name}", text.notna() & ~text.isin(TRUE_VALUES | FALSE_VALUES))
        else:
            text = std.clean_text(values)
            if col.allowed:
                text = text.str.lower()
                outside = text.notna() & ~text.isin(col.allowed)
                if col.required:
                    hard(name, rules.INVALID_VALUE, outside)
                else:
                    soft(f"unknown_{name}", outside)
            out[name] = text
        if name in FREE_TEXT_COLUMNS:
            # U+FFFD is what ingestion put where the file had a NUL byte: worth a look like any odd text.
            replaced = values.astype("str").str.contains("\ufffd", regex=False)
            soft(f"{name}_suspicious", std.flag_suspicious_text(values).notna() | replaced)

    if "email_match_key" not in out.columns and entity.has_column("email"):
        out["email_match_key"] = pd.Series(pd.NA, index=raw.index, dtype="str")
    out["_flags"] = _join_flags(flags, raw.index)
    out[ROW_HASH] = (raw[ROW_HASH].astype("int64") if ROW_HASH in raw.columns else
                     pd.util.hash_pandas_object(raw[list(entity.column_names)], index=False).astype("int64"))
    out = out[typed_column_names(entity)]
    violations = (pd.concat(found, ignore_index=True) if found else
                  pd.DataFrame(columns=["_file_id", "_row_number", "column", "rule", "raw_value"]))
    violations["raw_value"] = violations["raw_value"].astype("object").where(violations["raw_value"].notna(), None)
    return TypedRows(out.reset_index(drop=True), violations)


def typed_column_names(entity: Entity) -> list[str]:
    """The column order of `typed_<entity>` and `stg_<entity>`."""
    derived = ["email_match_key"] if entity.has_column("email") else []
    return ["_file_id", "_row_number", "_brand", *entity.column_names, *derived, "_flags", "_row_hash"]


def _join_flags(flags: list[pd.Series], index: pd.Index) -> pd.Series:
    """Soft issues of each row as one `;`-separated text (missing when the row has none)."""
    if not flags:
        return pd.Series(None, index=index, dtype="object")
    joined = flags[0].astype("str").fillna("")
    for flag in flags[1:]:
        joined = joined + ";" + flag.astype("str").fillna("")
    joined = joined.str.replace(r";{2,}", ";", regex=True).str.strip(";")
    return joined.where(joined != "", None)
