"""Which brands each person deals with, and how: account, orders, email list, browsing.

A person belongs to 1-3 brands (the cross-brand shopper is what a multi-brand CDP is for);
per brand they may hold an account, buy (some only as guests, some only at the tills of the
till brand), subscribe (about 30% of subscribers never buy) and browse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crm_pipeline.synth.columns import choice

BRANDS_PER_PERSON = (0.65, 0.25, 0.10)
BUYER_SHARE = 0.62
ACCOUNT_SHARE_BUYERS = 0.92      # the other buyers only ever check out as guests
ACCOUNT_SHARE_OTHERS = 0.3
SUBSCRIBER_SHARE = (0.60, 0.43)  # of buyers, of non-buyers: ~30% of subscribers never buy
BROWSER_SHARE = 0.75
TILL_SHARE = 0.10                # of the till brand's buyers: identified at the till by phone only


@dataclass
class Memberships:
    """One row per (person, brand) pair."""

    person: np.ndarray
    brand: np.ndarray
    joined_at: np.ndarray        # seconds: first contact with the brand
    buyer: np.ndarray
    account: np.ndarray
    till: np.ndarray
    subscriber: np.ndarray
    browser: np.ndarray

    def of_brand(self, b: int) -> np.ndarray:
        return np.flatnonzero(self.brand == b)


def brand_names(brands: int) -> list[str]:
    """brand_a, brand_b, ... brand_z, brand_aa ..."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for i in range(brands):
        name, k = "", i
        while True:
            name = letters[k % 26] + name
            k = k // 26 - 1
            if k < 0:
                break
        out.append(f"brand_{name}")
    return out


def till_brand(brands: int) -> int:
    """The brand whose stores run tills (brand_c, or the last brand when there are fewer)."""
    return min(2, brands - 1)


def build_memberships(n: int, brands: int, rng: np.random.Generator, t_start: int, t_end: int) -> Memberships:
    k = np.minimum(1 + choice(rng, n, BRANDS_PER_PERSON), brands)
    # Brands differ in size: a random key per (person, brand), biased by brand weight, ranks the picks.
    weight = 1.0 / np.arange(1, brands + 1) ** 0.5
    keys = rng.gumbel(size=(n, brands)) + np.log(weight)
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    member = rank < k[:, None]
    person, brand = np.nonzero(member)
    m = person.size
    buyer = rng.random(m) < BUYER_SHARE
    account = np.where(buyer, rng.random(m) < ACCOUNT_SHARE_BUYERS, rng.random(m) < ACCOUNT_SHARE_OTHERS)
    till = buyer & (brand == till_brand(brands)) & (rng.random(m) < TILL_SHARE)
    account |= till
    return Memberships(
        person=person, brand=brand, joined_at=rng.integers(t_start, t_end - 3600, m),
        buyer=buyer, account=account, till=till,
        subscriber=rng.random(m) < np.where(buyer, *SUBSCRIBER_SHARE), browser=rng.random(m) < BROWSER_SHARE,
    )
