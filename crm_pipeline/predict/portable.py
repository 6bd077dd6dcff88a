"""The stored classifier scorers as plain NumPy arrays: a day between training days scores without scikit-learn.

Importing scikit-learn (and the SciPy statistics it loads) cost a scoring run 1 to 6 s, more than scoring 100k
buyers. So a trained `classifier.Scorer` is stored as arrays (no pickle): each boosting tree's nodes, the
calibration (Platt's logistic map or the isotonic steps) or a baseline's logistic map, and `PortableScorer`
computes what scikit-learn's `predict_proba` computes, in the same floating-point operations and order, so the
probabilities are the same to the bit (`crm_pipeline_tests/predict/test_classifier.py` compares them). The run
that trains scores through this form too, so a day's predictions never depend on whether its models were
trained in the same run.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
from scipy.special import expit

from crm_pipeline.predict.classifier import BASELINE_COLUMNS, Scorer, _logit

FORMAT = 1
_NODE_FIELDS = ("feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf", "value")


def dumps(scorer: Scorer) -> bytes:
    """The arrays of a fitted scorer, as `.npz` bytes (a boosted classifier's trees must be numeric-only)."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "used": scorer.used, "features": list(scorer.features), "fill": scorer.fill}
    if scorer.model is not None:
        booster, calibrator = scorer.model.booster, scorer.model.calibrator
        trees = [p for iteration in booster._predictors for p in iteration]
        if booster.n_trees_per_iteration_ != 1 or any(t.nodes["is_categorical"].any() for t in trees):
            raise ValueError("only a binary booster on numeric features can be stored portably")
        nodes = np.concatenate([t.nodes for t in trees])
        offsets = np.cumsum([0] + [len(t.nodes) for t in trees])
        arrays.update({f"node_{f}": np.ascontiguousarray(nodes[f]) for f in _NODE_FIELDS})
        arrays.update(tree_offsets=offsets.astype(np.int64),
                      baseline=np.asarray(booster._baseline_prediction, dtype=np.float64).reshape(-1))
        if hasattr(calibrator, "X_thresholds_"):
            meta["calibration"] = "isotonic"
            arrays.update(iso_x=calibrator.X_thresholds_, iso_y=calibrator.y_thresholds_,
                          iso_bounds=np.array([calibrator.X_min_, calibrator.X_max_], dtype=np.float64))
        else:
            meta["calibration"] = "platt"
            arrays.update(coef=calibrator.coef_, intercept=calibrator.intercept_)
    else:
        arrays.update(coef=scorer.baseline_map.coef_, intercept=scorer.baseline_map.intercept_)
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    return buffer.getvalue()


def loads(data: bytes) -> PortableScorer:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        arrays = {k: stored[k] for k in stored.files}
    meta = json.loads(str(arrays.pop("meta")))
    if meta["format"] != FORMAT:
        raise ValueError(f"stored scorer format {meta['format']}, this code reads {FORMAT}")
    return PortableScorer(meta, arrays)


class PortableScorer:
    """What scores a task on later days (`classifier.Scorer`'s `probabilities`), from its stored arrays."""

    def __init__(self, meta: dict, arrays: dict[str, np.ndarray]):
        self.used, self.features, self.fill = meta["used"], meta["features"], meta["fill"]
        self.calibration = meta.get("calibration")
        self.arrays = arrays
        if self.calibration:
            self._trees = _tree_tests(arrays)

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """P(the task's event) per row of `frame` (features with `add_model_columns`)."""
        if self.calibration is None:   # a baseline's input through its logistic map
            column = BASELINE_COLUMNS[self.used]
            x = np.nan_to_num(frame[column].to_numpy(dtype=float), nan=self.fill)
            return self._logistic(np.log1p(np.maximum(x, 0)))
        raw = expit(self._raw(frame[self.features].to_numpy(dtype=float)))
        if self.calibration == "platt":
            return self._logistic(_logit(raw))
        from scipy.interpolate import interp1d   # as IsotonicRegression.predict (out_of_bounds="clip")

        x, y, (low, high) = self.arrays["iso_x"], self.arrays["iso_y"], self.arrays["iso_bounds"]
        clipped = np.clip(raw, low, high)
        if len(y) == 1:
            return y.repeat(clipped.shape).astype(clipped.dtype)
        return interp1d(x, y, kind="linear", bounds_error=False)(clipped).astype(clipped.dtype)

    def _logistic(self, x: np.ndarray) -> np.ndarray:
        """LogisticRegression.predict_proba's positive column for one feature: expit(x @ coef.T + intercept)."""
        return expit((x[:, None] @ self.arrays["coef"].T + self.arrays["intercept"]).reshape(-1))

    def _raw(self, X: np.ndarray) -> np.ndarray:
        """The booster's raw score: its baseline plus each tree's leaf value, added tree by tree as scikit-learn
        adds them. A tree's leaf is found without walking it (QuickScorer, Lucchese et al. 2015): every split
        is tested on whole columns, a row sent right loses the leaves left of the split from its bit mask of
        possible leaves, and its leaf is the lowest bit left (the leaves numbered left to right)."""
        columns = np.ascontiguousarray(X.T)
        missing = np.isnan(columns)
        raw = np.zeros(len(X), dtype=np.float64)
        raw += self.arrays["baseline"]
        for features, thresholds, missing_left, keep, values in self._trees:
            every = _ALL[keep.dtype.type]
            possible = np.full(len(X), every, dtype=keep.dtype)
            for f, threshold, nan_left, kept in zip(features, thresholds, missing_left, keep):
                left = columns[f] <= threshold
                if nan_left:
                    left |= missing[f]
                possible &= kept | (left.view(np.uint8) * every)   # all bits where it goes left (np.where: 6x slower)
            raw += values[_lowest_bit(possible)]
        return raw


# Leaf masks: 16 bits when every tree has at most 16 leaves (the classifier grows 15), else 64.
_ALL = {np.uint16: np.uint16(0xFFFF), np.uint64: np.uint64(0xFFFF_FFFF_FFFF_FFFF)}
_MASKS_16 = np.arange(1 << 16, dtype=np.int64)
_LOWEST_16 = np.log2(np.maximum(_MASKS_16 & -_MASKS_16, 1)).astype(np.intp)   # each mask's lowest set bit (0: 0)


def _lowest_bit(masks: np.ndarray) -> np.ndarray:
    if masks.dtype == np.uint16:
        return _LOWEST_16[masks]
    return np.log2((masks & (~masks + np.uint64(1))).astype(np.float64)).astype(np.intp)


def _tree_tests(arrays: dict[str, np.ndarray]) -> list[tuple]:
    """Per tree: its splits' features, thresholds, missing-goes-left flags and the mask of leaves still possible
    when a row goes right (the leaves of the left subtree cleared), and its leaf values left to right."""
    offsets = arrays["tree_offsets"]
    trees = []
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        feature, threshold = arrays["node_feature_idx"][lo:hi], arrays["node_num_threshold"][lo:hi]
        missing_left, is_leaf = arrays["node_missing_go_to_left"][lo:hi], arrays["node_is_leaf"][lo:hi]
        left, right, value = arrays["node_left"][lo:hi], arrays["node_right"][lo:hi], arrays["node_value"][lo:hi]
        leaves, first, last = [], {}, {}     # leaves in order; the first and last leaf under each node

        def visit(node: int) -> None:
            if is_leaf[node]:
                first[node] = last[node] = len(leaves)
                leaves.append(node)
                return
            visit(int(left[node]))
            visit(int(right[node]))
            first[node], last[node] = first[int(left[node])], last[int(right[node])]

        visit(0)
        if len(leaves) > 64:
            raise ValueError(f"a tree of {len(leaves)} leaves: at most 64 fit the leaf masks")
        splits = [n for n in range(hi - lo) if not is_leaf[n]]
        keep = []
        for n in splits:    # clear the bits of the leaves under the left child
            child = int(left[n])
            width = last[child] - first[child] + 1
            cleared = ((1 << width) - 1) << first[child]
            keep.append(0xFFFF_FFFF_FFFF_FFFF ^ cleared)
        trees.append((feature[splits].astype(np.intp), threshold[splits], missing_left[splits].astype(bool),
                       keep, value[leaves].astype(np.float64)))
    width = np.uint16 if max(len(t[4]) for t in trees) <= 16 else np.uint64
    return [(*t[:3], np.array(t[3], dtype=np.uint64).astype(width), t[4]) for t in trees]
