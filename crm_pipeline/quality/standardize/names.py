"""Person names, address lines, cities and postal codes: one spelling each, so matching and mailing agree."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _arrow

# Street-type, unit and direction words -> USPS-style abbreviations, matched as whole
# words after title case; a trailing period on them is dropped (`Apt.` -> `Apt`).
ADDRESS_ABBREVIATIONS: dict[str, str] = {
    "Street": "St", "Avenue": "Ave", "Av": "Ave", "Road": "Rd", "Boulevard": "Blvd", "Drive": "Dr",
    "Lane": "Ln", "Court": "Ct", "Place": "Pl", "Square": "Sq", "Terrace": "Ter", "Highway": "Hwy",
    "Parkway": "Pkwy", "Circle": "Cir", "Apartment": "Apt", "Suite": "Ste", "Floor": "Fl",
    "Ne": "NE", "Nw": "NW", "Se": "SE", "Sw": "SW", "Po": "PO", "P.O": "PO",
}
_ORDINAL_SUFFIXES = ("St", "Nd", "Rd", "Th")  # title case makes `5th` `5Th`

# Postal code shapes, checked on the compact (no space or hyphen) uppercase code.
_CA_PATTERN = r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\d[ABCEGHJ-NPRSTV-Z]\d"
_GB_PATTERN = r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}"


def standardize_name(values: pd.Series) -> pd.Series:
    """Person name in one spelling: NFKC, control characters dropped, whitespace collapsed, title case.

    Title case capitalises after apostrophes and hyphens (`O'Neil`, `Smith-Jones`) and
    lowercases inner capitals (`McDonald` -> `Mcdonald`): consistent beats clever for
    matching. Odd content (emoji, formulas, very long values) is returned standardized,
    not rejected; `flag_suspicious_text` on the raw values says what is odd.
    """
    return _arrow.text_series(_arrow.title(_arrow.clean_text(_arrow.to_arrow(values))), values.index)


def standardize_city(values: pd.Series) -> pd.Series:
    """City in one spelling: the same cleaning and title case as names (`NEW YORK` -> `New York`)."""
    return standardize_name(values)


def standardize_address_line(values: pd.Series) -> pd.Series:
    """Street line in one spelling: cleaned, title case, street and unit words abbreviated.

    `123 main street, apt. 4b` -> `123 Main St, Apt 4B`; `5TH AVENUE` -> `5th Ave`.
    Matching two addresses then needs no fuzzy logic for the commonest variations.
    Works word by word on the flattened words of the column (one lookup, no regex per word).
    """
    line = _arrow.title(_arrow.clean_text(_arrow.to_arrow(values)))
    words = pc.split_pattern(line, " ")
    word = pc.list_flatten(words)
    core = pc.utf8_rtrim(word, ".,")
    comma = _arrow.mask(pc.ends_with(word, ","))
    table = {**ADDRESS_ABBREVIATIONS, **{v: v for v in ADDRESS_ABBREVIATIONS.values()}}
    found = pc.index_in(core, value_set=pa.array(list(table), pa.large_string()))
    short = pc.take(pa.array(list(table.values()), pa.large_string()), found)
    word = pc.if_else(_arrow.mask(pc.is_valid(found)), pc.if_else(comma, _arrow.join(short, ","), short), word)
    ordinal = pc.and_(pc.ascii_is_decimal(pc.utf8_slice_codeunits(core, 0, 1)),
                      _any(pc.ends_with(core, suffix) for suffix in _ORDINAL_SUFFIXES))
    word = pc.if_else(_arrow.mask(ordinal), pc.ascii_lower(word), word)
    words = type(words).from_arrays(words.offsets, word, mask=pc.is_null(words))
    return _arrow.text_series(pc.binary_join(words, _arrow.string(" ")), values.index)


def _any(masks) -> pa.Array:
    """Element-wise OR of several boolean arrays."""
    result = None
    for m in masks:
        result = m if result is None else pc.or_(result, m)
    return result


def standardize_postal_code(values: pd.Series, country_iso2: pd.Series | str) -> tuple[pd.Series, pd.Series]:
    """Postal code formatted by its country's rule; returns `(postal_code, valid)`.

    US: `12345` or ZIP+4 `12345-6789`; a 4-digit code (8 with the +4) gets back the
    leading zero a spreadsheet dropped (`2134` -> `02134`), as do DE/FR codes (5 digits).
    CA: `A1A 1A1`.
    GB: uppercase with one space before the last three characters (`SW1A 1AA`). Other
    countries: trimmed uppercase, valid by default (no rule to check against). A value
    failing its country's rule is kept (cleaned, uppercase) with `valid=False`; missing
    stays missing with `valid=True`.
    """
    index = values.index
    code = pc.utf8_upper(_arrow.clean_text(_arrow.to_arrow(values)))
    compact = pc.replace_substring_regex(code, r"[ \-]", "")
    country = _countries(country_iso2, index, len(code))

    def is_(iso2: str) -> pa.Array:
        return _arrow.mask(pc.equal(country, _arrow.string(iso2)))

    # US: 5 digits, 9 digits (ZIP+4 with or without the hyphen), or 4 digits missing a leading zero.
    us = is_("US")
    us_digits = pc.if_else(_arrow.mask(_arrow.fullmatch(compact, r"\d{4}|\d{8}")), _arrow.join("0", compact), compact)
    us_code = pc.if_else(
        _arrow.mask(_arrow.fullmatch(us_digits, r"\d{9}")),
        _arrow.join(pc.utf8_slice_codeunits(us_digits, 0, 5), pc.utf8_slice_codeunits(us_digits, 5), sep="-"),
        us_digits,
    )
    us_ok = _arrow.fullmatch(us_code, r"\d{5}(?:-\d{4})?")

    # CA and GB: compact alphanumerics, one space before the last three characters.
    ca, gb = is_("CA"), is_("GB")
    spaced = _arrow.join(pc.utf8_slice_codeunits(compact, 0, -3), pc.utf8_slice_codeunits(compact, -3), sep=" ")
    ca_ok = _arrow.fullmatch(compact, _CA_PATTERN)
    gb_ok = _arrow.fullmatch(compact, _GB_PATTERN)

    # DE and FR: 5 digits; 4 digits lost a leading zero.
    de_fr = pc.or_(is_("DE"), is_("FR"))
    five = pc.if_else(_arrow.mask(_arrow.fullmatch(compact, r"\d{4}")), _arrow.join("0", compact), compact)
    five_ok = _arrow.fullmatch(five, r"\d{5}")

    ruled_ok = [(us, us_ok, us_code), (ca, ca_ok, spaced), (gb, gb_ok, spaced), (de_fr, five_ok, five)]
    out, valid = code, pc.is_valid(code)
    for selected, ok, formatted in ruled_ok:
        good = _arrow.mask(pc.and_(selected, ok))
        out = pc.if_else(good, formatted, out)
        valid = pc.if_else(_arrow.mask(selected), _arrow.mask(ok), valid)
    valid = pc.or_(pc.is_null(code), valid)
    return _arrow.text_series(out, index), _arrow.bool_series(valid, index, missing=True)


def _countries(country_iso2: pd.Series | str, index: pd.Index, length: int) -> pa.Array:
    """Per-row uppercase country code (null where unknown)."""
    if isinstance(country_iso2, pd.Series):
        if not country_iso2.index.equals(index):
            country_iso2 = country_iso2.reindex(index)
        return pc.utf8_upper(_arrow.squeeze(_arrow.to_arrow(country_iso2)))
    code = (country_iso2 or "").strip().upper() or None
    return pc.fill_null(pa.nulls(length, pa.large_string()), _arrow.string(code))
