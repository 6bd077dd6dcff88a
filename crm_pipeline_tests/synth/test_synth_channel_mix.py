"""An order's channel follows its buyer's own mix, moving as few orders as it can off the shared-weights draw."""

from __future__ import annotations

import numpy as np

from crm_pipeline.synth.channel_mix import CHANNELS, own_channel, person_mixes, shared_channel, shared_weights
from crm_pipeline.synth.columns import choice

MIXES = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.1, 0.7, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25],
                  [0.62, 0.2, 0.1, 0.08]])


def test_each_order_takes_a_channel_with_its_buyers_probabilities():
    u = np.random.default_rng(3).random(400_000)
    for mix in MIXES:
        drawn = own_channel(np.tile(mix, (u.size, 1)), u)
        freq = np.bincount(drawn, minlength=len(CHANNELS)) / u.size
        assert np.abs(freq - mix).max() < 0.005, (mix, freq)


def test_orders_keep_the_shared_draw_wherever_the_mix_has_room_for_it():
    u = np.random.default_rng(4).random(400_000)
    # The shared channel is exactly what the population weights' draw gave before mixes (same uniforms).
    assert (shared_channel(u) == choice(np.random.default_rng(4), u.size, (62, 20, 10, 8))).all()
    for mix in MIXES:
        kept = (own_channel(np.tile(mix, (u.size, 1)), u) == shared_channel(u)).mean()
        assert abs(kept - np.minimum(mix, shared_weights()).sum()) < 0.005, (mix, kept)


def test_mixes_vary_around_the_population_weights_and_repeat_per_seed():
    mixes = person_mixes(7, 50_000)
    assert np.allclose(mixes.sum(axis=1), 1.0)
    assert np.abs(mixes.mean(axis=0) - shared_weights()).max() < 0.01
    favourite = np.bincount(mixes.argmax(axis=1), minlength=len(CHANNELS)) / mixes.shape[0]
    assert favourite.min() > 0.03 and favourite.max() < 0.7, favourite
    assert (person_mixes(7, 50_000) == mixes).all() and not (person_mixes(8, 50_000) == mixes).all()
