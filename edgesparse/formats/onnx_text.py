"""The text input stage as ONNX nodes: raw documents -> the (row, column, value) triples of
the feature rows, exactly as :mod:`edgesparse.runtime.text` computes them (issue 20).

Used by :mod:`edgesparse.formats.onnx_featurizers`; the graph's input is ``documents``,
string ``[N]``. Nodes (default domain unless named)::

    (onnx_lower: final sigma, dotted I)           when lowercase, opset >= 20
    StringNormalizer(LOWER, locale C.UTF-8)       when lowercase
    com.microsoft.Tokenizer(tokenexp=W{2,})       [N, T] tokens, "#"-padded (W: the exact set
                                                  of code points Python's re calls \\w)
    hashing:    com.microsoft.MurmurHash3 -> int64 -> |h| % n_features, sign h < 0
                ai.onnx.ml.LabelEncoder           padding and stop words -> dropped
    vocabulary: ai.onnx.ml.LabelEncoder           token -> id of the vocabulary's tokens
                (TopK + GatherElements)           stop words removed before n-grams
                n-gram key from the ids (base U+1) -> ai.onnx.ml.LabelEncoder -> column
    Compress -> Unique(row * n_features + column) -> ScatterElements(add) of the values
    binary, norm, sublinear tf, idf, norm          float64, as the numpy runtime

Why not ``TfIdfVectorizer``: it outputs a dense ``[N, vocabulary]`` row (400 MB at batch
1000 for a 100k vocabulary), where these triples feed the CSR product directly.

Measured against Python (onnxruntime 1.32, glibc 2.36, every code point): the tokenizer with
RE2's ``[\\p{L}\\p{N}_]`` differs from Python's ``\\w`` on 5010 code points (Unicode
versions), hence the explicit class; ``MurmurHash3`` on strings equals scikit-learn's
``murmurhash3_32`` (UTF-8 bytes, seed 0); ``StringNormalizer`` fails to load with its default
locale where ``en_US.UTF-8`` is not installed, lowercases nothing beyond ASCII in ``C``,
and in ``C.UTF-8`` equals ``str.lower`` on every single code point but U+0130 (``İ``: Python
gives ``i`` + U+0307) and, in context, U+03A3 (``Σ``: Python gives the final ``ς`` at a
word's end, onnxruntime always the medial U+03C3). Documents with those two characters are the one
known difference: at opset >= 20 the graph replaces both first, exactly as ``str.lower``
(:mod:`~edgesparse.formats.onnx_lower`); below, :class:`edgesparse.runtime.onnx_model.OnnxModel`
refuses documents with them.
"""

from __future__ import annotations

import functools
import re

import numpy as np
from onnx import TensorProto, helper

from edgesparse.errors import InputError
from edgesparse.formats import onnx_lower
from edgesparse.formats.onnx_graph import Graph
from edgesparse.ir.text import TextFeaturizer

__all__ = [
    "DOCUMENTS",
    "HASHED_NGRAM_MIN_OPSET",
    "LOCALE",
    "PAD",
    "check_text",
    "lowercase_form",
    "min_opset",
    "text_triples",
    "word_class",
]

DOCUMENTS = "documents"
"""Input name of a text model's graph: string ``[N]``."""

LOCALE = "C.UTF-8"
"""``StringNormalizer``'s locale: built into glibc >= 2.35 and Debian's for long; the default
(``en_US.UTF-8``) is missing on minimal systems, and ``C`` lowercases ASCII only."""

PAD = "#"
"""The tokenizer's padding: never a token (not a word character)."""

HASHED_NGRAM_MIN_OPSET = 20
"""Hashed word n-grams join their tokens with ``StringConcat`` (opset 20)."""

_MS, _ML = "com.microsoft", "ai.onnx.ml"


@functools.cache
def word_class() -> str:
    """An RE2 character class of exactly the code points Python's ``re`` matches with
    ``\\w`` (in this Python's Unicode version)."""
    word = re.compile(r"\w")
    flags = np.zeros(0x110001, dtype=np.int8)
    for c in range(0x110000):
        if not 0xD800 <= c < 0xE000 and word.match(chr(c)):
            flags[c] = 1
    edges = np.diff(np.concatenate([[0], flags]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    parts = [
        f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}"
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    return "[" + "".join(parts) + "]"


def check_text(feat: TextFeaturizer, *, opset: int | None = None) -> None:
    """Raise :class:`InputError` (one line, naming the parameter and why) when the graph
    cannot reproduce ``feat`` exactly with onnxruntime's operators (at ``opset``, when
    given)."""
    where = "text featurizer"
    if feat.analyzer != "word":
        raise InputError(
            f"{where}: analyzer {feat.analyzer!r} is not exported to ONNX: scikit-learn first "
            "replaces every whitespace run by one space (re.sub), and no onnxruntime operator "
            "replaces text; write it as .esb"
        )
    if feat.strip_accents is not None:
        raise InputError(
            f"{where}: strip_accents={feat.strip_accents!r} is not exported to ONNX: it needs "
            "Unicode NFKD normalization, which no onnxruntime operator does; write it as .esb"
        )
    if opset is not None and min_opset(feat) == HASHED_NGRAM_MIN_OPSET > opset:
        raise InputError(
            f"{where}: HashingVectorizer ngram_range={feat.ngram_range} needs opset "
            f"{HASHED_NGRAM_MIN_OPSET} or later in ONNX, not {opset}: an n-gram's hash is "
            "MurmurHash3 of its tokens joined by a space, and StringConcat (opset 20) joins "
            "them"
        )
    if feat.vocabulary is not None:
        _ngram_base(feat)


def min_opset(feat: TextFeaturizer) -> int:
    """The lowest default-domain opset the graph of ``feat`` can use: 16 (the product's
    scatter adds), :data:`HASHED_NGRAM_MIN_OPSET` for hashed word n-grams (``StringConcat``)."""
    if feat.vocabulary is None and feat.ngram_range[1] > 1:
        return HASHED_NGRAM_MIN_OPSET
    return 16


def _vocabulary_tokens(feat: TextFeaturizer) -> list[str]:
    """The distinct tokens of the vocabulary's n-grams (an n-gram is tokens joined by one
    space), stop words excluded (scikit-learn removes them before forming n-grams)."""
    assert feat.vocabulary is not None
    stop = set(feat.stop_words)
    tokens = {t for term in feat.vocabulary for t in term.split(" ")}
    return sorted(tokens - stop - {PAD, ""})


def _ngram_base(feat: TextFeaturizer) -> int:
    """The base of the n-gram keys (vocabulary tokens + 1), refused when the largest n-gram's
    key would not fit in int64."""
    base = len(_vocabulary_tokens(feat)) + 1
    if base ** feat.ngram_range[1] >= 1 << 62:
        raise InputError(
            f"text featurizer: ngram_range={feat.ngram_range} over {base - 1} vocabulary "
            "tokens is not exported to ONNX: an n-gram's int64 key would overflow"
        )
    return base


def lowercase_form(feat: TextFeaturizer, *, opset: int) -> str | None:
    """How the graph lowercases at ``opset``: ``"python"`` (exactly ``str.lower``: opset >=
    20, :mod:`~edgesparse.formats.onnx_lower`), ``"simple"`` (``StringNormalizer`` alone,
    which differs on ``İ`` and a word-final ``Σ``) or None (no lowercasing)."""
    if not feat.lowercase:
        return None
    return "python" if opset >= onnx_lower.LOWER_MIN_OPSET else "simple"


def text_triples(g: Graph, feat: TextFeaturizer, *, opset: int) -> tuple[str, str, str]:
    """Add the nodes from ``documents`` to the feature rows; return the names of their
    ``rows`` (int64), ``columns`` (int64) and ``values`` (float64), one entry per nonzero,
    sorted by row then column."""
    check_text(feat, opset=opset)
    docs = DOCUMENTS
    lower = lowercase_form(feat, opset=opset)
    if lower == "python":
        docs = onnx_lower.python_lower(g, docs)
    if lower is not None:
        docs = g.node("StringNormalizer", [docs], case_change_action="LOWER", locale=LOCALE)
    lo = 2 if feat.token_pattern.endswith(r"\w\w+\b") else 1
    tokens = g.node(
        "Tokenizer",
        [docs],
        domain=_MS,
        mark=0,
        mincharnum=1,
        pad_value=PAD,
        tokenexp=word_class() + ("{2,}" if lo == 2 else "+"),
    )
    g.value_info.append(helper.make_tensor_value_info(tokens, TensorProto.STRING, ["N", "T"]))
    if feat.vocabulary is None:
        cols, signs, keep = _hashed_terms(g, feat, tokens)
    else:
        cols, keep = _vocabulary_terms(g, feat, tokens)
        signs = None
    return _summed(g, feat, cols, signs, keep)


def _hashed_terms(g: Graph, feat: TextFeaturizer, tokens: str) -> tuple[str, str | None, str]:
    """Column ``|h| % n_features`` (in int64: ``h = -2**31`` included), sign and keep mask of
    each term: the tokens, or their n-grams joined by a space (stop words removed first)."""
    dropped = sorted({PAD, *feat.stop_words})
    flag = g.node(
        "LabelEncoder",
        [tokens],
        domain=_ML,
        keys_strings=dropped,
        values_int64s=[1] * len(dropped),
        default_int64=0,
    )
    keep = g.node("Equal", [flag, _s64(g, 0)])
    if feat.ngram_range[1] > 1:
        tokens, keep = _joined_ngrams(g, feat, tokens, keep)
    h = g.node("MurmurHash3", [tokens], domain=_MS, positive=0, seed=0)
    g.value_info.append(helper.make_tensor_value_info(h, TensorProto.INT32, ["N", "terms"]))
    h64 = g.node("Cast", [h], to=TensorProto.INT64)
    cols = g.node("Mod", [g.node("Abs", [h64]), _s64(g, feat.n_features)])
    if not feat.alternate_sign:
        return cols, None, keep
    negative = g.node("Less", [h64, _s64(g, 0)])
    one, minus = _const(g, "one_d", np.array(1.0)), _const(g, "minus_one_d", np.array(-1.0))
    return cols, g.node("Where", [negative, minus, one]), keep


def _joined_ngrams(g: Graph, feat: TextFeaturizer, tokens: str, keep: str) -> tuple[str, str]:
    """Every n-gram (``n`` in ``ngram_range``) of the kept tokens as one string, its tokens
    joined by one space, and whether all its tokens are kept (unigrams first, then each
    larger ``n``, each in order of position: scikit-learn's order)."""
    if feat.stop_words:
        idx = _kept_first(g, g.node("Not", [keep]))
        tokens = g.node("GatherElements", [tokens, idx], axis=1)
        keep = g.node("GatherElements", [keep, idx], axis=1)
    space = _const(g, "space", np.array(" ", dtype=object))
    terms, valid = [], []
    lo, hi = feat.ngram_range
    for n in range(lo, hi + 1):
        term, ok = None, None
        for k in range(n):
            end = -(n - 1 - k) if k < n - 1 else np.iinfo(np.int64).max
            bounds = [_i64(g, k), _i64(g, end), _i64(g, 1)]
            part = g.node("Slice", [tokens, *bounds])
            good = g.node("Slice", [keep, *bounds])
            if term is None:
                term, ok = part, good
            else:
                term = g.node("StringConcat", [g.node("StringConcat", [term, space]), part])
                ok = g.node("And", [ok, good])
        terms.append(term)
        valid.append(ok)
    if len(terms) == 1:
        return terms[0], valid[0]
    return g.node("Concat", terms, axis=1), g.node("Concat", valid, axis=1)


def _vocabulary_terms(g: Graph, feat: TextFeaturizer, tokens: str) -> tuple[str, str]:
    """Column (or -1) and keep mask of every n-gram of the stop-word-free token ids."""
    assert feat.vocabulary is not None
    vocab_tokens = _vocabulary_tokens(feat)
    base = _ngram_base(feat)
    dropped = sorted({PAD, *feat.stop_words})
    ids = g.node(
        "LabelEncoder",
        [tokens],
        domain=_ML,
        keys_strings=dropped + vocab_tokens,
        values_int64s=[-2] * len(dropped) + list(range(len(vocab_tokens))),
        default_int64=-1,
    )
    lo, hi = feat.ngram_range
    if hi > 1 and feat.stop_words:
        idx = _kept_first(g, g.node("Equal", [ids, _s64(g, -2)]))
        ids = g.node("GatherElements", [ids, idx], axis=1)
    keys, valid = [], []
    for n in range(lo, hi + 1):
        key, ok = None, None
        for k in range(n):
            end = -(n - 1 - k) if k < n - 1 else np.iinfo(np.int64).max
            part = g.node("Slice", [ids, _i64(g, k), _i64(g, end), _i64(g, 1)])
            digit = g.node("Add", [part, _s64(g, 1)])
            good = g.node("Greater", [digit, _s64(g, 0)])
            if key is None:
                key, ok = digit, good
            else:
                scaled = g.node("Mul", [key, _s64(g, base)])
                key, ok = g.node("Add", [scaled, digit]), g.node("And", [ok, good])
        keys.append(key)
        valid.append(ok)
    key = keys[0] if len(keys) == 1 else g.node("Concat", keys, axis=1)
    ok = valid[0] if len(valid) == 1 else g.node("Concat", valid, axis=1)
    token_id = {t: i for i, t in enumerate(vocab_tokens)}
    table = {}
    for term, col in feat.vocabulary.items():
        term_key = _term_key(term, token_id, base)
        if term_key is not None:
            table[term_key] = col
    cols = g.node(
        "LabelEncoder",
        [key],
        domain=_ML,
        keys_int64s=list(table),
        values_int64s=list(table.values()),
        default_int64=-1,
    )
    hit = g.node("GreaterOrEqual", [cols, _s64(g, 0)])
    return cols, g.node("And", [ok, hit])


def _term_key(term: str, token_id: dict[str, int], base: int) -> int | None:
    """The n-gram key of a vocabulary term (digits: token id + 1), None for a term no
    document can produce (a stop word in it, an empty token)."""
    key = 0
    for tok in term.split(" "):
        idx = token_id.get(tok)
        if idx is None:
            return None
        key = key * base + idx + 1
    return key


def _const(g: Graph, name: str, value: object) -> str:
    """An initializer shared by every node that needs it (added once)."""
    if not any(t.name == name for t in g.initializers):
        g.const(name, np.asarray(value))
    return name


def _i64(g: Graph, v: int) -> str:
    """A one-element int64 tensor (Slice bounds, axes)."""
    return _const(g, f"i64_{v}".replace("-", "m"), np.array([v], dtype=np.int64))


def _s64(g: Graph, v: int) -> str:
    """An int64 scalar."""
    return _const(g, f"s64_{v}".replace("-", "m"), np.array(v, dtype=np.int64))


def _kept_first(g: Graph, dropped: str) -> str:
    """Per row, the positions of the kept tokens in order, then the dropped ones (stop words,
    padding): scikit-learn forms n-grams after removing stop words."""
    width = g.node("Gather", [g.node("Shape", [dropped]), _s64(g, 1)], axis=0)
    pos = g.node("Range", [_s64(g, 0), width, _s64(g, 1)])
    # Kept tokens sort by position, dropped ones after every kept one (Where broadcasts).
    order_key = g.node("Where", [dropped, g.node("Add", [pos, width]), pos])
    k = g.node("Unsqueeze", [width, _i64(g, 0)])
    _, idx = g.node("TopK", [order_key, k], n_outputs=2, axis=1, largest=0, sorted=1)
    return idx


def _summed(
    g: Graph, feat: TextFeaturizer, cols: str, signs: str | None, keep: str
) -> tuple[str, str, str]:
    """Terms -> the rows' sorted, summed (row, column, value) triples, then binary, norm and
    tf-idf in float64, as :func:`edgesparse.runtime.text.featurize`."""
    flat = _i64(g, -1)
    n_docs = g.node("Shape", [DOCUMENTS])
    width = g.node("Slice", [g.node("Shape", [cols]), _i64(g, 1), _i64(g, 2)])
    rows = g.node("Range", [_s64(g, 0), g.node("Squeeze", [n_docs]), _s64(g, 1)])
    shape = g.node("Concat", [n_docs, width], axis=0)
    rows = g.node("Expand", [g.node("Unsqueeze", [rows, _i64(g, 1)]), shape])
    mask = g.node("Reshape", [keep, flat])
    nf = _s64(g, feat.n_features)
    key = g.node("Add", [g.node("Mul", [rows, nf]), cols])
    key = g.node("Compress", [g.node("Reshape", [key, flat]), mask], axis=0)
    uniq, _, inverse, counts = g.node("Unique", [key], n_outputs=4, sorted=1)
    if feat.binary or signs is None:
        data = g.node("Cast", [counts], to=TensorProto.DOUBLE)
        if feat.binary:
            data = g.node("Div", [data, data])  # every hit column is 1 (counts are >= 1)
    else:
        sign = g.node("Compress", [g.node("Reshape", [signs, flat]), mask], axis=0)
        zeros = g.node("ConstantOfShape", [g.node("Shape", [uniq])], value=_f64(0.0))
        data = g.node("ScatterElements", [zeros, inverse, sign], axis=0, reduction="add")
    r, c = g.node("Div", [uniq, nf]), g.node("Mod", [uniq, nf])
    data = _normalized(g, data, r, n_docs, feat.norm)
    if feat.tfidf is not None:
        if feat.tfidf.sublinear_tf:
            data = g.node("Add", [g.node("Log", [data]), _const(g, "one_d", np.array(1.0))])
        if feat.tfidf.idf is not None:
            idf = g.const("idf", feat.tfidf.idf.astype(np.float64))
            data = g.node("Mul", [data, g.node("Gather", [idf, c], axis=0)])
        data = _normalized(g, data, r, n_docs, feat.tfidf.norm)
    return r, c, data


def _normalized(g: Graph, data: str, rows: str, n_docs: str, norm: str | None) -> str:
    """Each row divided by its l1 or l2 norm (all-zero rows stay), float64."""
    if norm is None:
        return data
    per = g.node("Abs", [data]) if norm == "l1" else g.node("Mul", [data, data])
    zeros = g.node("ConstantOfShape", [n_docs], value=_f64(0.0))
    sums = g.node("ScatterElements", [zeros, rows, per], axis=0, reduction="add")
    if norm == "l2":
        sums = g.node("Sqrt", [sums])
    zero = g.node("Equal", [sums, _const(g, "zero_d", np.array(0.0))])
    sums = g.node("Where", [zero, _const(g, "one_d", np.array(1.0)), sums])
    return g.node("Div", [data, g.node("Gather", [sums, rows], axis=0)])


def _f64(value: float) -> object:
    return helper.make_tensor("value", TensorProto.DOUBLE, [1], [value])
