"""Coverage-guided fuzz target (atheris / libFuzzer) for the ``.esb`` decoder.

The property: for *any* bytes, :func:`edgesparse.formats.esb.decode` either returns a valid
``LinearIR`` (which then re-encodes and decodes to the same model) or raises ``FormatError``.
Any other exception, a crash, a hang or an out-of-memory is a bug.

Each input is decoded twice: as given, and with every CRC recomputed ("resealed"), so that
mutations get past the checksums and reach the structural checks behind them.

Run (x86_64 Linux; atheris is in the ``dev`` extra)::

    .venv/bin/python fuzz/fuzz_esb.py -runs=1000000 -rss_limit_mb=2048 -timeout=10 CORPUS_DIR

``CORPUS_DIR`` (optional, created if missing) is seeded with valid blobs of every layout;
without it the seeds go to a temporary directory. Other arguments are libFuzzer's (``-seed=N``,
``-max_total_time=S``, ``-max_len=N``, ``-jobs=N``...). The test suite runs a short fixed-seed
run (tests/test_esb_malformed.py::test_atheris_short_run).
"""

from __future__ import annotations

import struct
import sys
import tempfile
import zlib
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["edgesparse"]):
    import numpy as np

    from edgesparse.errors import FormatError
    from edgesparse.formats import esb
    from edgesparse.formats.container import ENTRY_SIZE, HEADER_SIZE
    from edgesparse.ir import LinearIR, TextFeaturizer, Tfidf


def reseal(blob: bytes) -> bytes:
    """Recompute every section CRC and the header CRC that can be located in ``blob``."""
    b = bytearray(blob)
    if len(b) < HEADER_SIZE:
        return blob
    (n,) = struct.unpack_from("<I", b, 12)
    end = HEADER_SIZE + ENTRY_SIZE * n
    if n > 16 or len(b) < end:
        return blob
    for i in range(n):
        at = HEADER_SIZE + ENTRY_SIZE * i
        off, length = struct.unpack_from("<II", b, at + 4)
        if off + length <= len(b):
            struct.pack_into("<I", b, at + 12, zlib.crc32(b[off : off + length]))
    struct.pack_into("<I", b, 60, zlib.crc32(bytes(b[64:end]), zlib.crc32(bytes(b[:60]))))
    return bytes(b)


def _same(a: LinearIR, b: LinearIR) -> bool:
    arrays = ("indptr", "indices", "values", "bias")
    if not all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays):
        return False
    if (a.scales is None) != (b.scales is None) or (a.classes is None) != (b.classes is None):
        return False
    if a.scales is not None and not np.array_equal(a.scales, b.scales):
        return False
    if a.classes is not None and a.classes.tolist() != b.classes.tolist():
        # float labels may hold NaN (never equal to itself): compare the bytes instead
        if a.classes.tobytes() != b.classes.tobytes():
            return False
    return (a.n_features, a.head, a.squeeze, dict(a.provenance)) == (
        b.n_features,
        b.head,
        b.squeeze,
        dict(b.provenance),
    )


def check_one(data: bytes) -> None:
    """Decode ``data``; only ``FormatError`` may escape, and a success must round-trip."""
    try:
        ir = esb.decode(data)
    except FormatError as exc:
        if "unreadable (" in str(exc):  # esb's catch-all: an unchecked path was reached
            raise AssertionError(f"decoder safety net reached: {exc}") from None
        return
    again = esb.decode(esb.encode(ir))
    if not _same(ir, again):
        raise AssertionError("a decoded model does not survive encode -> decode")


def test_one_input(data: bytes) -> None:
    """libFuzzer entry point: the input as given, then resealed."""
    check_one(data)
    if len(data) >= HEADER_SIZE:
        sealed = reseal(data)
        if sealed != data:
            check_one(sealed)


def seed_blobs() -> dict[str, bytes]:
    """Valid blobs of every head, value dtype (int8 with int16 rows too), label kind and
    column/index layout."""
    rng = np.random.default_rng(0)
    out: dict[str, bytes] = {}

    def ir_of(w: np.ndarray, **kw: object) -> LinearIR:
        rows, cols = np.nonzero(w)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))])
        return LinearIR(
            indptr=indptr,
            indices=cols.astype(np.int32),
            values=w[rows, cols],
            n_features=w.shape[1],
            bias=rng.normal(size=w.shape[0]),
            **kw,  # type: ignore[arg-type]
        )

    w = np.where(rng.random((3, 40)) < 0.3, rng.normal(size=(3, 40)), 0.0)
    q = np.round(w / (np.abs(w).max(axis=1, keepdims=True) / 127)).astype(np.int8)
    s = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    models = {
        "softmax-int8-str": ir_of(
            q,
            head="softmax",
            classes=np.array(["a", "bb", "ccc"]),
            scales=s,
            provenance={"source": "seed"},
        ),
        "hard-f32-int": ir_of(w.astype(np.float32), head="hard", classes=np.array([-1, 5, 9])),
        "logistic-bin-f64-float": ir_of(w[:1], head="logistic", classes=np.array([0.5, 1.5])),
        "identity-f64-multi": ir_of(w, head="identity", squeeze=False),
        "identity-tensor-int8": ir_of(q[:1], head="identity", scales=s[:1]),
    }
    # column exponents in both encodings of the 'exponents' section: one i8 per listed column
    # (varied exponents), exceptions to a common one (a few outlier columns)
    used = np.unique(np.nonzero(q)[1])
    varied = np.zeros(40, np.int8)
    varied[used] = rng.integers(-3, 4, used.size)
    few = np.zeros(40, np.int8)
    few[used[::7]] = [2, -1, 3, 1, -2, 4][: used[::7].size]
    for tag, exps in (("exp-i8", varied), ("exp-exceptions", few)):
        models[f"softmax-int8-{tag}"] = models["softmax-int8-str"].replace(col_exponents=exps)
    # mixed int8/int16 rows ('values' encoding 1): row 1 raised to 16 bits, the others int8
    q16 = q.astype(np.int16)
    q16[1] = np.round(w[1] / (np.abs(w[1]).max() / 32767)).astype(np.int16)
    s16 = s.copy()
    s16[1] = np.abs(w[1]).max() / 32767
    models["softmax-mixed"] = models["softmax-int8-str"].replace(
        values=q16[np.nonzero(q16)], scales=s16
    )
    models["softmax-mixed-exp-i8"] = models["softmax-mixed"].replace(col_exponents=varied)
    # the 'text' section in both encodings: hashing with stop words and tf-idf, a vocabulary
    idf = np.round(rng.uniform(1, 3, 40), 1)
    hashed = TextFeaturizer(
        n_features=40, stop_words=("a", "the"), alternate_sign=False, tfidf=Tfidf(idf=idf)
    )
    models["softmax-int8-text"] = models["softmax-int8-str"].replace(featurizer=hashed)
    counted = TextFeaturizer(
        n_features=40,
        analyzer="char_wb",
        ngram_range=(2, 3),
        alternate_sign=False,
        norm=None,
        vocabulary={f"t{j}": j for j in range(40)},
    )
    models["hard-f32-vocabulary"] = models["hard-f32-int"].replace(featurizer=counted)
    layouts = [("auto", "auto"), ("all", "raw"), ("varint", "varint")]
    layouts += [("bitmap", "bitmap"), ("eliasfano", "eliasfano")]
    for name, ir in models.items():
        for cols, idx in layouts:
            out[f"{name}-{cols}-{idx}"] = esb.encode(ir, columns=cols, indices=idx)
    return out


def main(argv: list[str]) -> None:
    """Seed the corpus directory (the first non-option argument) and start libFuzzer."""
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if not dirs:
        dirs = [tempfile.mkdtemp(prefix="esb-fuzz-corpus-")]
        argv = [*argv, dirs[0]]
    corpus = Path(dirs[0])
    corpus.mkdir(parents=True, exist_ok=True)
    for name, blob in seed_blobs().items():
        (corpus / f"seed-{name}.esb").write_bytes(blob)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
