"""How one person's identifiers drift between sources: the noise identity resolution must see through.

Produced variations (all vectorized, per record):
  - email: as canonical, Title.Case@Example.Com, UPPER, surrounding whitespace (" jane.doe@x.com ")
  - phone: US/CA `(415) 123-4567`, `+1 415 123 4567`, `4151234567`, `415-123-4567`, `+14151234567`;
    GB `+44 7700 900123`, `07700 900123`, `+447700900123`; DE `+49 151 12345678`, `0151 12345678`;
    FR `+33 6 12 34 56 78`, `06 12 34 56 78`; AU `+61 412 345 678`, `0412 345 678`; and E.164
  - country: US `US`, `USA`, `United States`, `United States of America`, `u.s.`; GB `GB`, `UK`,
    `United Kingdom`, `Great Britain`; DE `DE`, `Germany`, `Deutschland`, `DEU`; ...
  - first name: nickname (Robert -> Bob) or a one-edit typo (swap, drop, double a letter)
  - last name: a one-edit typo
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.synth import reference as ref
from crm_pipeline.synth.columns import STR, by_group, choice, join, pick, table_take


def _typos(name: str) -> tuple[str, str, str]:
    """Three one-edit misspellings of a name: swap two letters, drop one, double one."""
    mid = max(1, len(name) // 2)
    swapped = name[:mid - 1] + name[mid] + name[mid - 1] + name[mid + 1:] if len(name) > 2 else name + name[-1]
    if swapped == name:
        swapped = name[:mid] + name[mid + 1:]
    dropped = name[:mid] + name[mid + 1:]
    doubled = name[:mid] + name[mid] + name[mid:]
    return swapped, dropped, doubled


FIRST_TYPOS = pa.array([t for n in ref.FIRST_NAMES for t in _typos(n)], STR)
LAST_TYPOS = pa.array([t for n in ref.LAST_NAMES for t in _typos(n)], STR)
_NICK = dict(ref.NICKNAMES)
NICKNAMES = pa.array([_NICK.get(n) for n in ref.FIRST_NAMES], STR)
HAS_NICKNAME = np.array([n in _NICK for n in ref.FIRST_NAMES])


def email_variant(emails: pa.Array, rng: np.random.Generator, share: float = 0.15) -> pa.Array:
    """Same address, written differently: case and surrounding whitespace."""
    n = len(emails)
    code = np.where(rng.random(n) < share, choice(rng, n, (35, 15, 30, 20)), -1)

    def sub(rows):
        return emails.take(pa.array(rows))

    variant = by_group(code, [
        lambda r: pc.utf8_title(sub(r)),
        lambda r: pc.utf8_upper(sub(r)),
        lambda r: join(" ", sub(r), " "),
        lambda r: join(pc.utf8_title(sub(r)), " "),
    ])
    return pick(code >= 0, variant, emails)


# Phone templates per country: literals and (start, end) slices of the national significant number.
_NANP = (
    (("(",), (0, 3), (") ",), (3, 6), ("-",), (6, 10)),
    (("+1 ",), (0, 3), (" ",), (3, 6), (" ",), (6, 10)),
    ((0, 10),),
    ((0, 3), ("-",), (3, 6), ("-",), (6, 10)),
    (("+1",), (0, 10)),
)
PHONE_FORMATS = {
    "US": (_NANP, (30, 20, 25, 15, 10)),
    "CA": (_NANP, (30, 20, 25, 15, 10)),
    "GB": (((("+44 ",), (0, 4), (" ",), (4, 99)), (("0",), (0, 4), (" ",), (4, 99)), (("+44",), (0, 99))),
           (35, 45, 20)),
    "DE": (((("+49 ",), (0, 3), (" ",), (3, 99)), (("0",), (0, 3), (" ",), (3, 99)), (("+49",), (0, 99))),
           (35, 45, 20)),
    "FR": (((("+33 ",), (0, 1), (" ",), (1, 3), (" ",), (3, 5), (" ",), (5, 7), (" ",), (7, 9)),
            (("0",), (0, 1), (" ",), (1, 3), (" ",), (3, 5), (" ",), (5, 7), (" ",), (7, 9)),
            (("+33",), (0, 99))), (35, 45, 20)),
    "AU": (((("+61 ",), (0, 3), (" ",), (3, 6), (" ",), (6, 99)), (("0",), (0, 3), (" ",), (3, 6), (" ",), (6, 99)),
            (("+61",), (0, 99))), (35, 45, 20)),
}


def phone_variant(nsn: pa.Array, country: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """A person's number in one of the formats common in their country."""
    n = len(nsn)
    code = np.zeros(n, dtype=np.int64)
    builders = []
    for k, cc in enumerate(ref.COUNTRIES):
        templates, weights = PHONE_FORMATS[cc]
        rows = country == k
        code[rows] = len(builders) + choice(rng, int(rows.sum()), weights)
        for template in templates:
            def build(r, template=template):
                digits = nsn.take(pa.array(r))
                parts = [p[0] if len(p) == 1 else pc.utf8_slice_codeunits(digits, p[0], p[1]) for p in template]
                return join(*parts) if len(parts) > 1 else parts[0]
            builders.append(build)
    return by_group(code, builders)


_SPELLINGS = [s for group in ref.COUNTRY_SPELLINGS for s in group]
_SPELLING_START = np.cumsum([0] + [len(g) for g in ref.COUNTRY_SPELLINGS])[:-1]


def country_variant(country: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Country as a source writes it; US people get all five common spellings."""
    n = country.size
    count = np.array([len(g) for g in ref.COUNTRY_SPELLINGS])[country]
    us = country == ref.COUNTRIES.index("US")
    alt = 1 + (rng.random(n) * (count - 1)).astype(np.int64)
    which = np.where(rng.random(n) < np.where(us, 0.45, 0.6), 0, alt)
    return table_take(_SPELLINGS, _SPELLING_START[country] + which)


def first_name_variant(first: np.ndarray, rng: np.random.Generator, nickname_share: float = 0.08,
                       typo_share: float = 0.02) -> pa.Array:
    """First names as typed: mostly canonical, some nicknames (where one exists) and typos."""
    n = first.size
    r = rng.random(n)
    nick = (r < nickname_share) & HAS_NICKNAME[first]
    typo = (r >= 1 - typo_share)
    out = table_take(ref.FIRST_NAMES, first)
    if typo.any():
        out = pick(typo, FIRST_TYPOS.take(pa.array(first * 3 + rng.integers(0, 3, n))), out)
    if nick.any():
        out = pick(nick, NICKNAMES.take(pa.array(first)), out)
    return out


def last_name_variant(last: np.ndarray, rng: np.random.Generator, typo_share: float = 0.01) -> pa.Array:
    n = last.size
    out = table_take(ref.LAST_NAMES, last)
    typo = rng.random(n) < typo_share
    if typo.any():
        out = pick(typo, LAST_TYPOS.take(pa.array(last * 3 + rng.integers(0, 3, n))), out)
    return out


def upper_some(values: pa.Array, share: float, rng: np.random.Generator) -> pa.Array:
    """Some systems (tills) shout: upper-case a share of values."""
    return pick(rng.random(len(values)) < share, pc.utf8_upper(values), values)


def blank_some(values: pa.Array, share: float, rng: np.random.Generator) -> pa.Array:
    """Leave a share of values empty (the source did not capture them)."""
    return pick(rng.random(len(values)) < share, pa.nulls(len(values), STR), values)
