"""The text input stage: how raw documents become the feature vector a :class:`LinearIR` sees.

:class:`TextFeaturizer` describes scikit-learn's ``HashingVectorizer`` or, with a
``vocabulary``, its ``CountVectorizer``, each optionally followed by a ``TfidfTransformer``
(:class:`Tfidf`; a ``TfidfVectorizer`` is a ``CountVectorizer`` and one). It is data only,
frozen and validated on construction; the numpy runtime runs it
(:mod:`edgesparse.runtime.text`).

Numeric contract (scikit-learn 1.x, ``sklearn/feature_extraction/text.py``,
``_hashing_fast.pyx``, ``utils/murmurhash.pyx``), for one document ``doc`` (a ``str``):

1. *Preprocess*: ``doc.lower()`` when ``lowercase`` (Python's ``str.lower``: ``"ß"`` stays
   ``"ß"``, ``"İ"`` becomes ``"i̇"``), then accents: ``"ascii"`` is
   ``unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")``;
   ``"unicode"`` leaves an ASCII-only string as it is, else drops every combining character
   of its NFKD form.
2. *Analyze* into terms:

   ``word``
       ``re.findall(token_pattern, doc)``; tokens in ``stop_words`` are dropped; then word
       n-grams for ``n`` in ``ngram_range`` (unigrams first, then each larger ``n``, each in
       order of position), an n-gram being its tokens joined by one space.
   ``char``
       every run of two or more whitespace characters (``\\s\\s+``) becomes one space; then
       the character n-grams of the whole text, ``n`` in ``ngram_range``, by ``n`` then
       position.
   ``char_wb``
       the same whitespace rule; for each word of ``doc.split()``, padded as ``" w "``, its
       n-grams for ``n`` from ``min_n`` up, where the first (possibly short) n-gram is always
       taken and a padded word shorter than ``n`` stops the larger sizes.

3. *Hash* each term ``t``: ``h = murmurhash3_32(t.encode("utf-8"), seed=0)`` (MurmurHash3
   x86_32, as a signed 32-bit integer). Its column is ``abs(h) % n_features``; for
   ``h == -2**31`` scikit-learn computes ``(2**31 - 1 - (n_features - 1)) % n_features``,
   which is ``2**31 % n_features``, i.e. ``abs(h) % n_features`` computed without overflow.
   Its value is ``+1``, or ``-1`` when ``alternate_sign`` and ``h < 0``. Values of one
   column in one document are summed (a column hit by ``+1`` and ``-1`` holds an explicit
   ``0``).
4. ``binary``: every column the document hit becomes ``1`` (an explicit ``0`` included).
5. ``norm``: ``"l2"`` divides the row by ``sqrt(sum(x**2))``, ``"l1"`` by ``sum(|x|)``; an
   all-zero row stays as it is.
6. :class:`Tfidf`, when present: ``sublinear_tf`` replaces each stored ``x`` by
   ``log(x) + 1``; with ``idf`` each ``x[j]`` is multiplied by ``idf[j]``; then its ``norm``
   as in step 5. (``smooth_idf`` only decides ``idf`` at fit time; it is not kept.)

scikit-learn computes in the vectorizer's ``dtype`` (float64 by default); the runtime computes
in float64 and the linear layer then reads the values in its own arithmetic.

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgesparse.errors import IRError

__all__ = [
    "ANALYZERS",
    "DEFAULT_TOKEN_PATTERN",
    "MAX_NGRAM",
    "NORMS",
    "STRIP_ACCENTS",
    "TOKEN_PATTERNS",
    "TextFeaturizer",
    "Tfidf",
]

ANALYZERS = ("word", "char", "char_wb")
"""Analyzers, in the order the ``.esb`` format numbers them."""

NORMS = (None, "l1", "l2")
"""Row norms, in the order the ``.esb`` format numbers them."""

STRIP_ACCENTS = (None, "ascii", "unicode")
"""Accent stripping, in the order the ``.esb`` format numbers them."""

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
"""scikit-learn's default ``token_pattern``."""

TOKEN_PATTERNS = (DEFAULT_TOKEN_PATTERN, r"(?u)\b\w+\b", r"\b\w\w+\b", r"\b\w+\b")
"""The token patterns supported, in the order the ``.esb`` format numbers them: runs of two
(or one) or more Unicode word characters between word boundaries. (On ``str`` patterns
Python's ``re`` is Unicode-aware with or without ``(?u)``.) Other patterns are refused: every
back-end must tokenize exactly as Python's ``re`` does, and a pattern is a program."""

MAX_NGRAM = 32
"""Largest n-gram size accepted (bounds the work per token)."""

_MAX_FEATURES = 0x7FFFFFFF


@dataclasses.dataclass(frozen=True, eq=False)
class Tfidf:
    """A fitted ``TfidfTransformer``: ``sublinear_tf``, the ``idf`` weights (None without
    ``use_idf``) and the row ``norm`` after them (see the module's contract, step 6)."""

    idf: np.ndarray | None
    sublinear_tf: bool = False
    norm: str | None = "l2"

    def __post_init__(self) -> None:
        _check_bool("tfidf.sublinear_tf", self.sublinear_tf)
        object.__setattr__(self, "sublinear_tf", bool(self.sublinear_tf))
        _check_choice("tfidf.norm", self.norm, NORMS)
        if self.idf is not None:
            idf = np.asarray(self.idf)
            if idf.dtype.kind not in "fiu" or idf.ndim != 1 or idf.size < 1:
                raise IRError("tfidf.idf: must be a 1-D array of numbers")
            idf = np.array(idf, dtype=np.float64, copy=True)
            if not np.all(np.isfinite(idf)):
                raise IRError("tfidf.idf: contains NaN or Inf")
            idf.setflags(write=False)
            object.__setattr__(self, "idf", idf)


@dataclasses.dataclass(frozen=True, eq=False)
class TextFeaturizer:
    """A ``HashingVectorizer`` (and an optional ``TfidfTransformer``, :attr:`tfidf`): raw
    documents -> ``n_features`` hashed columns, as the module docstring's contract says.

    ``stop_words`` is a sorted tuple of distinct strings (only the ``word`` analyzer uses
    stop words; the others must have none).
    """

    n_features: int
    analyzer: str = "word"
    ngram_range: tuple[int, int] = (1, 1)
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    strip_accents: str | None = None
    stop_words: tuple[str, ...] = ()
    alternate_sign: bool = True
    binary: bool = False
    norm: str | None = "l2"
    tfidf: Tfidf | None = None
    vocabulary: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        n = self.n_features
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise IRError("featurizer.n_features: must be a whole number")
        if not 1 <= int(n) <= _MAX_FEATURES:
            raise IRError(f"featurizer.n_features: {n} is out of range [1, {_MAX_FEATURES}]")
        object.__setattr__(self, "n_features", int(n))
        _check_choice("featurizer.analyzer", self.analyzer, ANALYZERS)
        object.__setattr__(self, "ngram_range", _checked_ngrams(self.ngram_range))
        for name in ("lowercase", "alternate_sign", "binary"):
            _check_bool(f"featurizer.{name}", getattr(self, name))
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.token_pattern not in TOKEN_PATTERNS:
            raise IRError(
                f"featurizer.token_pattern: {self.token_pattern!r} is not supported (only "
                f"{', '.join(repr(p) for p in TOKEN_PATTERNS)})"
            )
        _check_choice("featurizer.strip_accents", self.strip_accents, STRIP_ACCENTS)
        _check_choice("featurizer.norm", self.norm, NORMS)
        object.__setattr__(self, "stop_words", self._checked_stop_words())
        self._check_tfidf()
        if self.vocabulary is not None:
            object.__setattr__(self, "vocabulary", self._checked_vocabulary())

    def _checked_vocabulary(self) -> Mapping[str, int]:
        vocab = self.vocabulary
        if not isinstance(vocab, Mapping):
            raise IRError("featurizer.vocabulary: must be a mapping of term -> column")
        if self.alternate_sign or self.norm is not None:
            raise IRError(
                "featurizer.vocabulary: a vocabulary's counts have no sign and no norm "
                "(alternate_sign=False, norm=None)"
            )
        items = []
        for term, col in vocab.items():
            if not isinstance(term, str) or isinstance(col, bool):
                raise IRError("featurizer.vocabulary: terms must be strings, columns integers")
            if not isinstance(col, (int, np.integer)) or not 0 <= col < self.n_features:
                raise IRError(
                    f"featurizer.vocabulary: column {col!r} of term {term!r:.40} is outside "
                    f"[0, {self.n_features})"
                )
            items.append((int(col), term))
        items.sort()
        if any(a[0] == b[0] for a, b in itertools.pairwise(items)):
            raise IRError("featurizer.vocabulary: two terms share one column")
        return types.MappingProxyType({term: col for col, term in items})

    def _checked_stop_words(self) -> tuple[str, ...]:
        words = self.stop_words
        if isinstance(words, str) or not isinstance(words, (tuple, list, frozenset, set)):
            raise IRError("featurizer.stop_words: must be a collection of strings")
        if not all(isinstance(w, str) for w in words):
            raise IRError("featurizer.stop_words: every stop word must be a string")
        if words and self.analyzer != "word":
            raise IRError(
                f"featurizer.stop_words: analyzer {self.analyzer!r} uses no stop words "
                "(only 'word' does)"
            )
        return tuple(sorted(set(words)))

    def _check_tfidf(self) -> None:
        tfidf = self.tfidf
        if tfidf is None:
            return
        if not isinstance(tfidf, Tfidf):
            raise IRError("featurizer.tfidf: must be a Tfidf")
        if tfidf.idf is not None and tfidf.idf.size != self.n_features:
            raise IRError(
                f"tfidf.idf: has {tfidf.idf.size} entries, expected n_features={self.n_features}"
            )
        if tfidf.sublinear_tf and self.alternate_sign and not self.binary:
            # log of a negative (or zero) hashed count: scikit-learn computes NaN there.
            raise IRError(
                "tfidf.sublinear_tf: needs non-negative counts, but alternate_sign makes "
                "some negative (scikit-learn computes NaN for them)"
            )

    def describe(self) -> dict[str, Any]:
        """A JSON-serializable summary (what ``edgesparse inspect`` shows)."""
        kind = "HashingVectorizer" if self.vocabulary is None else "CountVectorizer"
        out: dict[str, Any] = {
            "kind": kind,
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "n_features": self.n_features,
            "alternate_sign": self.alternate_sign,
            "binary": self.binary,
            "norm": self.norm,
        }
        if self.vocabulary is not None:
            out["vocabulary"] = len(self.vocabulary)
        if self.analyzer == "word":
            out["token_pattern"] = self.token_pattern
            out["stop_words"] = len(self.stop_words)
        if self.tfidf is not None:
            out["tfidf"] = {
                "use_idf": self.tfidf.idf is not None,
                "sublinear_tf": self.tfidf.sublinear_tf,
                "norm": self.tfidf.norm,
            }
        return out


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise IRError(f"{name}: must be True or False")


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        shown = ", ".join(repr(c) for c in choices)
        raise IRError(f"{name}: {value!r} is not one of {shown}")


def _checked_ngrams(value: Any) -> tuple[int, int]:
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not 1 <= int(value[0]) <= int(value[1]) <= MAX_NGRAM:
        raise IRError(
            f"featurizer.ngram_range: must be (min_n, max_n) with 1 <= min_n <= max_n <= "
            f"{MAX_NGRAM}, got {value!r}"
        )
    return (int(value[0]), int(value[1]))
