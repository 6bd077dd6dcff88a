"""Vectorized builders for string columns and random draws.

Everything that turns numbers into text goes through pyarrow compute kernels (C++),
because Python-level string formatting of tens of millions of values would blow the
time budget; random streams are derived from (seed, name) so modules stay independent.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STR = pa.string()


def stream(seed: int, *names: str | int) -> np.random.Generator:
    """An independent, reproducible random stream per (seed, purpose); no Python hash()."""
    words = [int(seed)] + [zlib.crc32(str(n).encode()) for n in names]
    return np.random.default_rng(words)


def table_take(values: Sequence[str] | pa.Array, idx: np.ndarray) -> pa.Array:
    """values[idx] as an Arrow string array (negative index -> null)."""
    arr = values if isinstance(values, pa.Array) else pa.array(list(values), STR)
    idx = np.asarray(idx)
    if idx.size and idx.min() < 0:
        return arr.take(pa.array(idx, mask=idx < 0))
    return arr.take(pa.array(idx))


def join(*parts: str | pa.Array) -> pa.Array:
    """Concatenate strings element-wise; a null part makes the result null."""
    return pc.binary_join_element_wise(*parts, "")


def num_str(values: np.ndarray, width: int = 0) -> pa.Array:
    """Integers as text, zero-padded to `width`."""
    s = pa.array(np.asarray(values, dtype=np.int64)).cast(STR)
    return pc.utf8_lpad(s, width, "0") if width else s


def ids(prefix: str, seq: np.ndarray, width: int) -> pa.Array:
    """Identifiers like `SO000000123` from sequence numbers."""
    return join(prefix, num_str(seq, width))


def money(cents: np.ndarray) -> pa.Array:
    """Integer cents as decimal text with two places (`12.50`, `-3.00`), exact."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((cents.size, 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    dec = pa.Array.from_buffers(pa.decimal128(20, 2), cents.size, [None, pa.py_buffer(words)])
    return dec.cast(STR)


def null_where(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    """Blank out (null) the values where mask is true."""
    if not np.any(mask):
        return arr
    return pc.if_else(pa.array(mask), pa.nulls(len(arr), arr.type), arr)


def pick(mask: np.ndarray, when_true: pa.Array | str, when_false: pa.Array | str) -> pa.Array:
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), when_true, when_false)


def choice(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    """Category codes 0..k-1 drawn with the given (unnormalised) weights."""
    w = np.asarray(weights, dtype=float)
    return np.searchsorted(np.cumsum(w) / w.sum(), rng.random(n), side="right").astype(np.int64)


def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-owner counts, the owner of each expanded element and its rank within the owner."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(owner.size) - starts[owner]
    return owner, rank


def from_template(rng: np.random.Generator, templates: Sequence[str], which: np.ndarray,
                  letters: Sequence[str | None]) -> pa.Array:
    """Fill templates ('#' digit, 'L' letter, rest literal) chosen per row: postal codes and the like."""
    pieces = []
    order = []
    for t, (template, alphabet) in enumerate(zip(templates, letters)):
        rows = np.flatnonzero(which == t)
        if rows.size == 0:
            continue
        codes = np.empty((rows.size, len(template)), dtype=np.uint8)
        for pos, ch in enumerate(template):
            if ch == "#":
                codes[:, pos] = 48 + rng.integers(0, 10, rows.size)
            elif ch == "L":
                alpha = np.frombuffer((alphabet or "ABCDEFGHJKLMNPRSTUVWXYZ").encode(), dtype=np.uint8)
                codes[:, pos] = alpha[rng.integers(0, alpha.size, rows.size)]
            else:
                codes[:, pos] = ord(ch)
        pieces.append(pa.array(codes.view(f"S{len(template)}").ravel()).cast(STR))
        order.append(rows)
    if not pieces:
        return pa.nulls(which.size, STR)
    rows = np.concatenate(order)
    values = pa.concat_arrays(pieces)
    inverse = np.empty(which.size, dtype=np.int64)
    inverse[rows] = np.arange(rows.size)
    return values.take(pa.array(inverse))


def hex_ids(rng: np.random.Generator, n: int, width: int = 16) -> pa.Array:
    """Random lowercase hex identifiers (cookies): looks like what trackers write."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    codes = digits[rng.integers(0, 16, (n, width))]
    return pa.array(np.ascontiguousarray(codes).view(f"S{width}").ravel()).cast(STR)


def ascii_fold(arr: pa.Array) -> pa.Array:
    """Lowercase ASCII letters only (Müller -> muller, O'Brien -> obrien) for email local parts."""
    folded = pc.utf8_normalize(pc.utf8_lower(arr), "NFKD")
    return pc.replace_substring_regex(folded, r"[^a-z]", "")


def by_group(codes: np.ndarray, builders: Sequence) -> pa.Array:
    """Build a string column group by group: builders[k](rows) makes the values of rows with code k
    (codes without a builder give null).

    Cheaper than building every variant for every row and choosing afterwards."""
    codes = np.asarray(codes)
    pieces, order = [], []
    for k, build in enumerate(builders):
        rows = np.flatnonzero(codes == k)
        if rows.size:
            pieces.append(build(rows).cast(STR))
            order.append(rows)
    if not pieces:
        return pa.nulls(codes.size, STR)
    rows = np.concatenate(order)
    inverse = np.zeros(codes.size, dtype=np.int64)
    inverse[rows] = np.arange(rows.size)
    covered = np.zeros(codes.size, dtype=bool)
    covered[rows] = True
    return pa.concat_arrays(pieces).take(pa.array(inverse, mask=~covered))


def duplicated(values: pa.Array) -> np.ndarray:
    """True for every repeat of a value seen earlier in the array (nulls never count)."""
    codes = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False)
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    codes = np.where(valid, codes, -1)
    _, first = np.unique(codes, return_index=True)
    dup = np.ones(codes.size, dtype=bool)
    dup[first] = False
    return dup & valid


def const(value: str, n: int) -> pa.Array:
    """The same text n times."""
    return pa.repeat(pa.scalar(value, STR), n)
