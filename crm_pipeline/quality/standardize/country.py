"""Country spellings -> ISO 3166-1 alpha-2, so `US`, `u.s.` and `United States of America` are one country."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from . import _arrow

# Spellings pycountry does not know: abbreviations, constituent countries, old and native names.
ALIASES: dict[str, str] = {
    "USA": "US", "U.S.": "US", "U.S.A.": "US", "US of A": "US", "United States of America": "US",
    "America": "US", "The States": "US",
    "UK": "GB", "U.K.": "GB", "Great Britain": "GB", "Britain": "GB", "England": "GB",
    "Scotland": "GB", "Wales": "GB", "Northern Ireland": "GB",
    "Deutschland": "DE", "Holland": "NL", "The Netherlands": "NL", "Nederland": "NL",
    "España": "ES", "Italia": "IT", "Österreich": "AT", "Schweiz": "CH", "Suisse": "CH", "Svizzera": "CH",
    "Belgique": "BE", "België": "BE", "Polska": "PL", "Sverige": "SE", "Norge": "NO", "Danmark": "DK",
    "Suomi": "FI", "Éire": "IE", "Brasil": "BR", "Россия": "RU", "Russia": "RU", "Україна": "UA",
    "Ελλάδα": "GR", "中国": "CN", "日本": "JP", "대한민국": "KR", "Korea": "KR", "Turkey": "TR",
    "Czech Republic": "CZ", "Macedonia": "MK", "Ivory Coast": "CI", "Vatican": "VA",
    "Palestine": "PS", "Micronesia": "FM", "DR Congo": "CD", "UAE": "AE", "Emirates": "AE",
}


# What people type when they have no country to give; read as missing, never as Namibia (`N/A`).
# The bare code `NA` stays Namibia (pandas' CSV reader already turns it into NaN by default).
PLACEHOLDERS = frozenset({"n/a", "n.a.", "none", "null", "nil", "unknown", "-", "--", "?", "..."})


def standardize_country(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Map any common country spelling to its ISO 3166-1 alpha-2 code.

    Matching ignores case, accents, whitespace and punctuation and knows pycountry's
    codes and names plus `ALIASES`. Returns `(iso2, known)`: an unrecognised value is
    kept raw in `iso2` (never guessed) with `known=False` so it can be reviewed;
    missing, blank or a placeholder (`N/A`, `unknown`, `-`) is missing with `known=True`
    (nothing to flag).
    """
    raw = _arrow.to_arrow(values)
    given = _arrow.mask(pc.is_valid(_arrow.squeeze(raw)))
    found = _arrow.map_where(raw, given, _iso2, pa.large_string())  # "" marks a placeholder
    unknown = _arrow.mask(pc.and_(given, pc.is_null(found)))
    code = pc.if_else(_arrow.mask(pc.equal(found, _arrow.string(""))), _arrow.string(None), found)
    iso2 = pc.if_else(unknown, raw, code)
    return _arrow.text_series(iso2, values.index), _arrow.bool_series(pc.invert(unknown), values.index, missing=True)


def _iso2(value: str) -> str | None:
    if value.strip().casefold() in PLACEHOLDERS:
        return ""
    return _lookup().get(_key(value))


def _key(value: str) -> str:
    """`U.S.A.` -> `usa`, `Côte d'Ivoire` -> `cotedivoire`: the spelling-insensitive lookup key."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return re.sub(r"[\W_]+", "", "".join(c for c in decomposed if not unicodedata.combining(c)))


@lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    """Key -> alpha-2. Earlier sources win: aliases, then codes, then names."""
    table: dict[str, str] = {}

    def add(spelling: str | None, iso2: str) -> None:
        if spelling:
            table.setdefault(_key(spelling), iso2)

    for spelling, iso2 in ALIASES.items():
        add(spelling, iso2)
    for country in pycountry.countries:
        add(country.alpha_2, country.alpha_2)
        add(country.alpha_3, country.alpha_2)
    for country in pycountry.countries:
        for attr in ("common_name", "name", "official_name"):
            add(getattr(country, attr, None), country.alpha_2)
    return table
