"""Free-text hygiene shared by names and addresses: one cleaning, and flags for content worth a look."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _arrow

# Longer than any real name or address line; such values are usually a pasted blob.
MAX_TEXT_LENGTH = 255
# What a spreadsheet would execute when an exported value starts with it (CSV/formula injection).
_FORMULA_START = r"^[=+\-@\t\r]"


def clean_text(values: pd.Series) -> pd.Series:
    """NFKC, control characters (NUL ...) dropped, whitespace runs collapsed, trimmed; blank -> missing."""
    return _arrow.text_series(_arrow.clean_text(_arrow.to_arrow(values)), values.index)


def flag_suspicious_text(values: pd.Series, *, max_length: int = MAX_TEXT_LENGTH) -> pd.Series:
    """Why a raw free-text value looks wrong, or missing when it looks fine.

    Reasons, first match wins: `control_characters` (NUL bytes and the like: a file
    read with the wrong encoding), `formula_like` (starts with `=`, `+`, `-` or `@`,
    which a spreadsheet would run on export), `too_long` (over `max_length`),
    `no_letters` (digits, punctuation or emoji only). Flags inform review; the
    standardizers still return a cleaned value.
    """
    raw = _arrow.to_arrow(values)
    trimmed = pc.utf8_trim_whitespace(raw)
    checks = (
        ("control_characters", pc.match_substring_regex(raw, _arrow.CONTROL)),
        ("formula_like", pc.match_substring_regex(trimmed, _FORMULA_START)),
        ("too_long", pc.greater(pc.utf8_length(raw), max_length)),
        ("no_letters", pc.and_(pc.greater(pc.utf8_length(trimmed), 0),
                               pc.invert(pc.match_substring_regex(trimmed, r"\pL")))),
    )
    reason = pa.nulls(len(raw), pa.large_string())
    for name, hit in reversed(checks):
        reason = pc.if_else(_arrow.mask(hit), _arrow.string(name), reason)
    return _arrow.text_series(reason, values.index)
