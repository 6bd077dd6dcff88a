"""RFM scores and segments for contacts with at least one purchase.

Scores 1-5 are quintiles of the ranking: recency ranks descending (the most recent buyers
score 5), frequency (purchase days) and monetary (mean purchase value) ascending. Ties are
broken deterministically: rows are sorted by value then contact_id and ranked in that order
(rank method 'first'), so a group of equal values can straddle a quintile border, split by
contact_id. Score = ceil(5 * rank / n).

Segments use the common R x FM grid, FM = round-half-up((F + M) / 2):

    R \\ FM   1               2               3               4           5
    5        New             Potential loyal Potential loyal Champions   Champions
    4        Promising       Potential loyal Potential loyal Loyal       Loyal
    3        About to sleep  About to sleep  Needs attention Loyal       Loyal
    2        Hibernating     Hibernating     At risk         At risk     Can't lose
    1        Lost            Lost            At risk         At risk     Can't lose

("Potential loyal" is "Potential loyalist".)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENTS = ("Champions", "Loyal", "Potential loyalist", "New", "Promising", "Needs attention", "About to sleep",
            "At risk", "Can't lose", "Hibernating", "Lost")

_GRID = np.array([   # rows R = 1..5, columns FM = 1..5
    ["Lost", "Lost", "At risk", "At risk", "Can't lose"],
    ["Hibernating", "Hibernating", "At risk", "At risk", "Can't lose"],
    ["About to sleep", "About to sleep", "Needs attention", "Loyal", "Loyal"],
    ["Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Loyal"],
    ["New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"],
], dtype=object)


def tie_order(contact_ids) -> np.ndarray:
    """Each row's place in contact_id order, the tie-break of every ranking: the row number when the rows come in
    that order already (as the stage passes them: no string sort at all), else from one sort of the ids."""
    ids = pd.Series(np.asarray(contact_ids, dtype=object)).astype(str)
    if ids.is_monotonic_increasing:
        return np.arange(len(ids))
    place = np.empty(len(ids), dtype=np.int64)
    place[np.argsort(ids.to_numpy(), kind="stable")] = np.arange(len(ids))
    return place


def quintile_scores(values: pd.Series, contact_ids: pd.Series, *, descending: bool = False,
                    ties: np.ndarray | None = None) -> np.ndarray:
    """1-5 by rank: sort by value (descending if asked; missing values last) then contact_id (`ties`: its
    `tie_order`, when the caller has it), rank 1..n, score = ceil(5 rank / n)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=int)
    v = np.asarray(values, dtype=float)
    order = np.lexsort((tie_order(contact_ids) if ties is None else ties, -v if descending else v))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    return np.ceil(5 * rank / n).astype(int)


def segment(r: np.ndarray, f: np.ndarray, m: np.ndarray) -> np.ndarray:
    fm = (np.asarray(f) + np.asarray(m) + 1) // 2
    return _GRID[np.asarray(r) - 1, fm - 1]


def score(frame: pd.DataFrame) -> pd.DataFrame:
    """contact_id, rfm_r, rfm_f, rfm_m, rfm_segment for rows with recency_days, purchase_count, monetary."""
    buyers = frame[frame["purchase_count"] > 0]
    ids = buyers["contact_id"]
    ties = tie_order(ids)
    r = quintile_scores(buyers["recency_days"], ids, descending=True, ties=ties)
    f = quintile_scores(buyers["purchase_count"], ids, ties=ties)
    m = quintile_scores(buyers["monetary"].fillna(0), ids, ties=ties)
    return pd.DataFrame({"contact_id": ids.to_numpy(), "rfm_r": r, "rfm_f": f, "rfm_m": m,
                         "rfm_segment": segment(r, f, m) if len(ids) else np.array([], dtype=object)})
