"""Churn risk bands relative to the scored population, so each band holds a steady share of buyers.

A calibrated churn probability sits on a base rate that is often 60-80% in retail, so fixed
cut-offs (0.3 / 0.6) put most buyers in `high` and tell a marketer little. The band is instead the
buyer's place in the day's ranking of churn probability among the scored buyers (highest first,
ties broken by contact_id, as RFM does):
    high    the top RISK_SHARES["high"] (25%) of scored buyers
    medium  the next RISK_SHARES["medium"] (35%)
    low     the remaining 40%
`risk_percentile` is that rank as a percentage (1 = most at risk); `churn_lift` is the probability
over the day's mean (the base rate among the scored), which says how much riskier than average a
band really is. Shares are fixed by construction, so they do not move from day to day; the people
in them do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_pipeline.predict.rfm import tie_order

RISK_SHARES = {"high": 0.25, "medium": 0.35, "low": 0.40}


def risk_bands(probability: pd.Series, contact_id: pd.Series) -> pd.DataFrame:
    """risk_band, risk_percentile and churn_lift per row (all empty where the probability is)."""
    p = probability.to_numpy(dtype=float)
    scored = np.isfinite(p)
    n = int(scored.sum())
    band = np.full(len(p), None, dtype=object)
    percentile = np.full(len(p), np.nan)
    lift = np.full(len(p), np.nan)
    if n:
        idx = np.flatnonzero(scored)
        order = idx[np.lexsort((tie_order(contact_id)[idx], -p[idx]))]
        rank = np.empty(n)
        rank[np.searchsorted(idx, order)] = np.arange(1, n + 1)
        share = rank / n
        high, medium = RISK_SHARES["high"], RISK_SHARES["high"] + RISK_SHARES["medium"]
        band[idx] = np.where(share <= high, "high", np.where(share <= medium, "medium", "low"))
        percentile[idx] = np.ceil(share * 100)
        base = p[idx].mean()
        lift[idx] = p[idx] / base if base > 0 else np.nan
    return pd.DataFrame({"risk_band": band, "risk_percentile": percentile, "churn_lift": lift},
                        index=probability.index)
