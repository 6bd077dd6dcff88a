"""Each brand's catalogue: ~300 SKUs in a few top categories, with list prices.

Orders and product views pick SKUs from it, so every sku in order_items and web_events
exists in the brand's products file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from crm_pipeline.synth import reference as ref
from crm_pipeline.synth.columns import choice, join, money, num_str, pick, table_take
from crm_pipeline.synth.landed import LandedFile
from crm_pipeline.synth.timestamps import DAY, format_ts

SKUS_PER_BRAND = 300
BOOLEAN_SPELLINGS = (("true", "false"), ("1", "0"), ("yes", "no"))


@dataclass
class Catalogue:
    sku: pa.Array            # sorted by price, cheapest first
    price_cents: np.ndarray  # USD list price
    category: np.ndarray     # taxonomy index

    @property
    def size(self) -> int:
        return self.price_cents.size


def brand_letter(brand: str) -> str:
    return brand.removeprefix("brand_").upper()


def build_catalogue(b: int, brand: str, rng: np.random.Generator, t_end: int) -> tuple[Catalogue, LandedFile]:
    n = SKUS_PER_BRAND
    n_cat = len(ref.TAXONOMY)
    cats = rng.choice(n_cat, size=max(4, int(n_cat * 0.6)), replace=False)
    category = cats[rng.integers(0, cats.size, n)]
    low = np.array([t[2] for t in ref.TAXONOMY], dtype=float)[category]
    high = np.array([t[3] for t in ref.TAXONOMY], dtype=float)[category]
    price = np.exp(rng.uniform(np.log(low), np.log(high)))
    cents = np.where(rng.random(n) < 0.7, np.floor(price) * 100 + 99, np.round(price) * 100).astype(np.int64)
    order = np.argsort(cents, kind="stable")
    category, cents = category[order], cents[order]
    number = np.sort(rng.choice(1_000_000, size=n, replace=False))[rng.permutation(n)]
    sku = join(brand_letter(brand), "-", num_str(number, 6))
    noun_idx = rng.integers(0, 3, n)
    noun = table_take([x for t in ref.TAXONOMY for x in t[1]], category * 3 + noun_idx)
    name = join(table_take(ref.PRODUCT_ADJECTIVES, rng.integers(0, len(ref.PRODUCT_ADJECTIVES), n)), " ",
                table_take(ref.PRODUCT_COLOURS, rng.integers(0, len(ref.PRODUCT_COLOURS), n)), " ", noun)
    house = f"Brand {brand_letter(brand)} Basics"
    maker = pick(rng.random(n) < 0.4, pa.array([house] * n), table_take(ref.MAKERS, choice(rng, n, [1] * len(ref.MAKERS))))
    yes, no = BOOLEAN_SPELLINGS[b % len(BOOLEAN_SPELLINGS)]
    active = pick(rng.random(n) < 0.9, yes, no)
    updated = t_end - rng.integers(DAY, 400 * DAY, n)
    columns = {
        "sku": sku, "name": name, "category": table_take([t[0] for t in ref.TAXONOMY], category),
        "brand": maker, "price": money(cents), "currency": pa.array(["USD"] * n), "active": active,
        "updated_at": format_ts(updated),
    }
    shown = rng.permutation(n)  # the file lists products in no particular order
    idx = pa.array(shown)
    file = LandedFile(brand, "products", "products.csv", {k: v.take(idx) for k, v in columns.items()},
                      np.full(n, -1, dtype=np.int64), {"updated_at": "iso"})
    return Catalogue(sku, cents, category), file
