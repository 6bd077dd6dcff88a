"""RFM quintiles with deterministic ties, and the segment grid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_pipeline.predict import rfm


def test_quintiles_break_ties_by_contact_id():
    ids = pd.Series([f"C{i:02d}" for i in range(10)])
    values = pd.Series([5, 5, 5, 5, 1, 1, 9, 9, 9, 2])
    # Ascending order: C04 C05 (1), C09 (2), C00 C01 C02 C03 (5), C06 C07 C08 (9) -> ranks 1..10, score ceil(rank/2).
    scores = dict(zip(ids, rfm.quintile_scores(values, ids)))
    assert scores == {"C04": 1, "C05": 1, "C09": 2, "C00": 2, "C01": 3, "C02": 3, "C03": 4, "C06": 4,
                      "C07": 5, "C08": 5}
    # Same input shuffled: same scores.
    order = np.random.default_rng(0).permutation(10)
    assert dict(zip(ids[order], rfm.quintile_scores(values[order], ids[order]))) == scores


def test_recency_scores_most_recent_highest_and_segments_follow_the_grid():
    frame = pd.DataFrame({
        "contact_id": ["a", "b", "c", "d", "e"],
        "purchase_count": [9, 1, 5, 1, 7],
        "recency_days": [3, 5, 200, 400, 300],
        "monetary": [500.0, 20.0, 80.0, 10.0, 900.0],
    })
    out = rfm.score(frame).set_index("contact_id")
    assert out["rfm_r"].to_dict() == {"a": 5, "b": 4, "c": 3, "d": 1, "e": 2}
    assert out["rfm_f"].to_dict() == {"a": 5, "b": 1, "c": 3, "d": 2, "e": 4}    # tie of 1s: b ranks before d
    assert out["rfm_m"].to_dict() == {"a": 4, "b": 2, "c": 3, "d": 1, "e": 5}
    assert out["rfm_segment"].to_dict() == {"a": "Champions", "b": "Potential loyalist", "c": "Needs attention",
                                            "d": "Lost", "e": "Can't lose"}


def test_every_grid_cell_is_one_of_the_eleven_segments():
    r, f, m = np.meshgrid(np.arange(1, 6), np.arange(1, 6), np.arange(1, 6))
    names = set(rfm.segment(r.ravel(), f.ravel(), m.ravel()))
    assert names == set(rfm.SEGMENTS)


def test_buyers_only():
    frame = pd.DataFrame({"contact_id": ["a", "b"], "purchase_count": [0, 2], "recency_days": [np.nan, 4],
                          "monetary": [np.nan, 10.0]})
    assert list(rfm.score(frame)["contact_id"]) == ["b"]
