"""The real people behind every record: the ground truth identity resolution is scored on.

Each person has one canonical name, email (some a second one), E.164 phone, country and
address; about 5% share an address (a household) with someone of another first name, and
some move during the window (records after the move carry the new address).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.synth import reference as ref
from crm_pipeline.synth.columns import (STR, ascii_fold, by_group, choice, duplicated, from_template, ids, join,
                                        num_str, pick, table_take)
from crm_pipeline.synth.timestamps import DAY

HOUSEHOLD_JOINER_SHARE = 0.025  # joiners + their hosts = ~5% of people living with someone
MOVER_SHARE = 0.08
SECOND_EMAIL_SHARE = 0.25
MISSING_BIRTH_DATE_SHARE = 0.12


@dataclass
class Address:
    line1: pa.Array
    line2: pa.Array
    city: pa.Array
    region: pa.Array
    postal_code: pa.Array
    city_code: np.ndarray

    def take(self, idx: np.ndarray) -> "Address":
        i = pa.array(idx)
        return Address(self.line1.take(i), self.line2.take(i), self.city.take(i), self.region.take(i),
                       self.postal_code.take(i), self.city_code[idx])


@dataclass
class Population:
    n: int
    person_id: pa.Array
    country: np.ndarray          # index into reference.COUNTRIES
    first: np.ndarray            # index into reference.FIRST_NAMES
    last: np.ndarray             # index into reference.LAST_NAMES
    email: pa.Array              # canonical, lowercase
    email2: pa.Array             # second email or null
    phone: pa.Array              # E.164
    nsn: pa.Array                # national significant number (digits after the country code)
    birth_day: np.ndarray        # days since epoch
    birth_known: np.ndarray      # False: sources leave birth_date empty
    household: np.ndarray        # person index of the household's first member
    address: Address             # current address
    old_address: Address         # address before the move (same as current for non-movers)
    moved_at: np.ndarray         # seconds; records before it carry old_address

    @property
    def has_email2(self) -> np.ndarray:
        return self.email2.is_valid().to_numpy(zero_copy_only=False)


def _address(rng: np.random.Generator, country: np.ndarray) -> Address:
    n = country.size
    cities = ref.CITIES
    city_country = np.array([ref.COUNTRIES.index(c[0]) for c in cities])
    city = np.empty(n, dtype=np.int64)
    for k in range(len(ref.COUNTRIES)):
        rows = np.flatnonzero(country == k)
        options = np.flatnonzero(city_country == k)
        city[rows] = options[rng.integers(0, options.size, rows.size)]
    number = np.minimum(rng.geometric(0.004, n), 9999)
    street = rng.integers(0, 1 << 30, n)
    kind = rng.integers(0, 1 << 30, n)

    def numbered(streets, types=None):
        def build(rows):
            name = table_take(streets, street[rows] % len(streets))
            if types is None:
                return join(num_str(number[rows]), " ", name)
            return join(num_str(number[rows]), " ", name, " ", table_take(types, kind[rows] % len(types)))
        return build

    style = np.array([0, 0, 1, 2, 3, 0])[country]
    line1 = by_group(style, [
        numbered(ref.STREETS_EN, ref.STREET_TYPES_NA),
        numbered(ref.STREETS_EN, ref.STREET_TYPES_GB),
        lambda rows: join(table_take(ref.STREETS_DE, street[rows] % len(ref.STREETS_DE)), " ", num_str(number[rows])),
        numbered(ref.STREETS_FR),
    ])
    unit = rng.integers(1, 40, n)
    unit_kind = np.where(rng.random(n) < 0.15, choice(rng, n, (5, 2, 1, 0)), 9)
    unit_kind = np.where((style == 1) & (unit_kind < 9), 3, np.where(style >= 2, 9, unit_kind))
    line2 = by_group(unit_kind, [
        lambda rows: join("Apt ", num_str(unit[rows]), table_take("ABCD", unit[rows] % 4)),
        lambda rows: join("Unit ", num_str(unit[rows])),
        lambda rows: join("Suite ", num_str(unit[rows]), "0"),
        lambda rows: join("Flat ", num_str(unit[rows])),
    ])
    letters = [ref.POSTAL_LETTERS.get(c[0]) for c in cities]
    postal = from_template(rng, [c[3] for c in cities], city, letters)
    return Address(line1, line2, table_take([c[1] for c in cities], city), table_take([c[2] for c in cities], city),
                   postal, city)


def _phones(rng: np.random.Generator, country: np.ndarray, city: np.ndarray) -> pa.Array:
    """National significant numbers: real NANP area codes of the person's city, valid exchanges."""
    n = country.size
    codes = [c[4] for c in ref.CITIES]
    flat = [a for cs in codes for a in cs]
    start = np.cumsum([0] + [len(cs) for cs in codes])[:-1]
    count = np.array([max(len(cs), 1) for cs in codes])
    area_idx = np.minimum(start[city] + (rng.random(n) * count[city]).astype(np.int64), len(flat) - 1)
    exchange = rng.integers(200, 1000, n)
    exchange = np.where((exchange % 100 == 11) | (exchange == 555), exchange + 1, exchange)
    line = rng.integers(0, 10_000, n)
    which = rng.integers(0, 1 << 30, n)
    subscriber = rng.integers(0, 10 ** 8, n)

    def mobile(prefixes):
        def build(rows):
            j = which[rows] % len(prefixes)
            pre = table_take([p for p, _ in prefixes], j)
            digits = np.array([d for _, d in prefixes])[j]
            return join(pre, pc.utf8_lpad(num_str(subscriber[rows] % 10 ** digits), 8, "0"))
        return build

    builders = []
    for cc in ref.COUNTRIES:
        if cc in ref.MOBILE_PREFIXES:
            prefixes = ref.MOBILE_PREFIXES[cc]
            if len({d for _, d in prefixes}) > 1:  # 7-digit subscriber numbers: drop the lpad's extra digit
                builders.append(lambda rows, b=mobile(prefixes), p=prefixes: _trim(b(rows), which[rows], p))
            else:
                builders.append(mobile(prefixes))
        else:
            builders.append(lambda rows: join(table_take(flat, area_idx[rows]), num_str(exchange[rows]),
                                              num_str(line[rows], 4)))
    return by_group(country, builders)


def _trim(numbers: pa.Array, which: np.ndarray, prefixes) -> pa.Array:
    """Cut each number to its prefix's length (prefix + subscriber digits)."""
    lengths = np.array([len(p) + d for p, d in prefixes])[which % len(prefixes)]
    out = numbers
    for length in np.unique(lengths):
        out = pick(lengths == length, pc.utf8_slice_codeunits(numbers, 0, int(length)), out)
    return out


_FOLDED: dict[str, pa.Array] = {}


def _folded(names: tuple[str, ...]) -> pa.Array:
    key = names[0] + str(len(names))
    if key not in _FOLDED:
        _FOLDED[key] = ascii_fold(pa.array(list(names), STR))
    return _FOLDED[key]


def _emails(rng: np.random.Generator, first: np.ndarray, last: np.ndarray, country: np.ndarray,
            patterns: tuple[float, ...]) -> pa.Array:
    n = country.size
    F, L = _folded(ref.FIRST_NAMES), _folded(ref.LAST_NAMES)
    I = pc.utf8_slice_codeunits(F, 0, 1)
    nn = rng.integers(1, 100, n)
    nnnn = rng.integers(1, 10_000, n)
    f = lambda rows: F.take(pa.array(first[rows]))
    l_ = lambda rows: L.take(pa.array(last[rows]))
    local = by_group(choice(rng, n, patterns), [
        lambda r: join(f(r), ".", l_(r)),
        lambda r: join(f(r), l_(r)),
        lambda r: join(I.take(pa.array(first[r])), ".", l_(r)),
        lambda r: join(f(r), ".", l_(r), num_str(nn[r], 2)),
        lambda r: join(f(r), "_", l_(r)),
        lambda r: join(l_(r), ".", f(r)),
        lambda r: join(f(r), num_str(nnnn[r])),
    ])
    names, offsets = [], []
    domain = np.empty(n, dtype=np.int64)
    for k, cc in enumerate(ref.COUNTRIES):
        d, w = zip(*ref.EMAIL_DOMAINS[cc])
        rows = np.flatnonzero(country == k)
        domain[rows] = len(names) + choice(rng, rows.size, w)
        names.extend(d)
    return join(local, "@", table_take(names, domain))


def _mailbox(emails: pa.Array) -> pa.Array:
    gmail = pc.match_substring_regex(emails, r"@(gmail|googlemail)\.com$")
    parts = pc.split_pattern(emails, "@", max_splits=1)
    local = pc.replace_substring(pc.list_element(parts, 0), ".", "")
    undotted = pc.binary_join_element_wise(local, pc.list_element(parts, 1), "@")
    return pc.if_else(gmail, undotted, emails)


def _make_unique(emails: pa.Array) -> pa.Array:
    """Two people never share a real mailbox: suffix `.<row>` on the later copies (rounds until unique).

    Mailboxes are compared as providers deliver: gmail ignores dots in the local part, so
    `amanda.williams@gmail.com` and `amandawilliams@gmail.com` are one mailbox, not two people.
    """
    row = np.arange(len(emails))
    for _ in range(5):
        dup = duplicated(_mailbox(emails))
        if not dup.any():
            return emails
        rows = np.flatnonzero(dup)
        parts = pc.split_pattern(emails.take(pa.array(rows)), "@", max_splits=1)
        fixed = join(pc.list_element(parts, 0), ".", num_str(row[rows]), "@", pc.list_element(parts, 1))
        emails = pc.replace_with_mask(emails, pa.array(dup), fixed)
    return emails


def build_population(n: int, rng: np.random.Generator, t_start: int, t_end: int) -> Population:
    """Draw `n` people with their identifiers, households and moves."""
    country = choice(rng, n, ref.COUNTRY_SHARES)
    # Households: a few joiners live with a host (never a joiner themselves) of the same country.
    joiner = rng.random(n) < HOUSEHOLD_JOINER_SHARE
    joiner[0] = False
    hosts = np.flatnonzero(~joiner)
    host = np.arange(n)
    host[joiner] = hosts[rng.integers(0, hosts.size, int(joiner.sum()))]
    country = country[host]
    culture = np.asarray(ref.CULTURE)[country]

    first_by_culture = [ref.FIRST_NAMES_EN, ref.FIRST_NAMES_DE, ref.FIRST_NAMES_FR]
    last_by_culture = [ref.LAST_NAMES_EN, ref.LAST_NAMES_DE, ref.LAST_NAMES_FR]
    first = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    for c in range(3):
        rows = np.flatnonzero(culture == c)
        f_opts = np.array([ref.FIRST_NAMES.index(x) for x in first_by_culture[c]])
        l_opts = np.array([ref.LAST_NAMES.index(x) for x in last_by_culture[c]])
        # Zipf-like popularity so some names are common (more near-duplicates to resolve).
        fw = 1.0 / np.arange(1, f_opts.size + 1) ** 0.6
        lw = 1.0 / np.arange(1, l_opts.size + 1) ** 0.8
        first[rows] = f_opts[choice(rng, rows.size, fw[rng.permutation(f_opts.size)])]
        last[rows] = l_opts[choice(rng, rows.size, lw)]
    # Household members: usually the host's last name, always another first name.
    same_last = joiner & (rng.random(n) < 0.7)
    last[same_last] = last[host[same_last]]
    clash = joiner & (first == first[host])
    first[clash] = (first[clash] + 1) % len(ref.FIRST_NAMES_EN)

    original = _address(rng, country)
    moved = rng.random(n) < MOVER_SHARE
    new = _address(rng, country)
    idx = np.where(joiner, host, np.arange(n))
    original, new = original.take(idx), new.take(idx)
    span = t_end - t_start
    moved_at = (t_start + span // 10 + rng.random(n) * (span * 8 // 10)).astype(np.int64)[idx]
    moved = moved[idx]
    moved_at = np.where(moved, moved_at, np.iinfo(np.int64).max)
    mv = pa.array(moved)
    current = Address(pc.if_else(mv, new.line1, original.line1), pc.if_else(mv, new.line2, original.line2),
                      pc.if_else(mv, new.city, original.city), pc.if_else(mv, new.region, original.region),
                      pc.if_else(mv, new.postal_code, original.postal_code),
                      np.where(moved, new.city_code, original.city_code))

    nsn = _phones(rng, country, original.city_code)
    cc = table_take([ref.COUNTRY_CALLING_CODES[c] for c in ref.COUNTRIES], country)
    phone = join("+", cc, nsn)

    email = _emails(rng, first, last, country, (28, 15, 12, 15, 10, 8, 12))
    email2 = _emails(rng, first, last, country, (0, 30, 0, 30, 0, 10, 30))
    has2 = rng.random(n) < SECOND_EMAIL_SHARE
    both = _make_unique(pa.concat_arrays([email, pick(has2, email2, pa.nulls(n, STR))]))
    email, email2 = both.slice(0, n), both.slice(n, n)

    age_days = (rng.triangular(18, 34, 85, n) * 365.25).astype(np.int64)
    birth_day = t_end // DAY - age_days
    width = max(7, len(str(n)))
    return Population(
        n=n, person_id=ids("P", np.arange(n), width), country=country, first=first, last=last,
        email=email, email2=email2, phone=phone, nsn=nsn, birth_day=birth_day,
        birth_known=rng.random(n) >= MISSING_BIRTH_DATE_SHARE, household=host,
        address=current, old_address=original, moved_at=moved_at,
    )
