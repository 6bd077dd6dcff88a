"""Each person's own channel mix, and the channel of each order drawn from it.

Shoppers differ in where they buy: most buy mostly on the web, but some mostly in store, on the
app or on a marketplace. Each person's mix is a Dirichlet draw around the population weights
(`CHANNEL_WEIGHTS`, so orders still split about 62/20/10/8 overall); a low concentration makes
most people lean on one channel, the way few shoppers split evenly. The mixes come from their own
random stream, so drawing them consumes nothing from any brand's order stream.

An order's channel maps that order's uniform draw (the one the shared weights used to read)
through a maximal coupling of the shared weights and the person's mix: the order keeps the
channel the shared weights give it wherever the person's mix has room for it, and only the
excess moves. So the fewest orders change channel relative to the shared-weights draw. The
order's shipping, ship-to and contact details follow the channel it lands in (see `commerce`).
"""

from __future__ import annotations

import numpy as np

from crm_pipeline.synth.columns import stream

CHANNELS = ("web", "app", "store", "marketplace")
CHANNEL_WEIGHTS = (62, 20, 10, 8)
# Dirichlet alpha = CONCENTRATION * weights: a typical shopper places ~87% of their orders in one channel,
# and each channel is the favourite of about its weight's share of shoppers.
CONCENTRATION = 0.5
STORE = CHANNELS.index("store")
MARKETPLACE = CHANNELS.index("marketplace")


def shared_cdf() -> np.ndarray:
    """The population weights' CDF, computed exactly as `columns.choice` computes it."""
    w = np.asarray(CHANNEL_WEIGHTS, dtype=float)
    return np.cumsum(w) / w.sum()


def shared_weights() -> np.ndarray:
    return np.diff(shared_cdf(), prepend=0.0)


def person_mixes(seed: int, people: int) -> np.ndarray:
    """people x channels: each person's probability of placing an order in each channel."""
    return stream(seed, "channel_mix").dirichlet(CONCENTRATION * shared_weights(), people)


def shared_channel(u: np.ndarray) -> np.ndarray:
    """The channel the population weights give each uniform draw (as `columns.choice` reads it)."""
    return np.searchsorted(shared_cdf(), u, side="right").astype(np.int64)


def own_channel(mix: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per order (rows of `mix`, the buyer's mix; `u` its uniform): a channel distributed as `mix`.

    Maximal coupling with `shared_channel(u)`: within each channel's band of the shared weights,
    the first min(shared, own) share keeps that channel; the rest of the bands, laid end to end,
    is handed to the channels whose own share exceeds the shared one, in proportion to the excess.
    """
    w = shared_weights()
    k = len(CHANNELS)
    base = shared_channel(u)
    rows = np.arange(u.size)
    band_start = np.concatenate([[0.0], shared_cdf()[:-1]])[base]
    kept = np.minimum(mix, w)                                    # n x k
    keep = (u - band_start) < kept[rows, base]
    # Position of u on the line of free space (the parts of the bands not kept), then the excess CDF.
    free = w - kept
    free_before = (np.cumsum(free, axis=1) - free)[rows, base]
    pos = free_before + (u - band_start - kept[rows, base])
    excess = np.maximum(mix - w, 0.0)
    excess_cdf = np.cumsum(excess, axis=1)
    moved = (pos[:, None] >= excess_cdf[:, : k - 1]).sum(axis=1)
    return np.where(keep, base, moved)
