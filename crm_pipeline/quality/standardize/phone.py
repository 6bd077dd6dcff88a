"""Phone numbers -> E.164 (`+14155552671`), the one spelling identity resolution can compare.

Three passes, cheapest first, each on what the previous one left:

1. NANP (US/CA rows, a missing region, or `+1`): digits only, NXX-NXX-XXXX rules.
   Structural only: an unassigned area code (`427`) passes, where phonenumbers,
   which knows the assignments, would say invalid.
2. Other countries: libphonenumber's own metadata (country codes, trunk and
   international prefixes, the per-type number patterns), applied as vectorized
   regexes per region. A number these accept is one `phonenumbers` calls valid.
3. The rest (exotic prefixes, `(0)` inside international numbers, invalid numbers):
   `phonenumbers` itself, once per distinct (number, region) pair.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from . import _arrow

# Regions the NANP rules handle; a missing region counts as US. Other NANP members
# (PR, the Caribbean) go through the metadata pass, which knows their area codes.
NANP_FAST_REGIONS = ("US", "CA")
DEFAULT_REGION = "US"

# NXX-NXX-XXXX: neither area code nor exchange starts with 0 or 1, and the area code is
# not a N11 service code (411, 911 ...). So `(415) 123-4567` is not a phone number.
_NANP_NATIONAL = r"[2-9](?:[02-9]\d|1[02-9])[2-9]\d{6}"
# Placeholders typed to get past a required field: one digit repeated.
_SAME_DIGIT = pa.array([str(d) * 10 for d in range(10)], pa.large_string())
# A trailing extension (`x12`, `ext. 12`, `#12`) is dropped; E.164 has no room for it.
_EXTENSION = r"\s*(?:(?:ext|x)\.?|#)\s*\d{1,6}\s*$"
_NUMBER_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
                 "voip", "pager", "uan", "voicemail")


def standardize_phone(
    values: pd.Series, default_region: pd.Series | str = DEFAULT_REGION
) -> tuple[pd.Series, pd.Series]:
    """Format phone numbers as E.164 and say whether they are valid numbers.

    `default_region` (ISO alpha-2 per row, e.g. the standardized country, or one code)
    says how to read numbers written without a `+` country code; missing or unknown
    (`Atlantis`) means US, the same as no region at all.
    Returns `(e164, valid)`: invalid numbers get no E.164 (the caller keeps the raw
    value); missing stays missing with `valid=True`.
    """
    index = values.index
    raw = _arrow.squeeze(_drop_extension(_arrow.nfkc(_arrow.to_arrow(values))))
    region = _regions(default_region, index, len(raw))
    plus = _arrow.mask(pc.starts_with(raw, "+"))
    digits = _digits(raw)

    nanp, e164 = _nanp(digits, plus, region)
    rest = _arrow.mask(pc.and_(pc.is_valid(raw), pc.invert(nanp)))
    if pc.any(rest).as_py():
        found = _by_metadata(pc.filter(digits, rest), pc.filter(plus, rest), pc.filter(region, rest))
        e164 = pc.replace_with_mask(e164, rest, found)
        slow = _arrow.mask(pc.and_(rest, pc.is_null(e164)))
        if pc.any(slow).as_py():
            pair = _arrow.join(raw, region, sep="\x1f")
            e164 = pc.coalesce(e164, _arrow.map_where(pair, slow, _parse_pair, pa.large_string()))

    valid = pc.or_(pc.is_null(raw), pc.is_valid(e164))
    return _arrow.text_series(e164, index), _arrow.bool_series(valid, index, missing=True)


def _drop_extension(raw: pa.Array) -> pa.Array:
    """Drop `x12` / `ext. 12` / `#12`; the regex runs only on rows with an `x` or `#`."""
    lowered = pc.ascii_lower(raw)
    candidate = _arrow.mask(pc.or_(pc.match_substring(lowered, "x"), pc.match_substring(lowered, "#")))
    if not pc.any(candidate).as_py():
        return raw
    return pc.replace_with_mask(raw, candidate, pc.replace_substring_regex(pc.filter(raw, candidate), _EXTENSION, ""))


def _digits(raw: pa.Array) -> pa.Array:
    """Digits only. Literal removal of the usual separators is twice as fast as one `[^0-9]` regex."""
    digits = raw
    for separator in (" ", "-", "(", ")", ".", "+"):
        digits = pc.replace_substring(digits, separator, "")
    other = _arrow.mask(pc.invert(pc.ascii_is_decimal(digits)))
    if pc.any(other).as_py():
        only_digits = pc.replace_substring_regex(pc.filter(digits, other), r"[^0-9]+", "")
        digits = pc.replace_with_mask(digits, other, only_digits)
    return digits


def _nanp(digits: pa.Array, plus: pa.Array, region: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Rows the NANP rules decide (US/CA without country code, or +1), and their E.164 where valid."""
    n_digits = pc.utf8_length(digits)
    leading_one = _arrow.mask(pc.and_(pc.equal(n_digits, 11), pc.starts_with(digits, "1")))
    local = pc.and_(pc.invert(plus), pc.or_(pc.equal(n_digits, 10), leading_one))
    in_region = pc.is_in(region, value_set=pa.array(NANP_FAST_REGIONS, pa.large_string()))
    decided = pc.or_(pc.and_(plus, pc.starts_with(digits, "1")), pc.and_(in_region, local))
    decided = _arrow.mask(pc.and_(decided, pc.invert(pc.starts_with(digits, "011"))))  # 011: US exit code
    national = pc.if_else(leading_one, pc.utf8_slice_codeunits(digits, 1), digits)
    ok = pc.and_(_arrow.fullmatch(national, _NANP_NATIONAL), pc.invert(pc.is_in(national, value_set=_SAME_DIGIT)))
    e164 = pc.if_else(_arrow.mask(pc.and_(decided, ok)), _arrow.join("+1", national), _arrow.string(None))
    return decided, e164


def _by_metadata(digits: pa.Array, plus: pa.Array, region: pa.Array) -> pa.Array:
    """E.164 for the numbers libphonenumber's patterns accept outright; null for the rest."""
    code = pa.nulls(len(digits), pa.large_string())  # country calling code
    national = digits
    for name in pc.unique(region).to_pylist():
        meta = phonenumbers.PhoneMetadata.metadata_for_region(name or "")
        if meta is None:
            continue
        local = _arrow.mask(pc.and_(pc.equal(region, _arrow.string(name)), pc.invert(plus)))
        # `00 44 20 ...` dialled from this region is an international number.
        for exit_code in _literals(meta.international_prefix):
            dialled_out = _arrow.mask(pc.and_(local, pc.starts_with(digits, exit_code)))
            national = pc.if_else(dialled_out, pc.utf8_slice_codeunits(national, len(exit_code)), national)
            plus = pc.or_(plus, dialled_out)
            local = pc.and_(local, pc.invert(dialled_out))
        # The trunk prefix (`0` in `020 7946 0958`) is not part of the number.
        trunks = () if meta.national_prefix_transform_rule else _literals(meta.national_prefix_for_parsing)
        unstripped = local
        for trunk in trunks:
            stripped = _arrow.mask(pc.and_(unstripped, pc.starts_with(national, trunk)))
            national = pc.if_else(stripped, pc.utf8_slice_codeunits(national, len(trunk)), national)
            unstripped = pc.and_(unstripped, pc.invert(stripped))
        code = pc.if_else(_arrow.mask(local), _arrow.string(str(meta.country_code)), code)
    for width in (1, 2, 3):  # calling codes are prefix-free, so at most one width matches
        prefix = pc.utf8_slice_codeunits(national, 0, width)
        known = _arrow.mask(pc.and_(pc.and_(plus, pc.is_null(code)), pc.is_in(prefix, value_set=_calling_codes())))
        code = pc.if_else(known, prefix, code)
        national = pc.if_else(known, pc.utf8_slice_codeunits(national, width), national)

    e164 = pa.nulls(len(digits), pa.large_string())
    for cc in pc.unique(code).drop_null().to_pylist():
        pattern = _valid_pattern(int(cc))
        if pattern is None:
            continue
        rows = _arrow.mask(pc.equal(code, _arrow.string(cc)))
        ok = _arrow.mask(pc.and_(rows, _arrow.fullmatch(national, pattern)))
        e164 = pc.if_else(ok, _arrow.join("+", cc, national), e164)
    return e164


def _literals(prefix: str | None) -> tuple[str, ...]:
    """A prefix pattern's alternatives when all are digit strings (`0`, `0|180020`), longest first.

    Prefixes shaped as real regexes (Australia, Brazil ...) are left to phonenumbers.
    """
    alternatives = (prefix or "").split("|")
    if not all(re.fullmatch(r"\d+", a) for a in alternatives):
        return ()
    return tuple(sorted(alternatives, key=len, reverse=True))


@lru_cache(maxsize=1)
def _calling_codes() -> pa.Array:
    return pa.array([str(cc) for cc in COUNTRY_CODE_TO_REGION_CODE if cc != 1], pa.large_string())


@lru_cache(maxsize=None)
def _valid_pattern(calling_code: int) -> str | None:
    """Union of the national-number patterns of every number type in every region sharing the code."""
    patterns = []
    for name in COUNTRY_CODE_TO_REGION_CODE.get(calling_code, ()):
        meta = (phonenumbers.PhoneMetadata.metadata_for_nongeo_region(calling_code) if name == "001"
                else phonenumbers.PhoneMetadata.metadata_for_region(name))
        for kind in _NUMBER_TYPES if meta else ():
            desc = getattr(meta, kind)
            if desc is not None and desc.national_number_pattern:
                patterns.append(f"(?:{desc.national_number_pattern})")
    return "|".join(patterns) or None


def _regions(default_region: pd.Series | str, index: pd.Index, length: int) -> pa.Array:
    """Per-row uppercase region. Missing, blank, or not a region phonenumbers knows (a country
    spelling nobody could standardize, like `Atlantis`) reads as the default, US."""
    if isinstance(default_region, pd.Series):
        if not default_region.index.equals(index):
            default_region = default_region.reindex(index)
        region = pc.utf8_upper(_arrow.squeeze(_arrow.to_arrow(default_region)))
    else:
        code = (default_region or "").strip().upper() or None
        region = pc.fill_null(pa.nulls(length, pa.large_string()), _arrow.string(code))
    known = _arrow.mask(pc.is_in(region, value_set=_known_regions()))
    return pc.if_else(known, region, _arrow.string(DEFAULT_REGION))


@lru_cache(maxsize=1)
def _known_regions() -> pa.Array:
    return pa.array(sorted(phonenumbers.SUPPORTED_REGIONS), pa.large_string())


@lru_cache(maxsize=100_000)
def _parse_pair(pair: str) -> str | None:
    """phonenumbers' verdict on one `number\x1fregion` pair; remembered, because the same odd
    numbers come back in every file of a customer's orders (about half a millisecond each)."""
    number, region = pair.split("\x1f", 1)
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
