"""scikit-learn's probability heads (softmax, logistic, modified Huber) on linear scores, for
the numpy runtime: on a score matrix, and on one row of scores as Python floats.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import math

import numpy as np

# The one-vs-rest logistic head (normalised sigmoids, >= 2 outputs), in every engine (this
# module, the C runtime's proba_head, the ONNX graph's _elementwise_proba). scikit-learn
# computes it in float64; a float32 sigmoid is 0 below about -104, which made such rows
# uniform. The contract, on a row whose top score is m:
# * m >= OVR_SOFTMAX_BELOW: sigmoid(s_i) / sum_j sigmoid(s_j), as scikit-learn.
# * OVR_UNIFORM_BELOW <= m < OVR_SOFTMAX_BELOW: softmax, exp(s_i - m) / sum_j exp(s_j - m).
#   sigmoid(s) = e^s / (1 + e^s), so each normalised sigmoid differs from the softmax by a
#   factor within [1 / (1 + e^m), 1 + e^m]; e^-40 = 4e-18 is below float64's (and float32's)
#   rounding, so the two agree to the last bit scikit-learn can see, in any float type.
# * m < OVR_UNIFORM_BELOW: uniform. scikit-learn's expit, 1 / (1 + exp(-s)) in float64, is
#   exactly 0 once exp(-s) overflows (s < -ln(DBL_MAX)); every sigmoid of the row is then 0,
#   and scikit-learn's _predict_proba_lr (SGDClassifier) makes such rows uniform on purpose,
#   so we do too (OneVsRestClassifier leaves them all 0, which is no distribution). The
#   softmax would be the mathematical limit, but differ from scikit-learn's chosen answer.
OVR_SOFTMAX_BELOW = -40.0
"""Top score below which one-vs-rest logistic rows are the softmax of their scores."""
OVR_UNIFORM_BELOW = -709.782712893384
"""Top score below which one-vs-rest logistic rows are uniform: ``-ln(DBL_MAX)``."""


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
        p = _sigmoid(scores) if scores.shape[1] == 1 else _ovr_logistic(scores)
    elif head == "modified_huber":
        p = (np.clip(scores, -1, 1) + 1) / 2
    else:
        raise AssertionError(f"no probability head {head!r}")  # guarded by has_proba
    if p.shape[1] == 1:
        return np.hstack([1 - p, p])
    return _normalise_ovr(p)


def _ovr_logistic(scores: np.ndarray) -> np.ndarray:
    # Unnormalised one-vs-rest logistic probabilities by the contract at the top of this
    # module: sigmoids, exp(s - m) on far negative rows, 0 on rows that become uniform.
    p = _sigmoid(scores)
    top = scores.max(axis=1)
    far = top < OVR_SOFTMAX_BELOW
    if far.any():
        p[far] = np.exp(scores[far] - top[far, None])
        p[top < OVR_UNIFORM_BELOW] = 0
    return p


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
