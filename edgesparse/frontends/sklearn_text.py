"""Text featurizer steps of a pipeline: scikit-learn's ``HashingVectorizer``,
``CountVectorizer`` or ``TfidfVectorizer``, and a ``TfidfTransformer`` after the first two,
become the model's input stage
(:class:`~edgesparse.ir.text.TextFeaturizer`).

Every parameter that decides the output is read and checked; what an artifact cannot carry
exactly (a callable preprocessor, tokenizer or analyzer, a token pattern outside the supported
few, ``input='filename'``) is refused with one line naming the step and the parameter.
Nothing here imports scikit-learn: the objects are read through their attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from edgesparse.errors import IRError, UnsupportedModelError
from edgesparse.frontends.base import CORRUPT, described, n_features_in, name_of, shown
from edgesparse.ir.text import (
    ANALYZERS,
    MAX_NGRAM,
    NORMS,
    STRIP_ACCENTS,
    TOKEN_PATTERNS,
    TextFeaturizer,
    Tfidf,
)

__all__ = ["count_vectorizer", "hashing_vectorizer", "tfidf_transformer", "tfidf_vectorizer"]

_MAX_STOP_WORDS = 1 << 16


def _where(step: Any, step_name: str) -> str:
    return f"{name_of(step)} step {step_name!r}"


def _refuse(step: Any, step_name: str, param: str, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{_where(step, step_name)}: {param} {why}")


def _choice(step: Any, step_name: str, param: str, choices: Iterable[Any]) -> Any:
    value = getattr(step, param, None)
    if callable(value):
        raise _refuse(
            step,
            step_name,
            param,
            "is a callable, which an artifact cannot carry; refit with "
            "one of the built-in settings",
        )
    for c in choices:
        if value is c or (isinstance(value, str) and isinstance(c, str) and value == c):
            return c
    supported = ", ".join(repr(c) for c in choices)
    what = shown(repr(value)) if isinstance(value, str) else described(value)
    raise _refuse(step, step_name, param, f"is {what}; supported: {supported}")


def _flag(step: Any, step_name: str, param: str) -> bool:
    value = getattr(step, param, None)
    if not isinstance(value, (bool, np.bool_)):
        raise _refuse(step, step_name, param, f"must be True or False, not {described(value)}")
    return bool(value)


def _whole(value: Any) -> int | None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def _ngram_range(step: Any, step_name: str) -> tuple[int, int]:
    value = getattr(step, "ngram_range", None)
    pair = tuple(value) if isinstance(value, (tuple, list)) and len(value) == 2 else None
    lo, hi = (_whole(pair[0]), _whole(pair[1])) if pair else (None, None)
    if lo is None or hi is None or not 1 <= lo <= hi <= MAX_NGRAM:
        raise _refuse(
            step,
            step_name,
            "ngram_range",
            f"must be (min_n, max_n) with 1 <= min_n <= max_n <= {MAX_NGRAM}, not "
            f"{described(value) if pair is None else repr(pair)[:60]}",
        )
    return lo, hi


def _stop_words(step: Any, step_name: str) -> tuple[str, ...]:
    value = getattr(step, "stop_words", None)
    if value is None:
        return ()
    if isinstance(value, str):
        if value != "english":
            raise _refuse(step, step_name, "stop_words", "must be 'english', a list or None")
        # scikit-learn's own list, as the fitted object resolves it (its method, its data).
        value = step.get_stop_words()
    if not isinstance(value, (list, tuple, set, frozenset)) or len(value) > _MAX_STOP_WORDS:
        raise _refuse(
            step, step_name, "stop_words", f"must be a list of strings, not {described(value)}"
        )
    if not all(isinstance(w, str) for w in value):
        raise _refuse(step, step_name, "stop_words", "must hold strings only")
    return tuple(value)


def _check_no_callables(step: Any, step_name: str) -> None:
    for param in ("preprocessor", "tokenizer", "analyzer", "strip_accents"):
        if callable(getattr(step, param, None)):
            raise _refuse(
                step,
                step_name,
                param,
                "is a callable, which an artifact cannot carry (edgesparse runs the built-in "
                "analyzers only); refit without it",
            )
    for param in ("preprocessor", "tokenizer"):
        if getattr(step, param, None) is not None:
            raise _refuse(step, step_name, param, "must be None")
    if getattr(step, "input", "content") != "content":
        raise _refuse(
            step, step_name, "input", "must be 'content' (documents given as text, not files)"
        )


def _first(step: Any, previous: TextFeaturizer | None, step_name: str) -> None:
    if previous is not None:
        raise UnsupportedModelError(
            f"{_where(step, step_name)} follows another text step; a text pipeline has one "
            "vectorizer, first"
        )


def _analysis(step: Any, step_name: str) -> dict[str, Any]:
    """The settings every vectorizer shares: how a document becomes terms."""
    _check_no_callables(step, step_name)
    analyzer = _choice(step, step_name, "analyzer", ANALYZERS)
    pattern = getattr(step, "token_pattern", None)
    if analyzer == "word" and pattern not in TOKEN_PATTERNS:
        raise _refuse(
            step,
            step_name,
            "token_pattern",
            f"is {pattern!r:.60}; edgesparse supports {', '.join(repr(p) for p in TOKEN_PATTERNS)}",
        )
    return {
        "analyzer": analyzer,
        "ngram_range": _ngram_range(step, step_name),
        "lowercase": _flag(step, step_name, "lowercase"),
        "token_pattern": pattern if analyzer == "word" else TOKEN_PATTERNS[0],
        "strip_accents": _choice(step, step_name, "strip_accents", STRIP_ACCENTS),
        "stop_words": _stop_words(step, step_name) if analyzer == "word" else (),
        "binary": _flag(step, step_name, "binary"),
    }


def _check_dtype(step: Any, step_name: str, allowed: tuple[type, ...]) -> None:
    dtype = getattr(step, "dtype", np.float64)
    if not any(dtype is t for t in allowed) and not (
        isinstance(dtype, np.dtype) and dtype in allowed
    ):
        names = " or ".join(f"numpy.{t.__name__}" for t in allowed)
        raise _refuse(step, step_name, "dtype", f"must be {names}")


def _featurizer(step: Any, step_name: str, **fields: Any) -> TextFeaturizer:
    try:
        return TextFeaturizer(**fields)
    except IRError as exc:
        raise UnsupportedModelError(f"{_where(step, step_name)}: {exc}") from None


def hashing_vectorizer(
    step: Any, previous: TextFeaturizer | None, *, step_name: str
) -> TextFeaturizer:
    """A ``HashingVectorizer`` (the first step of a text pipeline) as a :class:`TextFeaturizer`."""
    _first(step, previous, step_name)
    analysis = _analysis(step, step_name)
    n = _whole(getattr(step, "n_features", None))
    if n is None or not 1 <= n <= 0x7FFFFFFF:
        raise _refuse(
            step,
            step_name,
            "n_features",
            f"must be 1 to 2147483647, not "
            f"{described(getattr(step, 'n_features', None))}; {CORRUPT}",
        )
    _check_dtype(step, step_name, (np.float64, np.float32))
    return _featurizer(
        step,
        step_name,
        n_features=n,
        alternate_sign=_flag(step, step_name, "alternate_sign"),
        norm=_choice(step, step_name, "norm", NORMS),
        **analysis,
    )


def count_vectorizer(
    step: Any, previous: TextFeaturizer | None, *, step_name: str
) -> TextFeaturizer:
    """A fitted ``CountVectorizer`` (first in a text pipeline): its analysis and
    ``vocabulary_`` as a :class:`TextFeaturizer`."""
    _first(step, previous, step_name)
    analysis = _analysis(step, step_name)
    vocab = getattr(step, "vocabulary_", None)
    if vocab is None:
        raise UnsupportedModelError(
            f"{name_of(step)} is not fitted (it has no vocabulary_); fit it before compressing"
        )
    if not isinstance(vocab, dict) or not vocab or len(vocab) > 0x7FFFFFFF:
        raise _refuse(
            step, step_name, "vocabulary_", f"must be a non-empty dict, not {described(vocab)}"
        )
    _check_dtype(step, step_name, (np.int64, np.float64, np.float32))
    return _featurizer(
        step,
        step_name,
        n_features=len(vocab),
        alternate_sign=False,
        norm=None,
        vocabulary=vocab,
        **analysis,
    )


def tfidf_vectorizer(
    step: Any, previous: TextFeaturizer | None, *, step_name: str
) -> TextFeaturizer:
    """A fitted ``TfidfVectorizer``: a ``CountVectorizer`` and the ``TfidfTransformer`` it
    holds (``_tfidf``, where its fitted ``idf_`` lives)."""
    counts = count_vectorizer(step, previous, step_name=step_name)
    inner = getattr(step, "_tfidf", None)
    if inner is None or name_of(inner) != "TfidfTransformer":
        raise UnsupportedModelError(
            f"{name_of(step)} is not fitted (it has no TfidfTransformer); fit it before compressing"
        )
    return tfidf_transformer(inner, counts, step_name=step_name)


def tfidf_transformer(
    step: Any, previous: TextFeaturizer | None, *, step_name: str
) -> TextFeaturizer:
    """A ``TfidfTransformer`` right after the vectorizer: ``previous`` with its tf-idf."""
    if previous is None or previous.tfidf is not None:
        raise UnsupportedModelError(
            f"{_where(step, step_name)} must come right after a HashingVectorizer or "
            "CountVectorizer"
        )
    n = n_features_in(step)
    if n is not None and n != previous.n_features:
        raise UnsupportedModelError(
            f"{_where(step, step_name)} was fitted on {n} features but the vectorizer before "
            f"it makes {previous.n_features}"
        )
    idf = None
    if _flag(step, step_name, "use_idf"):
        idf = getattr(step, "idf_", None)
        if idf is None:
            raise UnsupportedModelError(
                f"{name_of(step)} is not fitted (it has no idf_); fit it before compressing"
            )
        ok = (
            isinstance(idf, np.ndarray)
            and idf.dtype.kind == "f"
            and idf.shape == (previous.n_features,)
        )
        if not ok:
            raise _refuse(
                step,
                step_name,
                "idf_",
                f"must be {previous.n_features} numbers, not {described(idf)}; {CORRUPT}",
            )
        if not np.all(np.isfinite(idf)):
            raise _refuse(
                step,
                step_name,
                "idf_",
                "has infinite entries (smooth_idf=False and hashed columns no document hit: "
                "scikit-learn gives NaN for a document that hits them); refit with "
                "smooth_idf=True",
            )
    try:
        tfidf = Tfidf(
            idf=idf,
            sublinear_tf=_flag(step, step_name, "sublinear_tf"),
            norm=_choice(step, step_name, "norm", NORMS),
        )
        return dataclasses.replace(previous, tfidf=tfidf)
    except IRError as exc:
        raise UnsupportedModelError(f"{_where(step, step_name)}: {exc}") from None
