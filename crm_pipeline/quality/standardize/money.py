"""Amounts and currency codes: `$1,234.50`, `12.00 USD` and `1234.5` are all the number 1234.5."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from . import _arrow

# Symbols and spellings pycountry does not carry, by normalized key (uppercase, no spaces or dots).
CURRENCY_ALIASES: dict[str, str] = {
    "$": "USD", "US$": "USD", "USDOLLAR": "USD", "DOLLAR": "USD", "DOLLARS": "USD",
    "€": "EUR", "EURO": "EUR", "EUROS": "EUR", "£": "GBP", "GB£": "GBP", "POUND": "GBP", "POUNDS": "GBP",
    "STERLING": "GBP", "C$": "CAD", "CA$": "CAD", "A$": "AUD", "AU$": "AUD", "¥": "JPY", "CHF": "CHF",
}

# A plain decimal needs no cleaning; anything else is checked against the full pattern.
_PLAIN = r"-?\d+(?:\.\d+)?"
# Optional sign, optional currency (symbol or code) before or after, `1,234.50` thousands
# separators in groups of three, or parentheses for an accounting negative.
_CURRENCY = r"(?:[A-Z]{3}|[A-Z]{0,2}\$|€|£|¥)"
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_DECORATED = rf"[-+]?{_CURRENCY}? ?[-+]?(?:{_NUMBER}) ?{_CURRENCY}?|\({_CURRENCY}? ?(?:{_NUMBER}) ?{_CURRENCY}?\)"


def parse_decimal(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse money-like text to float64; returns `(amount, parsed)`.

    Accepts `1234.50`, `1,234.50`, `$12.00`, `12.00 USD`, `-3.5`, `-$3.50` and the
    accounting negative `(3.50)`. European `1.234,50` is ambiguous (is `1.234` a
    thousand?) and is left unparsed rather than guessed. Unparseable -> NaN with
    `parsed=False`; missing -> NaN with `parsed=True`.
    """
    text = _arrow.squeeze(_arrow.to_arrow(values))
    plain = _arrow.mask(_arrow.fullmatch(text, _PLAIN))
    amount = pc.cast(pc.if_else(plain, text, _arrow.string(None)), pa.float64())
    other = _arrow.mask(pc.and_(pc.is_valid(text), pc.invert(plain)))
    if pc.any(other).as_py():  # symbols, codes, separators: the few rows that need regex work
        amount = pc.replace_with_mask(amount, other, _parse_decorated(pc.utf8_upper(pc.filter(text, other))))
    parsed = pc.or_(pc.is_null(text), pc.is_valid(amount))
    return (
        pd.Series(amount.to_numpy(zero_copy_only=False), index=values.index, dtype="float64"),
        _arrow.bool_series(parsed, values.index, missing=True),
    )


def _parse_decorated(text: pa.Array) -> pa.Array:
    """`$1,234.50`, `12.00 USD`, `(3.50)` (uppercase text) to float64; null where the shape is not money."""
    decorated = _arrow.mask(_arrow.fullmatch(text, _DECORATED))
    negative = _arrow.mask(pc.or_(pc.match_substring(text, "-"), pc.starts_with(text, "(")))
    digits = pc.replace_substring_regex(text, r"[^0-9.]", "")
    amount = pc.cast(pc.if_else(decorated, digits, _arrow.string(None)), pa.float64())
    return pc.if_else(pc.and_(decorated, negative), pc.negate(amount), amount)


def standardize_currency(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """ISO 4217 code for a currency code, symbol or name (`us$`, `$` -> USD; `€` -> EUR; `£` -> GBP).

    Returns `(code, known)`; like countries, an unknown value is kept raw with
    `known=False` and missing stays missing with `known=True`.
    """
    raw = _arrow.to_arrow(values)
    present = _arrow.mask(pc.is_valid(_arrow.squeeze(raw)))
    code = _arrow.map_where(raw, present, lambda v: _currencies().get(_key(v)), pa.large_string())
    known = pc.or_(pc.invert(present), pc.is_valid(code))
    out = pc.if_else(pc.is_valid(code), code, pc.if_else(present, raw, _arrow.string(None)))
    return _arrow.text_series(out, values.index), _arrow.bool_series(known, values.index, missing=True)


def flag_negative(values: pd.Series) -> pd.Series:
    """True where a parsed amount is below zero: a price or total that cannot be right.

    For prices and order totals only. Negative quantities are returns, a normal part
    of retail, and must not be flagged: do not call this on quantity columns.
    """
    return pd.Series(np.less(values.to_numpy(dtype="float64", na_value=np.nan), 0), index=values.index, dtype=bool)


def _key(value: str) -> str:
    return re.sub(r"[\s.]+", "", value).upper()


@lru_cache(maxsize=1)
def _currencies() -> dict[str, str]:
    table = {_key(alias): code for alias, code in CURRENCY_ALIASES.items()}
    for currency in pycountry.currencies:
        table.setdefault(_key(currency.alpha_3), currency.alpha_3)
    for currency in pycountry.currencies:
        table.setdefault(_key(currency.name), currency.alpha_3)
    return table
