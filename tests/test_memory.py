"""Memory structure (issue 19, goals 3 and 6), asserted without timings: what a device process
imports, and that compress holds no extra dense copy of a wide ``coef_``. The figures are
``benchmarks/bench_memory.py``'s job."""

from __future__ import annotations

import gzip
import json
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
from edgesparse.formats.codecs import MAX_PROVENANCE_KEYS, encode_provenance, plain_object
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


def test_loading_a_blob_imports_no_json_or_dataclasses(tmp_path: Path) -> None:
    # The provenance the writer stores is read without the json modules, and the IR is built
    # without dataclasses (0.1 and 0.2 MiB of a device process).
    ir = to_linear_ir(_wide_model((3, 50), 0.5))
    assert ir.provenance
    blob = tmp_path / "m.esb"
    esb.write(ir, blob)
    probe = (
        "import sys, numpy as np\n"
        "before = set(sys.modules)\n"
        "import edgesparse\n"
        f"m = edgesparse.load({str(blob)!r})\n"
        "m.predict(np.ones((2, 50)))\n"
        "print(dict(m.ir.provenance) == " + repr(dict(ir.provenance)) + ")\n"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    same, loaded = out.stdout.splitlines()
    assert same == "True"
    assert not {"json", "json.decoder", "_json", "dataclasses", "copy"} & set(loaded.split())


def _texts(rng: np.random.Generator) -> list[str]:
    """JSON texts the plain provenance reader may meet: what the writer writes (quotes,
    backslashes, control and non-ASCII characters in keys and values), other spellings of
    the same object, repeated keys, and the same texts cut or changed by a byte."""
    alphabet = [
        "a",
        "Z",
        "0",
        " ",
        '"',
        "\\",
        "\n",
        "\x00",
        "\x1f",
        "\x7f",
        ":",
        ",",
        "{",
        "}",
        "é",
        "\u2028",
        "\U0001f600",
        "'",
    ]
    texts = ["{}", "[]", '""', "{", '{"":""}', '{"a":"b","a":"c"}', '{"a":1}', '{"a":null}']
    for _ in range(300):
        n = int(rng.integers(0, 5))
        obj = {
            "".join(rng.choice(alphabet, int(rng.integers(0, 6)))): "".join(
                rng.choice(alphabet, int(rng.integers(0, 6)))
            )
            for _ in range(n)
        }
        compact = encode_provenance(obj).decode("utf-8")
        texts += [compact, json.dumps(obj), json.dumps(obj, ensure_ascii=False, indent=1)]
        if len(compact) > 2:
            i = int(rng.integers(0, len(compact)))
            texts += [compact[:i], compact[:i] + compact[i + 1 :], compact[:i] + '"' + compact[i:]]
    return texts


def test_the_plain_provenance_reader_agrees_with_json() -> None:
    # Oracle: json.loads with the reader's own rules (distinct keys, at most
    # MAX_PROVENANCE_KEYS). The plain reader either declines (None: json then decides) or
    # returns exactly json's object, keys in the same order.
    rng = np.random.default_rng(19)
    read = 0
    for text in _texts(rng):
        got = plain_object(text)
        if got is None:
            continue
        read += 1
        pairs = json.loads(text, object_pairs_hook=list)
        assert len({k for k, _ in pairs}) == len(pairs) <= MAX_PROVENANCE_KEYS, text
        assert list(got.items()) == pairs, text
        assert all(isinstance(v, str) for v in got.values())
    assert read > 100  # the writer's plain objects are read without json


def test_the_csr_kernels_are_imported_by_csr_input_only(tmp_path: Path) -> None:
    blob = tmp_path / "m.esb"
    esb.write(to_linear_ir(_wide_model((3, 50), 0.5)), blob)
    load = f"import numpy as np, edgesparse\nm = edgesparse.load({str(blob)!r})\n"
    csr_modules = {"edgesparse.runtime.csr_input", "edgesparse.runtime.csr_sums"}
    dense = _modules_after(load + "m.predict(np.ones((2, 50))); m.predict(np.ones((1, 50)))")
    assert dense.isdisjoint(csr_modules), sorted(dense & csr_modules)
    sparse = _modules_after(
        load + "import scipy.sparse as sp\nm.predict(sp.csr_matrix(np.ones((2, 50))))"
    )
    assert csr_modules <= sparse


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
