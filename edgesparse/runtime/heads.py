"""scikit-learn's probability heads (softmax, logistic, modified Huber) on linear scores, for
the numpy runtime: on a score matrix, and on one row of scores as Python floats.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import math

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-z))) never overflows, unlike 1 / (1 + exp(-z)).
    return np.exp(-np.logaddexp(0, -z))


def proba_row(head: str, s: list[float]) -> list[float] | None:
    """:func:`proba` for one row of scores as Python floats (no numpy call of fixed cost), or
    None for one-vs-rest heads: whether a row is all zeros (then uniform) depends on where
    the model's own float type underflows, so those rows go through :func:`proba`."""
    if head == "softmax":
        top = max(s)
        e = [math.exp(v - top) for v in s]
        total = sum(e)
        return [v / total for v in e]
    if len(s) > 1:
        return None
    v = s[0]
    if head == "logistic":  # the same stable form as _sigmoid: exp(-log(1 + exp(-z)))
        p = math.exp(-(max(0.0, -v) + math.log1p(math.exp(-abs(v)))))
    else:  # modified_huber (the only other head with probabilities)
        p = (min(max(v, -1.0), 1.0) + 1) / 2
    return [1 - p, p]


def proba(head: str, scores: np.ndarray) -> np.ndarray:
    """scikit-learn's probability heads, on a ``(n_rows, n_outputs)`` score matrix."""
    if head == "softmax":
        z = scores - scores.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z
    if head == "logistic":
        p = _sigmoid(scores)
    elif head == "modified_huber":
        p = (np.clip(scores, -1, 1) + 1) / 2
    else:
        raise AssertionError(f"no probability head {head!r}")  # guarded by has_proba
    if p.shape[1] == 1:
        return np.hstack([1 - p, p])
    return _normalise_ovr(p)


def _normalise_ovr(p: np.ndarray) -> np.ndarray:
    # One-vs-rest rows are scaled to sum to 1; scikit-learn makes rows where every class
    # has probability 0 uniform (both in _predict_proba_lr and for modified_huber).
    total = p.sum(axis=1, keepdims=True)
    zero = total[:, 0] == 0
    if zero.any():
        p[zero] = 1
        total[zero] = p.shape[1]
    p /= total
    return p
