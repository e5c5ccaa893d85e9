"""Memory structure (issue 19, goals 3 and 6), asserted without timings: what a device process
imports, and that compress holds no extra dense copy of a wide ``coef_``. The figures are
``benchmarks/bench_memory.py``'s job."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier

import edgesparse
import edgesparse.runtime
from edgesparse.formats import esb
from edgesparse.frontends import to_linear_ir
from edgesparse.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
OTHER_KINDS = (
    "edgesparse.runtime.knn",
    "edgesparse.runtime.factors",
    "edgesparse.runtime.onnx_model",
    "edgesparse.formats.knn",
    "edgesparse.formats.factors",
    "edgesparse.formats.onnx",
    # the input stages' runtimes, and the workstation's file readers (csv, zipfile, lzma...)
    "edgesparse.runtime.text",
    "edgesparse.runtime.tabular",
    "edgesparse.data",
    "edgesparse.frontends",
    "edgesparse.passes",
    "edgesparse.loader",
)


def _modules_after(code: str) -> set[str]:
    """The edgesparse modules a fresh process has imported after running ``code``."""
    probe = code + "\nimport sys\nprint(' '.join(m for m in sys.modules if 'edgesparse' in m))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return set(out.stdout.split())


def _wide_model(shape: tuple[int, int] = (4, 1 << 18), density: float = 0.01) -> SGDClassifier:
    rng = np.random.default_rng(0)
    model = SGDClassifier(max_iter=5, tol=None, random_state=0)
    model.fit(rng.standard_normal((40, 3)), np.arange(40) % shape[0])
    coef = np.zeros(shape)
    mask = rng.random(shape) < density
    coef[mask] = rng.standard_normal(int(mask.sum()))
    model.coef_, model.intercept_, model.n_features_in_ = (
        coef,
        rng.standard_normal(shape[0]),
        shape[1],
    )
    return model


def test_loading_a_linear_blob_imports_that_kind_only(tmp_path: Path) -> None:
    blob = tmp_path / "m.esb"
    esb.write(to_linear_ir(_wide_model((3, 50), 0.5)), blob)
    code = (
        "import numpy as np, edgesparse\n"
        f"m = edgesparse.load({str(blob)!r})\n"
        "m.predict(np.ones((2, 50)))"
    )
    loaded = _modules_after(code)
    assert "edgesparse.runtime.model" in loaded
    assert "edgesparse.formats.linear" in loaded
    assert loaded.isdisjoint(OTHER_KINDS), sorted(loaded & set(OTHER_KINDS))


def test_importing_the_runtime_imports_no_runtime_yet() -> None:
    loaded = _modules_after("import edgesparse.runtime")
    assert loaded.isdisjoint({"edgesparse.runtime.model", "edgesparse.formats.linear"})
    assert loaded.isdisjoint(OTHER_KINDS)


def test_the_public_names_still_resolve() -> None:
    from edgesparse.runtime import KnnModel, Model, OnnxModel, load, loads

    assert Model.__module__ == "edgesparse.runtime.model"
    assert KnnModel.__module__ == "edgesparse.runtime.knn"
    assert OnnxModel.__module__ == "edgesparse.runtime.onnx_model"
    assert edgesparse.runtime.Model is Model and edgesparse.Model is Model
    assert edgesparse.load is load and callable(loads)
    assert set(edgesparse.runtime.__all__) <= set(dir(edgesparse.runtime))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        edgesparse.runtime.Nope  # noqa: B018


def test_the_frontend_makes_no_dense_copy_of_coef() -> None:
    model = _wide_model()
    dense = model.coef_.nbytes  # 8 MiB; 1% of it is nonzero
    tracemalloc.start()
    try:
        ir = to_linear_ir(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < dense / 4, f"{peak} bytes traced for a {dense}-byte coef_"
    np.testing.assert_array_equal(ir.to_dense(), model.coef_)


@pytest.mark.parametrize("opener", [open, gzip.open], ids=["plain", "gzip"])
def test_a_protocol5_pickle_holds_its_arrays_once(tmp_path: Path, opener: object) -> None:
    model = _wide_model()
    path = tmp_path / "m.pkl"
    with opener(path, "wb") as f:  # type: ignore[operator]
        pickle.dump(model, f, protocol=5)
    dense = model.coef_.nbytes
    tracemalloc.start()
    try:
        loaded = load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The file's bytes (plain) and the array: at most 2 copies, not the file, then the
    # array's bytes, then their bytearray (3).
    assert peak < 2.5 * dense, f"{peak} bytes traced for a {dense}-byte coef_"
    np.testing.assert_array_equal(loaded.coef_, model.coef_)
    assert loaded.coef_.flags.writeable
    np.testing.assert_array_equal(loaded.intercept_, model.intercept_)  # a small, framed one
