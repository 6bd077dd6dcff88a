"""Email addresses: one spelling per address, a syntax check, and a key that links aliases of one inbox."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _arrow

# RFC 5322 "dot-atom" local part (no leading, trailing or doubled dots), hostname labels
# that neither start nor end with a hyphen, and an alphabetic TLD of two letters or more
# (lowercase: the address is lowercased first). Letters and digits may be non-ASCII
# (RFC 6531: `élodie@müller.de`). Syntax only: no DNS lookups, so the check is fast and
# deterministic.
_ATOM = r"[\p{Ll}\p{Lo}\p{N}!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[\p{Ll}\p{Lo}\p{N}](?:[\p{Ll}\p{Lo}\p{N}-]*[\p{Ll}\p{Lo}\p{N}])?"
EMAIL_PATTERN = rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[\p{{Ll}}\p{{Lo}}]{{2,}}"

# Providers that deliver `j.a.n.e@` to `jane@`; googlemail.com is the same inbox as gmail.com.
DOTLESS_DOMAINS = ("gmail.com", "googlemail.com")


def standardize_email(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Trim, lowercase and NFKC-normalize emails; check their syntax; derive an identity match key.

    Returns `(email, valid, match_key)`. `email` keeps every non-blank value (invalid
    ones too, so nothing typed is lost). `match_key` links addresses that reach the
    same inbox: `+tag` dropped from the local part, and for Gmail the dots too, with
    googlemail.com folded into gmail.com. Invalid emails get no match key, so a typo
    cannot merge two people. Missing stays missing with `valid=True` (nothing to flag).
    """
    raw = _arrow.to_arrow(values)
    email = _arrow.squeeze(_arrow.lower(_arrow.nfkc(raw)))
    valid = _arrow.fullmatch(email, EMAIL_PATTERN)
    index = values.index
    return (
        _arrow.text_series(email, index),
        _arrow.bool_series(valid, index, missing=True),
        _arrow.text_series(_match_key(email, _arrow.mask(valid)), index),
    )


def _match_key(email: pa.Array, valid: pa.Array) -> pa.Array:
    key = pc.if_else(valid, email, _arrow.string(None))
    # Only addresses with a `+` or a Gmail domain change; the rest are their own key.
    aliased = pc.or_(pc.match_substring(key, "+"), pc.ends_with(key, "@gmail.com"))
    aliased = _arrow.mask(pc.or_(aliased, pc.ends_with(key, "@googlemail.com")))
    if not pc.any(aliased).as_py():
        return key
    split = pc.split_pattern(pc.filter(key, aliased), "@", max_splits=1)
    local, domain = pc.list_element(split, 0), pc.list_element(split, 1)
    # `+tag` sub-addressing: keep what precedes the first `+` (a local part of only a tag stays whole).
    local = pc.replace_substring_regex(local, r"^([^+]+)\+.*$", r"\1")
    dotless = _arrow.mask(pc.is_in(domain, value_set=pa.array(DOTLESS_DOMAINS, pa.large_string())))
    local = pc.if_else(dotless, pc.replace_substring(local, ".", ""), local)
    domain = pc.if_else(dotless, _arrow.string("gmail.com"), domain)
    return pc.replace_with_mask(key, aliased, _arrow.join(local, domain, sep="@"))
