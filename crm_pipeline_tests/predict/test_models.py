"""BG/NBD and Gamma-Gamma reproduce the published CDNOW fits, quickly, report non-convergence, and give every customer
the textbook terms."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma, gammaln

from crm_pipeline.predict import bgnbd, gamma_gamma

CDNOW = Path(__file__).parent / "fixtures" / "CDNOW_sample.txt"
CALIBRATION_END = pd.Timestamp("1997-09-30")


@pytest.fixture(scope="module")
def cdnow():
    tx = pd.read_csv(CDNOW, sep=r"\s+", header=None, names=["master_id", "id", "date", "quantity", "amount"],
                     dtype={"date": str})
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    days = tx[tx["date"] <= CALIBRATION_END].groupby(["id", "date"], as_index=False)["amount"].sum()
    days["nth"] = days.groupby("id").cumcount()
    by = days.groupby("id")
    first, last = by["date"].min(), by["date"].max()
    summary = pd.DataFrame({"x": by.size() - 1, "t_x": (last - first).dt.days / 7,
                            "T": (CALIBRATION_END - first).dt.days / 7})
    summary["m"] = days[days["nth"] > 0].groupby("id")["amount"].mean()
    return summary


def close(actual: float, expected: float, rel: float = 0.01) -> bool:
    return abs(actual - expected) <= rel * abs(expected)


def test_bgnbd_reproduces_the_published_cdnow_fit_in_under_two_seconds(cdnow):
    assert len(cdnow) == 2357
    started = time.perf_counter()
    fit = bgnbd.fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert time.perf_counter() - started < 2.0
    assert fit.converged, fit.message
    for name, expected in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert close(fit.params[name], expected), (name, fit.params)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.5)


def test_gamma_gamma_reproduces_the_published_cdnow_fit(cdnow):
    repeat = cdnow[cdnow["x"] > 0]
    assert len(repeat) == 946
    started = time.perf_counter()
    fit = gamma_gamma.fit(repeat["x"], repeat["m"])
    assert time.perf_counter() - started < 2.0
    assert fit.converged, fit.message
    for name, expected in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert close(fit.params[name], expected), (name, fit.params)


def test_predictions_behave(cdnow):
    params = bgnbd.fit(cdnow["x"], cdnow["t_x"], cdnow["T"]).params
    alive = bgnbd.p_alive(params, cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert np.all((alive > 0) & (alive <= 1)) and np.all(alive[cdnow["x"].to_numpy() == 0] == 1)
    # Same frequency, older last purchase -> less likely alive and fewer expected purchases.
    recent, stale = (bgnbd.expected_purchases(params, [3], [t_x], [38.0], 52) for t_x in (37.0, 5.0))
    assert recent[0] > stale[0] > 0
    growth = bgnbd.expected_purchases_new(params, np.array([13.0, 39.0, 78.0]))
    assert np.all(np.diff(growth) > 0) and growth[0] > 0
    no_buy = bgnbd.p_no_purchase(params, cdnow["x"], cdnow["t_x"], cdnow["T"], 13.0)
    assert np.all((no_buy >= 1 - alive - 1e-12) & (no_buy <= 1))
    gg = gamma_gamma.fit(cdnow["x"], cdnow["m"]).params
    clv = gamma_gamma.clv(params, gg, cdnow["x"], cdnow["t_x"], cdnow["T"], cdnow["m"], months=12)
    assert np.all(np.isfinite(clv)) and np.all(clv >= 0)
    assert np.all(clv <= gamma_gamma.clv(params, gg, cdnow["x"], cdnow["t_x"], cdnow["T"], cdnow["m"],
                                         months=12, monthly_discount=0.0) + 1e-9)


def test_a_fit_cut_short_or_on_degenerate_data_is_not_converged(cdnow):
    short = bgnbd.fit(cdnow["x"], cdnow["t_x"], cdnow["T"], maxiter=1)
    assert not short.converged
    nobody_returns = bgnbd.fit(np.zeros(50), np.zeros(50), np.full(50, 20.0))
    assert not nobody_returns.converged and "no repeat" in nobody_returns.message
    too_few = gamma_gamma.fit([1, 2], [10.0, 12.0])
    assert not too_few.converged
    assert not bgnbd.fit([1], [2.0], [1.0]).converged      # recency beyond T is rejected


def test_terms_computed_per_distinct_value_equal_the_per_customer_formulas(cdnow):
    """The likelihoods run their special functions once per distinct x, t_x or T and pick them per customer: every
    customer must still get the textbook value (CDNOW's weeks tie often)."""
    x, t_x, T, m = (cdnow[c].to_numpy(dtype=float) for c in ("x", "t_x", "T", "m"))
    assert len(np.unique(T)) < len(T) / 5            # the ties the shortcut relies on are there
    r, alpha, a, b = 0.25, 4.4, 0.8, 2.4
    has = x > 0
    bx1 = np.where(has, b + x - 1, 1.0)
    A3 = -(r + x) * np.log(alpha + T)
    A4 = np.where(has, np.log(a) - np.log(bx1) - (r + x) * np.log(alpha + t_x), -np.inf)
    expected_ll = (gammaln(r + x) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) + gammaln(b + x) - gammaln(b)
                   - gammaln(a + b + x) + np.logaddexp(A3, A4))
    ll, grad = bgnbd.log_likelihood_terms([r, alpha, a, b], bgnbd.Customers(x, t_x, T))
    np.testing.assert_allclose(ll, expected_ll, rtol=1e-12)
    w4 = np.exp(A4 - np.logaddexp(A3, A4))
    np.testing.assert_allclose(grad[2], digamma(a + b) - digamma(a + b + x) + w4 / a, rtol=1e-12, atol=1e-15)

    repeat = has & (m > 0)
    xr, mr, (p, q, v) = x[repeat], m[repeat], (6.2, 3.7, 15.4)
    expected_gg = (gammaln(p * xr + q) - gammaln(p * xr) - gammaln(q) + q * np.log(v) + (p * xr - 1) * np.log(mr)
                   + p * xr * np.log(xr) - (p * xr + q) * np.log(xr * mr + v))
    gg_ll, _ = gamma_gamma.log_likelihood_terms([p, q, v], gamma_gamma.RepeatCustomers(xr, mr))
    np.testing.assert_allclose(gg_ll, expected_gg, rtol=1e-13)
