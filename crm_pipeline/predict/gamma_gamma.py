"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"): a customer's expected value per purchase.

Fit on repeat customers only (x >= 1) with their mean purchase value m > 0; the spend
of one purchase is Gamma(p, nu) with nu ~ Gamma(q, v) across customers. Assumes spend is
independent of purchase frequency. CLV combines it with BG/NBD expected purchases,
discounted month by month.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import digamma, gammaln

from crm_pipeline.predict import bgnbd
from crm_pipeline.predict.fitting import FitResult, minimize_log_params

PARAMS = ("p", "q", "v")
WEEKS_PER_MONTH = 365.25 / 12 / 7


class RepeatCustomers:
    """Repeat customers' x and m with what the likelihood reads of them that no parameter moves (log m, log x,
    x m) and x's distinct values (small counts): gammaln and digamma run once per distinct x, picked per row."""

    def __init__(self, x, m):
        self.x, self.m = x, m
        self.log_m, self.log_x, self.xm = np.log(m), np.log(x), x * m
        self.xs, self.ix = np.unique(x, return_inverse=True)


def log_likelihood_terms(params, customers: RepeatCustomers):
    """Per-customer log-likelihood and its gradient w.r.t. (p, q, v), each term computed as per customer, operation
    for operation, with its parts that depend on x alone computed per distinct x."""
    p, q, v = params
    c = customers
    x, xs, ix = c.x, c.xs, c.ix
    px, pxs = p * x, p * xs
    log_xmv = np.log(c.xm + v)
    ll = ((gammaln(pxs + q) - gammaln(pxs) - gammaln(q) + q * np.log(v))[ix] + (px - 1) * c.log_m
          + px * c.log_x - (px + q) * log_xmv)
    g_p = x * ((digamma(pxs + q) - digamma(pxs))[ix] + c.log_m + c.log_x - log_xmv)
    g_q = (digamma(pxs + q) - digamma(q) + np.log(v))[ix] - log_xmv
    g_v = q / v - (px + q) / (c.xm + v)
    return ll, np.stack([g_p, g_q, g_v])


def fit(frequency, monetary, *, maxiter: int = 500, start: dict | None = None) -> FitResult:
    """Maximum-likelihood p, q, v on customers with frequency >= 1 and monetary > 0 (others are ignored)."""
    started = time.perf_counter()
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary, dtype=float)
    keep = (x >= 1) & np.isfinite(m) & (m > 0)
    x, m = x[keep], m[keep]
    order = np.lexsort((m, x))     # sums in value order: the same customers give the same fit in any row order
    x, m = x[order], m[order]
    n = len(x)
    if n < 10:
        return FitResult({}, float("nan"), False, f"only {n} repeat customers with spend; need >= 10", n=n)
    customers = RepeatCustomers(x, m)

    def neg(params):
        ll, grad = log_likelihood_terms(params, customers)
        return -ll.sum() / n, -grad.sum(axis=1) / n

    if start is None:   # moments: E[m] ~ p v / (q - 1); start with q = 2 and a typical shape p = 2
        start = {"p": 2.0, "q": 2.0, "v": float(np.mean(m)) / 2.0}
    params, value, converged, message, nit = minimize_log_params(
        neg, np.array([start[k] for k in PARAMS]), PARAMS, maxiter=maxiter)
    if converged and params["q"] <= 1:
        converged, message = False, f"q = {params['q']:.3f} <= 1: the mean spend is undefined"
    return FitResult(params, -value * n, converged, message, n=n, iterations=nit,
                     seconds=time.perf_counter() - started)


def conditional_expected_value(params: dict, frequency, monetary) -> np.ndarray:
    """E[spend per purchase | x, m]: a weighted mean of the population mean and the customer's own mean."""
    p, q, v = (params[k] for k in PARAMS)
    x = np.asarray(frequency, dtype=float)
    m = np.nan_to_num(np.asarray(monetary, dtype=float), nan=0.0)
    m = np.where(x > 0, m, 0.0)
    return p * (v + x * m) / (p * x + q - 1)


def clv(bgnbd_params: dict, gg_params: dict, frequency, recency, T, monetary, *, months: int = 12,
        monthly_discount: float = 0.01, weeks_per_month: float = WEEKS_PER_MONTH) -> np.ndarray:
    """Discounted value of the next `months` months: sum_k E[purchases in month k] * E[spend] / (1 + d)^k.

    Times are in weeks (the unit BG/NBD was fitted in).
    """
    spend = conditional_expected_value(gg_params, frequency, monetary)
    total = np.zeros_like(spend, dtype=float)
    previous = np.zeros_like(total)
    for k in range(1, months + 1):     # a loop over months, not rows
        cumulative = bgnbd.expected_purchases(bgnbd_params, frequency, recency, T, k * weeks_per_month)
        total += (cumulative - previous) * spend / (1.0 + monthly_discount) ** k
        previous = cumulative
    return total
