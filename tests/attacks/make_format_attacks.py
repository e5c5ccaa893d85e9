"""Write the hostile ``.skops`` files and Surprise k-NN pickles that tests/test_format_attacks.py
feeds to ``edgesparse compress`` (issue 16, round 3).

Each file is built here from readable parts: a small scikit-learn model written by skops and
then edited as a zip archive, or the committed ``models/knn_means.pkl`` read through
edgesparse's own allow-list loader, changed in one attribute and pickled again. Nothing opaque
is committed; the test generates the files into a temporary folder.

    python tests/attacks/make_format_attacks.py OUT_DIR

writes one file per attack plus ``manifest.json``: name, file, what it tries, and the exact
``Error:`` line edgesparse must print (``{path}`` stands for the file's path, ``{n}`` for a
number that depends on the zip container's layout).
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CAP = 64 << 20  # the default array cap (EDGESPARSE_MAX_ARRAY_BYTES)

ARRAY_CAP = (
    "cannot load {{path}}: its arrays hold more than {cap} bytes (at least {total} bytes, shared "
    "arrays counted once per use), more than edgesparse allows by default; if you trust the "
    "file, raise the limit with EDGESPARSE_MAX_ARRAY_BYTES=<bytes>"
)
KNN_ADVICE = " (is it fitted? call algo.fit(trainset) before pickling it)"


@dataclass(frozen=True)
class FormatAttack:
    """One hostile file and the exact error line edgesparse must print for it."""

    name: str
    suffix: str
    what: str
    error: str  # the message after "Error: ", with {path}
    needs: str  # the optional library that must be installed to build and read it
    make: Callable[[], bytes] = field(repr=False, compare=False, default=bytes)


# ---------------------------------------------------------------------------------------------
# skops
# ---------------------------------------------------------------------------------------------
def _logreg(n: int, **extra: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression()
    est.coef_ = np.zeros((1, n))
    est.intercept_ = np.zeros(1)
    est.classes_ = np.array([0, 1])
    est.n_features_in_ = n
    for k, v in extra.items():
        setattr(est, k, v)
    return est


def _rezip(data: bytes, replace: Callable[[str, bytes], bytes | None]) -> bytes:
    """The zip ``data`` with each member passed through ``replace`` (None keeps it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            payload = src.read(info)
            new = replace(info.filename, payload)
            dst.writestr(info.filename, payload if new is None else new, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _npy_of_zeros(n_float64: int) -> bytes:
    """A .npy of ``n_float64`` zeros (compressed well by the zip that stores it)."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (n_float64,)}
    )
    return head.getvalue() + bytes(8 * n_float64)


def skops_shared_array() -> bytes:
    """coef_ (8 MiB) referenced nine more times by an extra attribute: written once."""
    import skops.io as sio

    est = _logreg(1 << 20)
    est.shared_ = [est.coef_] * 9
    return sio.dumps(est)


def skops_big_npy() -> bytes:
    """The coef_ member replaced by 128 MiB of zeros: 130 KB on disk, under the 2 GiB
    unpacked-size cap, twice the array cap."""
    import skops.io as sio

    data = sio.dumps(_logreg(3))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        schema = json.loads(zf.read("schema.json"))
    coef_file = schema["content"]["content"]["coef_"]["file"]
    return _rezip(data, lambda name, b: _npy_of_zeros(16 << 20) if name == coef_file else None)


def skops_nested_npz_bomb(inner: int) -> bytes:
    """A sparse coef_ (kept by skops as an .npz inside the .skops) whose data array is 1 GiB of
    zeros, 1 MB on disk: the inner archive stored (``inner`` ZIP_STORED: the outer member
    unpacks to 1 GiB) or deflated (ZIP_DEFLATED: the inner member does)."""
    import skops.io as sio
    from scipy import sparse

    est = _logreg(3)
    est.coef_ = sparse.csr_matrix(np.array([[1.0, 0.0, 2.0]]))
    data = sio.dumps(est)

    def inflate(name: str, payload: bytes) -> bytes | None:
        if not name.endswith(".npz"):
            return None
        out = io.BytesIO()
        with (
            zipfile.ZipFile(io.BytesIO(payload)) as src,
            zipfile.ZipFile(out, "w", compression=inner) as dst,
        ):
            for info in src.infolist():
                if info.filename != "data.npy":
                    dst.writestr(info.filename, src.read(info))
                    continue
                n = (1 << 30) // 8
                head = _npy_header(n)
                entry = zipfile.ZipInfo("data.npy")
                entry.compress_type = inner
                with dst.open(
                    entry, "w", force_zip64=True
                ) as fh:  # streamed: never 1 GiB in memory
                    fh.write(head)
                    chunk = bytes(1 << 24)
                    for _ in range(64):
                        fh.write(chunk)
        return out.getvalue()

    return _rezip(data, inflate)


def _npy_header(n_float64: int) -> bytes:
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (n_float64,)}
    )
    return head.getvalue()


def skops_junk_member() -> bytes:
    """A model plus a 1 GiB member of zeros that is no array (1 MB on disk): skops's reader,
    and edgesparse's rewrite of old loss objects, read every member."""
    import skops.io as sio

    out = io.BytesIO(sio.dumps(_logreg(3)))
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        entry = zipfile.ZipInfo("junk.bin")
        entry.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(entry, "w", force_zip64=True) as fh:
            chunk = bytes(1 << 24)
            for _ in range(64):
                fh.write(chunk)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Surprise k-NN (the committed example, read through edgesparse's loader, one thing changed)
# ---------------------------------------------------------------------------------------------
def _knn(change: Callable[[Any], None]) -> Callable[[], bytes]:
    def make() -> bytes:
        from edgesparse.loader import load_model

        algo = load_model(ROOT / "models" / "knn_means.pkl")
        algo = algo["algo"] if isinstance(algo, dict) else algo
        change(algo)
        return pickle.dumps(algo, protocol=4)

    return make


def _set(path: str, value: Any) -> Callable[[Any], None]:
    def change(algo: Any) -> None:
        owner, attr = (algo.trainset, path[3:]) if path.startswith("ts.") else (algo, path)
        setattr(owner, attr, value)

    return change


def _first_rating_list(value: Any) -> Callable[[Any], None]:
    def change(algo: Any) -> None:
        algo.trainset._global_mean = None  # Surprise computes it from ur
        algo.trainset.ur[0] = value

    return change


def _string_keys(algo: Any) -> None:
    algo.trainset.ur = {str(k): v for k, v in algo.trainset.ur.items()}


def _shared_rating_lists(algo: Any) -> None:
    # Every item's rating list is one list of 150 000 pairs, pickled once (memo): 2 MB on
    # disk, 80 x 150 000 pairs walked as a tree.
    ts = algo.trainset
    one = [(u % len(ts._raw2inner_id_users), 3.0) for u in range(150_000)]
    ts.ir = {i: one for i in range(len(ts._raw2inner_id_items))}


def attacks() -> list[FormatAttack]:
    """Every fixture, with its exact error line."""
    mib8 = 8 << 20
    return [
        FormatAttack(
            "skops-shared-array",
            ".skops",
            "one 8 MiB coef_ referenced ten times: written once, used ten times",
            ARRAY_CAP.format(cap=CAP, total=9 * mib8),
            "skops",
            skops_shared_array,
        ),
        FormatAttack(
            "skops-npy-128mib",
            ".skops",
            "an .npy member declaring 128 MiB of zeros (130 KB compressed)",
            ARRAY_CAP.format(cap=CAP, total=(16 << 20) * 8 + 8 + 16),  # + intercept_, classes_
            "skops",
            skops_big_npy,
        ),
        FormatAttack(
            "skops-nested-npz-stored-1gib",
            ".skops",
            "a sparse coef_ kept as a stored 1 GiB .npz member (1 MB on disk)",
            ARRAY_CAP.format(cap=CAP, total="{n}"),
            "skops",
            lambda: skops_nested_npz_bomb(zipfile.ZIP_STORED),
        ),
        FormatAttack(
            "skops-nested-npz-deflated-1gib",
            ".skops",
            "a sparse coef_ whose deflated inner .npz declares a 1 GiB data array (1 MB on disk)",
            ARRAY_CAP.format(cap=CAP, total="{n}"),
            "skops",
            lambda: skops_nested_npz_bomb(zipfile.ZIP_DEFLATED),
        ),
        FormatAttack(
            "skops-junk-member-1gib",
            ".skops",
            "a 1 GiB member that is no array, deflated to 1 MB",
            "cannot load {path}: its archive members unpack to {n} bytes, more than a model "
            "within the array cap holds (67108864 bytes of arrays plus 33554432 to describe "
            "them); if you trust the file, raise the limit with EDGESPARSE_MAX_ARRAY_BYTES="
            "<bytes>",
            "skops",
            skops_junk_member,
        ),
        FormatAttack(
            "knn-rating-not-a-pair",
            ".pkl",
            "a 1-tuple in ur, with the global mean left for Surprise to compute from ur",
            "cannot convert this Surprise model: trainset rating list 0 holds tuple, not pairs"
            + KNN_ADVICE,
            "surprise",
            _knn(_first_rating_list([(1,)])),
        ),
        FormatAttack(
            "knn-rating-a-string",
            ".pkl",
            "a rating that is a string (np.mean would fail on it)",
            "cannot convert this Surprise model: trainset ratings must be numbers, got str"
            + KNN_ADVICE,
            "surprise",
            _knn(_first_rating_list([(0, "x")])),
        ),
        FormatAttack(
            "knn-rating-scale-huge-int",
            ".pkl",
            "rating_scale (1, 10**400): too large for a float",
            "cannot convert this Surprise model: trainset.rating_scale must be finite numbers"
            + KNN_ADVICE,
            "surprise",
            _knn(_set("ts.rating_scale", (1, 10**400))),
        ),
        FormatAttack(
            "knn-ur-keys-not-inner-ids",
            ".pkl",
            "ur keyed by strings: every list would look empty and the model predict the mean",
            "cannot convert this Surprise model: trainset.ur must map each inner id 0..119 to "
            "its ratings" + KNN_ADVICE,
            "surprise",
            _knn(_string_keys),
        ),
        FormatAttack(
            "knn-k-10-to-5000",
            ".pkl",
            "k = 10**5000: any message that printed it would fail (int-to-str limit)",
            "cannot convert this Surprise model: k must be a whole number in [0, 2^32), got a "
            "huge number" + KNN_ADVICE,
            "surprise",
            _knn(_set("k", 10**5000)),
        ),
        FormatAttack(
            "knn-similarity-name-an-int",
            ".pkl",
            "sim_options['name'] 10**5000 (written into the blob's provenance as text)",
            "cannot convert this Surprise model: sim_options['name'] must be a similarity name, "
            "got int" + KNN_ADVICE,
            "surprise",
            _knn(lambda algo: algo.sim_options.__setitem__("name", 10**5000)),
        ),
        FormatAttack(
            "knn-shared-rating-lists",
            ".pkl",
            "every item's ratings one memoized list of 150 000 pairs",
            "cannot load {path}: its objects, walked as a tree, number more than 10000000 "
            "(shared references repeated many times; no scikit-learn model does that, the file "
            "is crafted or corrupt)",
            "surprise",
            _knn(_shared_rating_lists),
        ),
    ]


def write_all(out_dir: str | Path) -> list[dict[str, str]]:
    """Write every fixture whose library is installed, and ``manifest.json``."""
    import importlib.util

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for a in attacks():
        if importlib.util.find_spec(a.needs) is None:
            continue
        (out / f"{a.name}{a.suffix}").write_bytes(a.make())
        manifest.append(
            {"name": a.name, "file": f"{a.name}{a.suffix}", "what": a.what, "error": a.error}
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line: write the fixtures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    args = ap.parse_args(argv)
    print(f"wrote {len(write_all(args.out_dir))} fixtures to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
