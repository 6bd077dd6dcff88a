"""Bridges between pandas Series and Arrow compute, shared by the standardizers.

Every standardizer works on Arrow arrays so string work runs in C (UTF-8 kernels,
RE2 regexes). pandas' `.str` accessor silently falls back to a per-row Python loop
for some calls (`str.extract`, `str.normalize("NFKC")`, `\\s`/`\\d` on non-ASCII
data), which would break the no-row-loop rule without anyone noticing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# pandas' default string dtype (pandas 3 "str"): Arrow storage, NaN for missing.
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)

# Whitespace RE2's \s misses (vertical tab, NEL, NBSP, the Unicode spaces).
WHITESPACE = r"[\s\x{0B}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+"
# Characters to drop: C0 controls other than tab/newline/CR/FF/VT (NUL bytes come from
# UTF-16 read as UTF-8), DEL, and the invisible zero-width characters and BOM.
CONTROL = r"[\x{00}-\x{08}\x{0E}-\x{1F}\x{7F}\x{200B}-\x{200D}\x{2060}\x{FEFF}]+"


def to_arrow(values: pd.Series | Any) -> pa.Array:
    """Raw values (any dtype, None/NaN missing) as one Arrow large_string array; zero-copy for Arrow-backed text."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if not (isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"):
        series = series.astype(TEXT)
    array = pa.array(series.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


def text_series(array: pa.Array, index: pd.Index) -> pd.Series:
    """An Arrow string array back as a pandas `str` Series (missing = NaN) on the caller's index."""
    return pd.Series(pd.array(array.cast(pa.large_string()), dtype=TEXT), index=index, copy=False)


def bool_series(array: pa.Array, index: pd.Index, *, missing: bool) -> pd.Series:
    """An Arrow boolean array as a numpy-bool Series; nulls become `missing`."""
    filled = pc.fill_null(array, missing)
    return pd.Series(filled.to_numpy(zero_copy_only=False), index=index, dtype=bool)


def mask(array: pa.Array) -> pa.Array:
    """A boolean array without nulls (null counts as False), as `if_else`/`replace_with_mask` need."""
    return pc.fill_null(array, False)


def nfkc(array: pa.Array) -> pa.Array:
    """NFKC-normalize: full-width letters, ligatures and composed accents to one spelling.

    Only the non-ASCII rows need it (ASCII is already NFKC), and those are normalized
    once per distinct value, so clean ASCII columns pay one C scan.
    """
    non_ascii = mask(pc.invert(pc.string_is_ascii(array)))
    if not pc.any(non_ascii).as_py():
        return array
    return replace_where(array, non_ascii, lambda v: unicodedata.normalize("NFKC", v))


def replace_where(array: pa.Array, where: pa.Array, fn: Callable[[str], str]) -> pa.Array:
    """`array` with the rows selected by `where` replaced by `fn(value)`, computed once per distinct value."""
    return pc.replace_with_mask(array, where, map_distinct(pc.filter(array, where), fn, array.type))


def map_where(array: pa.Array, where: pa.Array, fn: Callable[[str], Any], out_type: pa.DataType) -> pa.Array:
    """`fn(value)` on the rows selected by `where`, null elsewhere; computed once per distinct value.

    The cache-of-distinct-values pattern: a column of a million rows with a few hundred
    distinct spellings calls `fn` a few hundred times.
    """
    results = map_distinct(pc.filter(array, where), fn, out_type)
    return pc.replace_with_mask(pa.nulls(len(array), out_type), where, results)


def map_distinct(array: pa.Array, fn: Callable[[str], Any], out_type: pa.DataType) -> pa.Array:
    """`fn` over the distinct non-null values of `array`, taken back to every row (nulls stay null)."""
    encoded = pc.dictionary_encode(array)
    mapped = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], type=out_type)
    return pc.take(mapped, encoded.indices)


def clean_text(array: pa.Array) -> pa.Array:
    """NFKC, control characters dropped, whitespace runs collapsed to one space, trimmed; blank -> null.

    The regex work runs only on rows that need it (non-ASCII, non-printable or double
    spaces): most rows are plain ASCII and pay three cheap scans.
    """
    dirty = pc.or_(pc.invert(pc.string_is_ascii(array)), pc.invert(pc.ascii_is_printable(array)))
    dirty = mask(pc.or_(dirty, pc.match_substring(array, "  ")))
    if pc.any(dirty).as_py():
        subset = nfkc(pc.filter(array, dirty))
        subset = pc.replace_substring_regex(subset, CONTROL, "")
        subset = pc.replace_substring_regex(subset, WHITESPACE, " ")
        array = pc.replace_with_mask(array, dirty, subset)
    padded = mask(pc.or_(pc.starts_with(array, " "), pc.ends_with(array, " ")))
    if pc.any(padded).as_py():  # trimming copies every string: only when some need it
        array = pc.utf8_trim(array, " ")
    return blank_to_null(array)


def title(array: pa.Array) -> pa.Array:
    """Title case (`o'neil smith-jones` -> `O'Neil Smith-Jones`); the ASCII kernel where it suffices."""
    non_ascii = mask(pc.invert(pc.string_is_ascii(array)))
    titled = pc.ascii_title(array)
    if pc.any(non_ascii).as_py():
        titled = pc.replace_with_mask(titled, non_ascii, pc.utf8_title(pc.filter(array, non_ascii)))
    return titled


def lower(array: pa.Array) -> pa.Array:
    """Lowercase; the ASCII kernel where it suffices (ten times faster than the UTF-8 one)."""
    non_ascii = mask(pc.invert(pc.string_is_ascii(array)))
    lowered = pc.ascii_lower(array)
    if pc.any(non_ascii).as_py():
        lowered = pc.replace_with_mask(lowered, non_ascii, pc.utf8_lower(pc.filter(array, non_ascii)))
    return lowered


def squeeze(array: pa.Array) -> pa.Array:
    """Trimmed, blank -> null; the light cleaning for code-like columns (country, currency, phone)."""
    return blank_to_null(pc.utf8_trim_whitespace(array))


def blank_to_null(array: pa.Array) -> pa.Array:
    blank = mask(pc.equal(pc.utf8_length(array), 0))
    if not pc.any(blank).as_py():  # `if_else` copies every string: only when some are blank
        return array
    return pc.if_else(blank, pa.scalar(None, array.type), array)


def fullmatch(array: pa.Array, pattern: str) -> pa.Array:
    """RE2 full match (null stays null)."""
    return pc.match_substring_regex(array, f"^(?:{pattern})$")


def string(value: str | None) -> pa.Scalar:
    """A large_string scalar, the type every array here uses."""
    return pa.scalar(value, pa.large_string())


def join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    """Element-wise concatenation of arrays and literals (null if any part is null)."""
    return pc.binary_join_element_wise(*(string(p) if isinstance(p, str) else p for p in parts), string(sep))
