"""The buying behaviour behind the orders, for judging churn and channel predictions: `truth/dropout.csv`
and `truth/channels.csv`.

- dropout.csv: one row per buyer and brand: the UTC day of their silent dropout (the day of their
  last purchase; empty while still alive at the end date) and their purchase rate per day.
- channels.csv: one row per person who buys anywhere: the share of their orders each channel is
  expected to take under the generator's own channel draw, and the channel with the largest share.
  Orders pick their channel per order: the till brand's till buyers always `store`, every other
  order from its buyer's own channel mix (see `channel_mix`); a person's expected mix is those
  propensities weighted by their purchase rate per brand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from crm_pipeline.synth.columns import STR
from crm_pipeline.synth.channel_mix import CHANNELS, STORE
from crm_pipeline.synth.commerce import STILL_ACTIVE
from crm_pipeline.synth.memberships import Memberships
from crm_pipeline.synth.population import Population
from crm_pipeline.synth.timestamps import DAY


@dataclass
class BrandBehaviour:
    """Per membership row of one brand (indexes into Memberships): dropout seconds and purchase rate."""

    rows: np.ndarray
    dropout_at: np.ndarray
    purchase_rate: np.ndarray


def channel_propensity(mem: Memberships, mixes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per membership row (len(rows) x channels): the probability an order of that buyer takes each channel."""
    out = mixes[mem.person[rows]].copy()
    till = mem.till[rows]
    out[till] = 0.0
    out[till, STORE] = 1.0
    return out


def write_behaviour(mem: Memberships, pop: Population, mixes: np.ndarray, brand_names: list[str],
                    per_brand: list[BrandBehaviour], truth: Path) -> None:
    options = pcsv.WriteOptions(quoting_style="none")
    rows = np.concatenate([b.rows for b in per_brand])
    dropout = np.concatenate([b.dropout_at[b.rows] for b in per_brand])
    rate = np.concatenate([b.purchase_rate[b.rows] for b in per_brand])
    buyer = mem.buyer[rows]
    rows, dropout, rate = rows[buyer], dropout[buyer], rate[buyer]
    order = np.lexsort((mem.brand[rows], mem.person[rows]))
    rows, dropout, rate = rows[order], dropout[order], rate[order]
    alive = dropout == STILL_ACTIVE
    day = np.where(alive, 0, dropout // DAY).astype("datetime64[D]")
    pcsv.write_csv(pa.table({
        "person_id": pop.person_id.take(pa.array(mem.person[rows])),
        "brand": pa.array(np.asarray(brand_names, dtype=object)[mem.brand[rows]], STR),
        "dropout_date": pa.array(day, mask=alive),
        "purchase_rate_per_day": pa.array(np.round(rate, 6)),
    }), truth / "dropout.csv", options)

    # Expected orders per channel: the rate per brand times that membership's channel propensity.
    mix = channel_propensity(mem, mixes, rows) * rate[:, None]
    people, first = np.unique(mem.person[rows], return_index=True)
    per_person = np.add.reduceat(mix, first, axis=0)
    share = per_person / per_person.sum(axis=1, keepdims=True)
    columns = {"person_id": pop.person_id.take(pa.array(people)),
               "preferred_channel": pa.array(np.asarray(CHANNELS, dtype=object)[share.argmax(axis=1)], STR)}
    columns.update({f"share_{c}": pa.array(np.round(share[:, i], 4)) for i, c in enumerate(CHANNELS)})
    pcsv.write_csv(pa.table(columns), truth / "channels.csv", options)
