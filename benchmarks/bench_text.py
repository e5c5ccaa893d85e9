"""Raw text in (issue 20): a HashingVectorizer (+ TfidfTransformer) pipeline trained on the
standard library's own docstrings (no downloads), compressed with its featurizer inside.

For each pipeline: pickle bytes vs ``.esb`` bytes (default compression, and int8 with half
of the nonzero weights pruned), label agreement with the pipeline's ``predict`` on held-out
docstrings, and the median batch-1 latency from raw text (featurization included) of the
numpy runtime against scikit-learn's ``pipeline.predict``, one thread, interleaved.
Prints a Markdown table and writes JSON (``--out``, default
benchmarks/results/text.json). Compare ratios: the machines are shared and noisy.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

_FAMILIES = (
    ("string", "textwrap", "re", "difflib", "csv", "json", "html", "email.message"),
    ("os", "pathlib", "shutil", "subprocess", "tempfile", "zipfile", "tarfile", "glob"),
    ("functools", "itertools", "collections", "typing", "contextlib", "dataclasses", "enum"),
    ("decimal", "fractions", "statistics", "random", "datetime", "heapq", "bisect", "math"),
)


def corpus() -> tuple[list[str], np.ndarray]:
    """Docstrings of standard-library modules, classes and methods; label = module family."""
    docs: dict[str, int] = {}
    for label, family in enumerate(_FAMILIES):
        for name in family:
            mod = importlib.import_module(name)
            objs: list[Any] = [mod]
            for _, obj in sorted(vars(mod).items()):
                if callable(obj) and getattr(obj, "__module__", None) == mod.__name__:
                    objs.append(obj)
                    if isinstance(obj, type):
                        objs += [m for _, m in sorted(vars(obj).items()) if callable(m)]
            for obj in objs:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    doc = inspect.getdoc(obj)
                if doc and len(doc) > 20:
                    docs.setdefault(doc, label)
    return list(docs), np.array(list(docs.values()))


def pipelines() -> dict[str, Any]:
    from sklearn.feature_extraction.text import (
        CountVectorizer,
        HashingVectorizer,
        TfidfTransformer,
        TfidfVectorizer,
    )
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.pipeline import make_pipeline

    return {
        "hashing 2^18 + SGD (hinge)": make_pipeline(
            HashingVectorizer(n_features=2**18), SGDClassifier(random_state=0)
        ),
        "hashing 2^18 bigrams + tf-idf + logistic": make_pipeline(
            HashingVectorizer(n_features=2**18, ngram_range=(1, 2), alternate_sign=False),
            TfidfTransformer(sublinear_tf=True),
            LogisticRegression(max_iter=500),
        ),
        "char_wb 2-4 2^16 + SGD (log)": make_pipeline(
            HashingVectorizer(n_features=2**16, analyzer="char_wb", ngram_range=(2, 4)),
            SGDClassifier(loss="log_loss", random_state=0),
        ),
        "CountVectorizer 1-2 + SGD (hinge)": make_pipeline(
            CountVectorizer(ngram_range=(1, 2)), SGDClassifier(random_state=0)
        ),
        "TfidfVectorizer + logistic": make_pipeline(
            TfidfVectorizer(), LogisticRegression(max_iter=500)
        ),
    }


def median_ms(fn: Any, docs: list[str], repeats: int) -> float:
    times = []
    for i in range(repeats):
        doc = [docs[i % len(docs)]]
        t0 = time.perf_counter()
        fn(doc)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def measure(name: str, pipe: Any, train: list[str], y: np.ndarray, test: list[str]) -> dict:
    from edgesparse import compress
    from edgesparse.formats import esb
    from edgesparse.runtime import loads

    pipe.fit(train, y)
    row: dict[str, Any] = {"pipeline": name, "pickle_bytes": len(pickle.dumps(pipe))}
    want = pipe.predict(test)
    full = compress(pipe, quantize="none")
    # Half of the nonzero weights pruned (the hashed weights are mostly zero already).
    half = 1.0 - 0.5 * full.nnz / (full.n_outputs * full.n_features)
    row["nnz"] = full.nnz
    fitted = full.featurizer.vocabulary
    row["vocabulary_fitted"] = None if fitted is None else len(fitted)
    for key, kw in (("default", {}), ("int8_50", {"quantize": "int8", "sparsity": half})):
        blob = esb.encode(compress(pipe, **kw))
        model = loads(blob)
        row[f"esb_{key}_bytes"] = len(blob)
        kept = model.ir.featurizer.vocabulary
        row[f"vocabulary_{key}"] = None if kept is None else len(kept)
        row[f"agreement_{key}"] = float(np.mean(model.predict(test) == want))
    model = loads(esb.encode(compress(pipe)))
    row["numpy_ms"] = median_ms(model.predict, test, 300)
    row["sklearn_ms"] = median_ms(pipe.predict, test, 300)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/text.json"))
    args = parser.parse_args()
    docs, y = corpus()
    rng = np.random.default_rng(0)
    held = rng.random(len(docs)) < 0.25
    train = [d for d, h in zip(docs, held, strict=True) if not h]
    test = [d for d, h in zip(docs, held, strict=True) if h]
    rows = [measure(n, p, train, y[~held], test) for n, p in pipelines().items()]
    print(f"{len(train)} training and {len(test)} held-out docstrings\n")
    print(
        "| pipeline | pickle | .esb default | agree | .esb int8, half pruned | agree | "
        "vocabulary fitted / default / half pruned | batch-1 numpy | batch-1 scikit-learn |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vocab = (
            "—"
            if r["vocabulary_fitted"] is None
            else f"{r['vocabulary_fitted']:,} / {r['vocabulary_default']:,} / "
            f"{r['vocabulary_int8_50']:,}"
        )
        print(
            f"| {r['pipeline']} | {r['pickle_bytes']:,} | {r['esb_default_bytes']:,} | "
            f"{r['agreement_default']:.2%} | {r['esb_int8_50_bytes']:,} | "
            f"{r['agreement_int8_50']:.2%} | {vocab} | {r['numpy_ms']:.3f} ms | "
            f"{r['sklearn_ms']:.3f} ms |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
