"""The outcome of a maximum-likelihood fit, shared by BG/NBD and Gamma-Gamma."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FitResult:
    params: dict[str, float]
    log_likelihood: float
    converged: bool
    message: str
    n: int = 0
    iterations: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def minimize_log_params(neg_ll_and_grad, start: np.ndarray, names: tuple[str, ...], *, maxiter: int,
                        log_bounds: tuple[float, float] = (-12.0, 12.0)) -> tuple[dict, float, bool, str, int]:
    """L-BFGS-B on log-parameters (positive params, well scaled); a bound hit counts as not converged.

    `neg_ll_and_grad(params)` returns (-LL / n, -dLL/dparams / n) at the natural parameters.
    """
    from scipy.optimize import minimize  # 0.2 s of CPU to import: only runs that fit pay it, not those that score

    def objective(theta):
        params = np.exp(theta)
        value, grad = neg_ll_and_grad(params)
        return value, grad * params          # chain rule: d/dlog p = p d/dp

    res = minimize(objective, np.log(start), jac=True, method="L-BFGS-B",
                   bounds=[log_bounds] * len(start), options={"maxiter": maxiter, "gtol": 1e-8, "ftol": 1e-13})
    params = dict(zip(names, (float(v) for v in np.exp(res.x))))
    at_bound = [n for n, t in zip(names, res.x) if min(abs(t - log_bounds[0]), abs(t - log_bounds[1])) < 1e-6]
    finite = bool(np.isfinite(res.fun))
    converged = bool(res.success) and finite and not at_bound
    message = str(res.message)
    if at_bound:
        message = f"parameter(s) {', '.join(at_bound)} at the search bound; {message}"
    if not finite:
        message = f"non-finite log-likelihood; {message}"
    return params, float(res.fun), converged, message, int(res.nit)
