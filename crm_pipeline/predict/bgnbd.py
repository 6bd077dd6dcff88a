"""BG/NBD (Fader, Hardie & Lee 2005): how many purchases a customer will make, and whether they are still alive.

Inputs per customer: `frequency` x (repeat purchases, same-day purchases merged), `recency`
t_x (time from first to last purchase) and `T` (time from first purchase to the end of the
observation), all in one time unit (weeks here). The log-likelihood is computed in log space
(gammaln / logsumexp), its gradient analytically, and it is maximized with L-BFGS-B over
log-parameters. A fit that stops early or runs into a bound returns `converged=False`; the
caller then keeps the previous good parameters rather than using these.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import digamma, gammaln, hyp2f1

from crm_pipeline.predict.fitting import FitResult, minimize_log_params

PARAMS = ("r", "alpha", "a", "b")


def _arrays(frequency, recency, T):
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T = np.asarray(T, dtype=float)
    if x.shape != t_x.shape or x.shape != T.shape:
        raise ValueError("frequency, recency and T must have the same length")
    return x, t_x, T


def _compress(x, t_x, T):
    """Identical (x, t_x, T) rows share one likelihood term, weighted by their count."""
    order = np.lexsort((T, t_x, x))            # a flat sort: np.unique(axis=0) is several times slower
    x, t_x, T = x[order], t_x[order], T[order]
    new = np.ones(len(x), dtype=bool)
    new[1:] = (x[1:] != x[:-1]) | (t_x[1:] != t_x[:-1]) | (T[1:] != T[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(x)))
    return x[starts], t_x[starts], T[starts], counts.astype(float)


class Customers:
    """Customers' (x, t_x, T) with each column's distinct values: gammaln, digamma and log run once per distinct
    x, t_x or T (a few hundred: whole days, small counts) and are picked per row, not per customer."""

    def __init__(self, x, t_x, T):
        self.x, self.t_x, self.T = x, t_x, T
        self.has = x > 0
        self.xs, self.ix = np.unique(x, return_inverse=True)
        self.ts, self.it = np.unique(t_x, return_inverse=True)
        self.Ts, self.iT = np.unique(T, return_inverse=True)


def log_likelihood_terms(params, customers: Customers):
    """Per-customer log-likelihood and its gradient w.r.t. (r, alpha, a, b).

    Each term is computed as per customer, operation for operation, only on the distinct values of what it
    reads and then picked per row: the same numbers at a fraction of the special-function calls."""
    r, alpha, a, b = params
    c = customers
    x, xs, ix, has = c.x, c.xs, c.ix, c.has
    A1 = (gammaln(r + xs) - gammaln(r) + r * np.log(alpha))[ix]
    A2 = (gammaln(a + b) + gammaln(b + xs) - gammaln(b) - gammaln(a + b + xs))[ix]
    log_T, log_tx = np.log(alpha + c.Ts)[c.iT], np.log(alpha + c.ts)[c.it]
    A3 = -(r + x) * log_T
    bx1 = np.where(xs > 0, b + xs - 1, 1.0)
    A4 = np.where(has, (np.log(a) - np.log(bx1))[ix] - (r + x) * log_tx, -np.inf)
    top = np.maximum(A3, A4)
    L = top + np.log(np.exp(A3 - top) + np.exp(A4 - top))        # logsumexp of the two terms
    w3, w4 = np.exp(A3 - L), np.exp(A4 - L)
    g_r = (digamma(r + xs) - digamma(r) + np.log(alpha))[ix] - w3 * log_T - w4 * log_tx
    g_alpha = r / alpha - w3 * (r + x) / (alpha + c.T) - w4 * (r + x) / (alpha + c.t_x)
    g_a = (digamma(a + b) - digamma(a + b + xs))[ix] + w4 / a
    g_b = (digamma(a + b) + digamma(b + xs) - digamma(b) - digamma(a + b + xs))[ix] - w4 / bx1[ix]
    return A1 + A2 + L, np.stack([g_r, g_alpha, g_a, g_b])


def log_likelihood(params: dict, frequency, recency, T) -> float:
    x, t_x, T = _arrays(frequency, recency, T)
    ll, _ = log_likelihood_terms([params[p] for p in PARAMS], Customers(x, t_x, T))
    return float(ll.sum())


def fit(frequency, recency, T, *, maxiter: int = 500, start: dict | None = None) -> FitResult:
    """Maximum-likelihood BG/NBD parameters r, alpha, a, b."""
    started = time.perf_counter()
    x, t_x, T = _arrays(frequency, recency, T)
    n = len(x)
    if n < 2 or np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9) or not np.all(np.isfinite(T)):
        return FitResult({}, float("nan"), False, "need >= 2 customers with 0 <= recency <= T", n=n)
    if np.all(x == 0):
        return FitResult({}, float("nan"), False, "no repeat purchases: BG/NBD is not identified", n=n)
    ux, ut, uT, w = _compress(x, t_x, T)
    customers = Customers(ux, ut, uT)

    def neg(params):
        ll, grad = log_likelihood_terms(params, customers)
        return -(w @ ll) / n, -(grad @ w) / n

    if start is None:   # E[lambda] = r / alpha ~ purchases per unit time; a = b = 1 is a flat dropout prior
        rate = max(x.mean(), 0.1) / max(T.mean(), 1e-3)
        start = {"r": 1.0, "alpha": 1.0 / rate, "a": 1.0, "b": 1.0}
    params, value, converged, message, nit = minimize_log_params(
        neg, np.array([start[p] for p in PARAMS]), PARAMS, maxiter=maxiter)
    return FitResult(params, -value * n, converged, message, n=n, iterations=nit,
                     seconds=time.perf_counter() - started)


def p_alive(params: dict, frequency, recency, T) -> np.ndarray:
    """P(the customer has not dropped out at T | x, t_x, T)."""
    r, alpha, a, b = (params[p] for p in PARAMS)
    x, t_x, T = _arrays(frequency, recency, T)
    has = x > 0
    log_ratio = np.log(a) - np.log(np.where(has, b + x - 1, 1.0)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(has, 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700))), 1.0)


def p_no_purchase(params: dict, frequency, recency, T, t) -> np.ndarray:
    """P(no purchase in (T, T + t] | x, t_x, T): dead, or alive with no Poisson event (dropout needs a purchase)."""
    r, alpha = params["r"], params["alpha"]
    x, t_x, T = _arrays(frequency, recency, T)
    alive = p_alive(params, x, t_x, T)
    return (1.0 - alive) + alive * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))


def median_wait_if_alive(params: dict, frequency, T) -> np.ndarray:
    """The median time to the next purchase for a customer still alive: ((alpha+T)) (2^(1/(r+x)) - 1)."""
    x = np.asarray(frequency, dtype=float)
    return (params["alpha"] + np.asarray(T, dtype=float)) * np.expm1(np.log(2.0) / (params["r"] + x))


def expected_purchases(params: dict, frequency, recency, T, t) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10)."""
    r, alpha, a, b = (params[p] for p in PARAMS)
    x, t_x, T = _arrays(frequency, recency, T)
    t = np.asarray(t, dtype=float)
    z = t / (alpha + T + t)
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
    first = (a + b + x - 1) / (a - 1) * (1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp)
    out = first * p_alive(params, x, t_x, T)
    return np.where(np.isfinite(out), np.maximum(out, 0.0), np.nan)


def expected_purchases_new(params: dict, t) -> np.ndarray:
    """E[X(t)] for a customer just acquired (unconditional), used by tests and sanity checks."""
    r, alpha, a, b = (params[p] for p in PARAMS)
    t = np.asarray(t, dtype=float)
    hyp = hyp2f1(r, b, a + b - 1, t / (alpha + t))
    return (a + b - 1) / (a - 1) * (1.0 - (alpha / (alpha + t)) ** r * hyp)
