"""The trained Splink model as a reader sees it: m and u per comparison level, and a match-weights chart."""

from __future__ import annotations

import math

import pandas as pd

from crm_pipeline.markdown import figure_png


def parameters(model: dict) -> pd.DataFrame:
    """One row per comparison level: m (share among matches), u (among non-matches) and the weight in bits."""
    rows = []
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            rows.append({"comparison": comparison["output_column_name"],
                         "level": level.get("label_for_charts") or level["sql_condition"],
                         "m": round(m, 6) if m is not None else None, "u": round(u, 6) if u is not None else None,
                         "weight": round(math.log2(m / u), 2) if m and u else None,
                         "tf_adjusted": bool(level.get("tf_adjustment_column"))})
    return pd.DataFrame(rows)


def prior_weight(model: dict) -> float:
    p = model["probability_two_random_records_match"]
    return round(math.log2(p / (1 - p)), 2)


def match_weights_png(model: dict) -> bytes:
    """Splink's match-weights chart (prior and every level's weight, grouped by comparison), drawn with
    matplotlib so it renders in the Dagster UI without a Vega renderer."""
    import matplotlib.pyplot as plt

    table = parameters(model).dropna(subset=["weight"])
    labels = ["prior (two random records match)"] + [f"{c}: {lvl}"[:70] for c, lvl in
                                                      zip(table["comparison"], table["level"])]
    weights = [prior_weight(model)] + list(table["weight"])
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(labels) + 1))
    colours = ["#888"] + ["#2a7" if w >= 0 else "#c44" for w in weights[1:]]
    ax.barh(range(len(labels)), weights, color=colours)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel("match weight (bits): log2(m / u)")
    ax.set_title("Match weights of the trained model")
    fig.tight_layout()
    return figure_png(fig)
