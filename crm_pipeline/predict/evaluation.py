"""Scores against outcomes: ROC AUC, log loss, Brier, top-decile lift and capture; the charts as SVG text."""

from __future__ import annotations

import numpy as np


def top_decile(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(lift, capture) of the highest-scoring 10%: its positive rate / the overall rate, its share of positives."""
    y = np.asarray(y, dtype=float)
    n_top = max(int(np.ceil(len(y) * 0.1)), 1)
    order = np.lexsort((np.arange(len(y)), -np.asarray(score, dtype=float)))   # ties: first rows first
    hits = y[order[:n_top]].sum()
    base = y.mean()
    lift = float((hits / n_top) / base) if base > 0 else float("nan")
    capture = float(hits / y.sum()) if y.sum() > 0 else float("nan")
    return lift, capture


def score_metrics(y, score, *, is_probability: bool) -> dict:
    """The figures of one scorer; a scorer with no rows to score (e.g. BG/NBD without a fit) gets n = 0 and NaNs."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score  # seconds to import: only runs that train

    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    out = {"n": int(len(y)), "positive_rate": float(y.mean()) if len(y) else float("nan")}
    if not len(y):     # scikit-learn's metrics refuse empty input; "cannot score" is a result, not an error
        nan = float("nan")
        out.update(roc_auc=nan, top_decile_lift=nan, top_decile_capture=nan)
        if is_probability:
            out.update(log_loss=nan, brier=nan, mean_probability=nan)
        return out
    out["roc_auc"] = float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")
    if is_probability:
        p = np.clip(score, 1e-6, 1 - 1e-6)
        out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
        out["brier"] = float(brier_score_loss(y, p))
        out["mean_probability"] = float(p.mean()) if len(p) else float("nan")   # vs positive_rate: calibration
    out["top_decile_lift"], out["top_decile_capture"] = top_decile(y, score)
    return out


def calibration_curve(y, p, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(observed rate, mean predicted probability) per quantile bin of `p`, empty bins left out: scikit-learn's
    `calibration_curve(strategy="quantile")` in NumPy, without importing its calibration module."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    edges = np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)
    bins = np.searchsorted(edges[1:-1], p)
    total = np.bincount(bins, minlength=len(edges))
    full = total != 0
    observed = np.bincount(bins, weights=y, minlength=len(edges))[full] / total[full]
    return observed, np.bincount(bins, weights=p, minlength=len(edges))[full] / total[full]


def gains(y, score, points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains at `points` evenly spaced shares of customers contacted (highest scores first, ties: first
    rows first): (share contacted, share of positives captured)."""
    y = np.asarray(y, dtype=float)
    order = np.lexsort((np.arange(len(y)), -np.asarray(score, dtype=float)))
    captured = np.concatenate([[0.0], np.cumsum(y[order]) / max(y.sum(), 1)])
    share = np.linspace(0, 1, points)
    return share, captured[np.round(share * len(y)).astype(int)]


_W, _LEFT, _TOP, _SIDE = 360, 52, 30, 250     # the plot is a _SIDE x _SIDE square from (_LEFT, _TOP)
_LEGEND = _TOP + _SIDE + 52                    # below the axis labels: one row per line


def _unit_chart(lines: dict[str, tuple[np.ndarray, np.ndarray]], title: str, xlabel: str, ylabel: str, *,
                dashed: str, marked: bool = False) -> bytes:
    """Lines on the unit square as SVG text (no matplotlib: importing and drawing it cost a training run about
    1.5 CPU s for four charts), with the diagonal `dashed` as the reference line and a legend below."""
    from html import escape

    from crm_pipeline.svg_chart import COLOURS, FONT

    def xy(x, y):
        return _LEFT + float(x) * _SIDE, _TOP + (1 - float(y)) * _SIDE

    height = _LEGEND + 18 * (len(lines) + 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" viewBox="0 0 {_W} {height}" '
           f'{FONT} font-size="11">', f'<rect width="{_W}" height="{height}" fill="#ffffff"/>',
           f'<text x="{_LEFT + _SIDE / 2:.0f}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for tick in np.linspace(0, 1, 6):
        x, y = xy(tick, tick)
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + _SIDE}" y2="{y:.1f}" stroke="#eeeeee"/>'
                   f'<text x="{_LEFT - 5}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:.1f}</text>'
                   f'<text x="{x:.1f}" y="{_TOP + _SIDE + 14}" text-anchor="middle" font-size="10">{tick:.1f}</text>')
    out.append(f'<text x="{_LEFT + _SIDE / 2:.0f}" y="{_TOP + _SIDE + 32}" text-anchor="middle">{escape(xlabel)}</text>'
               f'<text x="14" y="{_TOP + _SIDE / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {_TOP + _SIDE / 2:.0f})">{escape(ylabel)}</text>')
    legend = [(dashed, "#808080", ' stroke-dasharray="5,4"')]
    (x0, y0), (x1, y1) = xy(0, 0), xy(1, 1)
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#808080"{legend[0][2]}/>')
    for n, (name, (xs, ys)) in enumerate(lines.items()):    # a few lines of at most 101 points
        colour = COLOURS[n % len(COLOURS)]
        points = [xy(x, y) for x, y in zip(xs, ys) if np.isfinite(x) and np.isfinite(y)]
        out.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}" fill="none" '
                   f'stroke="{colour}" stroke-width="1.5"/>')
        if marked:
            out.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points)
        legend.append((name, colour, ""))
    for n, (name, colour, dash) in enumerate(legend):
        y = _LEGEND + 18 * n
        out.append(f'<line x1="{_LEFT}" y1="{y}" x2="{_LEFT + 20}" y2="{y}" stroke="{colour}" stroke-width="2"{dash}/>'
                   f'<text x="{_LEFT + 26}" y="{y + 4}">{escape(name)}</text>')
    out.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{_SIDE}" height="{_SIDE}" fill="none" stroke="#333333"/></svg>')
    return "\n".join(out).encode()


def calibration_svg(y, p, title: str) -> bytes:
    """Observed rate against predicted probability per tenth of the predictions (quantile bins)."""
    observed, predicted = calibration_curve(y, p)
    return _unit_chart({"model": (predicted, observed)}, title, "predicted probability", "observed rate",
                       dashed="perfect", marked=True)


def gains_svg(y, scores: dict[str, np.ndarray], title: str) -> bytes:
    """Cumulative gains: share of positives captured by the top x% of each score."""
    return _unit_chart({name: gains(y, score) for name, score in scores.items()}, title,
                       "share of customers contacted", "share of positives captured", dashed="random")
