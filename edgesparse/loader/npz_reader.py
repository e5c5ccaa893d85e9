"""``.npz`` weight files: read with ``allow_pickle=False`` into a :class:`RawLinearModel`."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgesparse.errors import (
    InputError,
    ModelFileError,
    UnsafeModelError,
)
from edgesparse.loader.accounting import guarded, zip_guarded
from edgesparse.loader.allowlist import ZIP_MAGIC, shown_text


# -- npz weights -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RawLinearModel:
    """A plain weights file: ``scores = X @ coef.T + intercept``, then ``head``.

    ``coef`` is ``(n_outputs, n_features)`` or ``(n_features,)``; ``intercept`` a scalar or one
    value per output; ``classes`` the labels of a classifier (one per output, or two for a
    single-output binary classifier); ``head`` the name of the output function, if given.
    The frontend converts it (by the class name ``RawLinearModel``).
    """

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray | None = None
    head: str | None = None

    def __post_init__(self) -> None:
        problem = _raw_problem(self.coef, self.intercept, self.classes, self.head)
        if problem:
            raise InputError(f"invalid RawLinearModel: {problem}")


_NPZ_EXPECTED = (
    "expected 'coef' (n_outputs x n_features or n_features), 'intercept' (a scalar or one per "
    "output), optional 'classes' (one label per output) and 'head' (a 0-d string array)"
)
_NPZ_KEYS = ("coef", "intercept", "classes", "head")


def _raw_problem(coef: Any, intercept: Any, classes: Any, head: Any) -> str | None:
    """Return what is wrong with these weights, or None."""
    if not isinstance(coef, np.ndarray) or coef.dtype.kind not in "fiu":
        return "'coef' must be a numeric (float or int) array"
    if coef.ndim not in (1, 2) or coef.size == 0:
        return f"'coef' must be 1-D or 2-D and non-empty, got shape {coef.shape}"
    n_outputs = 1 if coef.ndim == 1 else coef.shape[0]
    if not isinstance(intercept, np.ndarray) or intercept.dtype.kind not in "fiu":
        return "'intercept' must be a numeric (float or int) array"
    if intercept.ndim > 1 or (intercept.ndim == 1 and intercept.shape[0] != n_outputs):
        return (
            f"'intercept' has shape {intercept.shape} but 'coef' {coef.shape} has "
            f"{n_outputs} output(s): give a scalar or {n_outputs} value(s)"
        )
    if classes is not None:
        if not isinstance(classes, np.ndarray) or classes.dtype.kind not in "biufU":
            return "'classes' must be an array of numbers or strings"
        if classes.ndim != 1 or classes.shape[0] < 2:
            return f"'classes' must be 1-D with at least 2 labels, got shape {classes.shape}"
        if np.unique(classes).shape[0] != classes.shape[0]:
            return "'classes' has repeated labels"
        n = classes.shape[0]
        if n != n_outputs and not (n == 2 and n_outputs == 1):
            return (
                f"'classes' has {n} labels but 'coef' has {n_outputs} output(s) "
                "(one output per class, or one output for 2 classes)"
            )
    if head is not None and (not isinstance(head, str) or not head):
        return "'head' must be a non-empty string"
    return None


def load_npz(data: bytes, source: str, max_unpacked: int) -> RawLinearModel:
    if not data.startswith(ZIP_MAGIC):
        raise ModelFileError(
            f"cannot load {source}: not an npz file (an .npz file is a zip archive); "
            "save the weights with numpy.savez(path, coef=..., intercept=...)"
        )

    zip_guarded(source, "npz", "save it with numpy.savez", data, max_unpacked)

    def read() -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = list(npz.files)
            unexpected = [n for n in names if n not in _NPZ_KEYS]
            if "coef" not in names and ("X" in names or "X_data" in names):
                raise ModelFileError(
                    f"cannot load {source}: it is a data file (X, y), not a weights file; "
                    "compress reads the trained model (or an .npz with coef and intercept); "
                    "data goes to --check-data or --calibration"
                )
            if unexpected:
                raise ModelFileError(
                    f"cannot load {source}: unexpected array(s) "
                    f"{', '.join(map(repr, map(shown_text, unexpected)))}; {_NPZ_EXPECTED}"
                )
            for key in ("coef", "intercept"):
                if key not in names:
                    raise ModelFileError(
                        f"cannot load {source}: it has no array '{key}'; {_NPZ_EXPECTED}"
                    )
            arrays = {}
            for key in names:
                try:
                    arrays[key] = npz[key]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    raise UnsafeModelError(
                        f"refused to load {source}: array '{key}' holds Python objects, "
                        "which would need unpickling; store numbers or fixed-width strings "
                        "(e.g. np.asarray(labels, dtype=str))"
                    ) from None
            return arrays

    arrays = guarded(source, "npz", "save it with numpy.savez", read)
    head: Any = arrays.get("head")
    if head is not None:
        if head.ndim != 0 or head.dtype.kind != "U":
            raise ModelFileError(
                f"cannot load {source}: 'head' must be a 0-d string array "
                f"(np.array('softmax')), got dtype {head.dtype} shape {head.shape}"
            )
        head = str(head[()])
    classes = arrays.get("classes")
    problem = _raw_problem(arrays["coef"], arrays["intercept"], classes, head)
    if problem:
        raise ModelFileError(f"cannot load {source}: {problem}")
    return RawLinearModel(
        coef=arrays["coef"], intercept=arrays["intercept"], classes=classes, head=head
    )
