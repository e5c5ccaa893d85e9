"""``KnnIR``: the validated description of a compressed k-NN recommender (Surprise's KNN family).

It plays the role :class:`~edgesparse.ir.LinearIR` plays for linear models: the frontend
(``frontends/surprise.py``) builds it from a trained Surprise algorithm, the passes
(``passes/knn.py``) prune and quantize it, ``formats/knn.py``
writes and reads it, ``runtime/knn.py`` predicts with it. Imports numpy and the standard library
only (the on-device runtime uses it).

Terms follow Surprise: *x* is what the similarities are between (users when ``user_based``,
else items) and *y* the other side. The model keeps

* ``sim``: an ``n_x x n_x`` CSR matrix of the **positive** similarities only (Surprise ignores
  neighbours whose similarity is <= 0, so dropping them changes no prediction), sorted column
  indices per row; values float64, float32, or uint8 with one float32 scale per row;
* ``yr``: for each y, the x that rated it and the rating, in Surprise's own order (the order
  breaks ties between equal similarities exactly as Surprise's stable ``heapq.nlargest`` does);
* the global mean, the rating scale (estimates are clipped to it), and what the variant needs:
  per-x means (``means``, ``zscore``), per-x standard deviations (``zscore``), user and item
  baselines (``baseline``);
* the raw user and item ids in inner-id order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgesparse.errors import IRError
from edgesparse.ir.csr import indices_fault, indptr_fault

__all__ = ["VARIANTS", "KnnIR"]

VARIANTS = ("basic", "means", "zscore", "baseline")
"""Surprise's KNNBasic, KNNWithMeans, KNNWithZScore, KNNBaseline (in format code order)."""

_SIM_DTYPES = ("float64", "float32", "uint8")


def _fail(msg: str) -> None:
    raise IRError(f"invalid KnnIR: {msg}")


@dataclass(frozen=True, eq=False)
class KnnIR:
    """A k-NN recommender, validated on construction (every failure names the field)."""

    variant: str
    user_based: bool
    k: int
    min_k: int
    sim_indptr: np.ndarray
    sim_indices: np.ndarray
    sim_values: np.ndarray
    yr_indptr: np.ndarray
    yr_x: np.ndarray
    ratings: np.ndarray
    global_mean: float
    rating_scale: tuple[float, float]
    user_ids: tuple[Any, ...]
    item_ids: tuple[Any, ...]
    sim_scales: np.ndarray | None = None
    means: np.ndarray | None = None
    sigmas: np.ndarray | None = None
    bu: np.ndarray | None = None
    bi: np.ndarray | None = None
    provenance: dict[str, str] = field(default_factory=dict)

    # -- derived ------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        """Users the model was trained on."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Items the model was trained on."""
        return len(self.item_ids)

    @property
    def n_x(self) -> int:
        """Rows (and columns) of the similarity matrix."""
        return self.n_users if self.user_based else self.n_items

    @property
    def n_y(self) -> int:
        """The other side: items when user-based, else users."""
        return self.n_items if self.user_based else self.n_users

    @property
    def sim_nnz(self) -> int:
        """Stored similarities."""
        return int(self.sim_values.size)

    @property
    def n_ratings(self) -> int:
        """Stored ratings."""
        return int(self.ratings.size)

    @property
    def sim_dtype(self) -> str:
        """``float64``, ``float32`` or ``uint8``."""
        return str(self.sim_values.dtype)

    def sim_float(self) -> np.ndarray:
        """The similarities as float64 (uint8 values times their row's float32 scale)."""
        if self.sim_scales is None:
            return self.sim_values.astype(np.float64)
        per = np.repeat(self.sim_scales.astype(np.float64), np.diff(self.sim_indptr))
        per *= self.sim_values
        return per

    # -- invariants ---------------------------------------------------------------------
    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            _fail(f"variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        for name in ("k", "min_k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
                _fail(f"{name} must be an integer in [0, 2^32), got {v!r}")
        if self.n_users < 1 or self.n_items < 1:
            _fail("a model needs at least one user and one item")
        for name in ("user_ids", "item_ids"):
            ids = getattr(self, name)
            if len(set(ids)) != len(ids):
                _fail(f"{name} has repeated ids")
        n_x, n_y = self.n_x, self.n_y
        self._csr("sim", self.sim_indptr, self.sim_indices, n_x, n_x, sorted_rows=True)
        self._check_sim_values(n_x)
        self._csr("yr", self.yr_indptr, self.yr_x, n_y, n_x, sorted_rows=False)
        r = self.ratings
        if r.dtype != np.float64 or r.shape != self.yr_x.shape:
            _fail(f"ratings must be float64 with {self.yr_x.size} entries")
        if not np.all(np.isfinite(r)):
            _fail("ratings must be finite")
        lo, hi = self.rating_scale
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            _fail(f"rating_scale {self.rating_scale!r} must be finite with low <= high")
        if not math.isfinite(self.global_mean):
            _fail("global_mean must be finite")
        self._check_variant_arrays(n_x)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.provenance.items()):
            _fail("provenance must map strings to strings")

    def _check_sim_values(self, n_x: int) -> None:
        """The similarities' values and scales (the CSR structure is checked before)."""
        vals = self.sim_values
        if vals.ndim != 1 or vals.size != self.sim_indices.size:
            _fail(f"sim_values must be 1-D with {self.sim_indices.size} entries")
        if self.sim_dtype not in _SIM_DTYPES:
            _fail(f"sim_values dtype {vals.dtype} is not one of {', '.join(_SIM_DTYPES)}")
        if self.sim_dtype == "uint8":
            if vals.size and int(vals.min()) == 0:
                _fail("sim_values holds a 0 (only positive similarities are stored)")
            s = self.sim_scales
            if s is None or s.dtype != np.float32 or s.shape != (n_x,):
                _fail(f"uint8 similarities need float32 sim_scales of shape ({n_x},)")
            if not np.all(np.isfinite(s) & (s > 0)):
                _fail("sim_scales must be finite and > 0")
        else:
            if self.sim_scales is not None:
                _fail("sim_scales are only for uint8 similarities")
            if vals.size and not np.all(np.isfinite(vals) & (vals > 0)):
                _fail("sim_values must be finite and > 0 (only positive similarities are stored)")

    def _check_variant_arrays(self, n_x: int) -> None:
        """What the variant needs (means, sigmas, baselines), and nothing it does not."""
        need = {
            "means": self.variant in ("means", "zscore"),
            "sigmas": self.variant == "zscore",
            "bu": self.variant == "baseline",
            "bi": self.variant == "baseline",
        }
        sizes = {"means": n_x, "sigmas": n_x, "bu": self.n_users, "bi": self.n_items}
        for name, needed in need.items():
            a = getattr(self, name)
            if (a is not None) != needed:
                _fail(f"{name} must be {'given' if needed else 'None'} for {self.variant!r}")
            if a is None:
                continue
            if a.dtype != np.float64 or a.shape != (sizes[name],):
                _fail(f"{name} must be float64 of shape ({sizes[name]},), got {a.shape}")
            if not np.all(np.isfinite(a)):
                _fail(f"{name} must be finite")
        if self.sigmas is not None and not np.all(self.sigmas > 0):
            _fail("sigmas must be > 0")

    @staticmethod
    def _csr(
        name: str,
        indptr: np.ndarray,
        indices: np.ndarray,
        n_rows: int,
        n_cols: int,
        *,
        sorted_rows: bool,
    ) -> None:
        if indptr.dtype != np.int64 or indptr.shape != (n_rows + 1,):
            _fail(f"{name}_indptr must be int64 of shape ({n_rows + 1},)")
        if indptr_fault(indptr, nnz=indices.size) is not None:
            _fail(f"{name}_indptr must start at 0, not decrease and end at {indices.size}")
        if indices.dtype != np.int32 or indices.ndim != 1:
            _fail(f"{name} indices must be 1-D int32")
        fault = indices_fault(indptr, indices, n_cols=n_cols, sorted_rows=sorted_rows)
        if fault is not None and fault.kind == "range":
            _fail(f"{name} indices must lie in [0, {n_cols})")
        if fault is not None:
            _fail(f"{name} column indices must be strictly increasing within each row")
