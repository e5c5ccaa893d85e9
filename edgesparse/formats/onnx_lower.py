"""Python's ``str.lower`` in ONNX (opset >= 20): what ``StringNormalizer`` gets wrong, fixed
before it runs.

``StringNormalizer(LOWER, locale="C.UTF-8")`` equals ``str.lower`` on every code point but two
(measured: :mod:`edgesparse.formats.onnx_text`): U+0130 ``İ`` (Python: ``i`` + U+0307) and
the capital sigma U+03A3, which Python lowers by context (CPython's ``handle_capital_sigma``:
the final ``ς`` when a cased letter precedes it, skipping case-ignorable characters, and none
follows it, skipping them too; else the medial U+03C3). Both are replaced in the original
text first, with the default-domain string ops of opset 20::

    StringSplit(doc, "Σ") -> pieces [N, K], count [N]
    RegexFullMatch on the pieces either side of each sigma (classes of the cased and
        case-ignorable code points, read off this Python's own str.lower)
    -> final or medial sigma between pieces; Loop(StringConcat of neighbours) joins them
    StringSplit(doc, "İ") ... joined with "i" + U+0307

after which ``StringNormalizer`` changes nothing it would get wrong (both sigmas, ``i`` and
U+0307 are their own lowercase). The join halves the row each ``Loop`` iteration, so a
document with ``k`` sigmas costs ``O(length * log k)``.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgesparse.formats.onnx_graph import Graph

__all__ = ["LOWER_MIN_OPSET", "case_classes", "python_lower"]

LOWER_MIN_OPSET = 20
"""``StringSplit``, ``RegexFullMatch`` and ``StringConcat`` are opset 20."""

_SIGMA, _FINAL, _MEDIAL = "\u03a3", "\u03c2", "\u03c3"
_DOTTED_I, _DOTTED_I_LOWER = "\u0130", "i\u0307"


def _ranges(flags: np.ndarray) -> str:
    """An RE2 class body of the code points where ``flags`` is set."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return "".join(
        f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}"
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    )


@functools.cache
def case_classes() -> tuple[str, str]:
    """RE2 classes of the code points CPython's final-sigma rule skips (case-ignorable) and
    of those it stops at as cased (cased and not case-ignorable), probed through this
    Python's own ``str.lower``."""
    n = 0x110000
    ignorable = np.zeros(n, dtype=bool)
    cased = np.zeros(n, dtype=bool)
    for c in range(n):
        if 0xD800 <= c < 0xE000:
            continue
        ch = chr(c)
        is_cased = ch.islower() or ch.isupper() or ch.istitle()
        # A sigma after a cased letter is final when only case-ignorable characters follow;
        # between a cased letter and a sigma they are skipped.
        if is_cased:
            ignorable[c] = ("\u0391" + _SIGMA + ch).lower()[1] == _FINAL
        else:
            ignorable[c] = ("\u0391" + ch + _SIGMA).lower()[-1] == _FINAL
        cased[c] = is_cased and not ignorable[c]
    return "[" + _ranges(ignorable) + "]", "[" + _ranges(cased) + "]"


def python_lower(g: Graph, docs: str) -> str:
    """Add the nodes that replace ``Σ`` and ``İ`` in ``docs`` (string [N]) by what
    ``str.lower`` makes of them; return the name of the result (string [N]), ready for
    ``StringNormalizer``."""
    ignorable, cased = case_classes()
    pieces, count = g.node("StringSplit", [docs], n_outputs=2, delimiter=_SIGMA)
    lo, hi = _c(g, "low_i64_0", np.array([0], np.int64)), _c(g, "low_i64_m1", np.array([-1]))
    one, big = _c(g, "low_i64_1", np.array([1], np.int64)), _c(g, "low_big", np.array([2**62]))
    axis1 = _c(g, "low_axis1", np.array([1], np.int64))
    before = g.node("Slice", [pieces, lo, hi, axis1])
    after = g.node("Slice", [pieces, one, big, axis1])
    only_ignorable = f"{ignorable}*"
    # Column j is the sigma between pieces j and j + 1.
    width = g.node("Shape", [before], start=1, end=2)
    j = g.node("Range", [_s(g, 0), g.node("Squeeze", [width]), _s(g, 1)])
    sigmas = g.node("Sub", [g.node("Unsqueeze", [count, axis1]), _s(g, 1)])  # per row
    prev_cased = g.node(
        "Or",
        [
            g.node("RegexFullMatch", [before], pattern=f"(?s).*{cased}{ignorable}*"),
            g.node(
                "And",
                [
                    g.node("RegexFullMatch", [before], pattern=only_ignorable),
                    g.node("GreaterOrEqual", [j, _s(g, 1)]),  # a sigma before: cased
                ],
            ),
        ],
    )
    next_cased = g.node(
        "Or",
        [
            g.node("RegexFullMatch", [after], pattern=f"{ignorable}*{cased}(?s).*"),
            g.node(
                "And",
                [
                    g.node("RegexFullMatch", [after], pattern=only_ignorable),
                    g.node("Less", [g.node("Add", [j, _s(g, 1)]), sigmas]),  # a sigma after
                ],
            ),
        ],
    )
    final = g.node("And", [prev_cased, g.node("Not", [next_cased])])
    letter = g.node("Where", [final, _str(g, _FINAL), _str(g, _MEDIAL)])
    seps = g.node("Where", [g.node("Less", [j, sigmas]), letter, _str(g, "")])
    docs = _joined(g, pieces, seps)
    pieces, count = g.node("StringSplit", [docs], n_outputs=2, delimiter=_DOTTED_I)
    before = g.node("Slice", [pieces, lo, hi, axis1])
    width = g.node("Shape", [before], start=1, end=2)
    j = g.node("Range", [_s(g, 0), g.node("Squeeze", [width]), _s(g, 1)])
    sigmas = g.node("Sub", [g.node("Unsqueeze", [count, axis1]), _s(g, 1)])
    seps = g.node("Where", [g.node("Less", [j, sigmas]), _str(g, _DOTTED_I_LOWER), _str(g, "")])
    return _joined(g, pieces, seps)


def _joined(g: Graph, pieces: str, seps: str) -> str:
    """Row-wise ``p0 + s0 + p1 + s1 + ...`` of ``pieces`` [N, K] and ``seps`` [N, K - 1]."""
    n = g.node("Shape", [pieces], start=0, end=1)
    empty_col = g.node(
        "Expand",
        [
            _c(g, "low_empty", np.array([[""]], dtype=object)),
            g.node("Concat", [n, _c(g, "low_i64_1", np.array([1]))], axis=0),
        ],
    )
    padded = g.node("Concat", [seps, empty_col], axis=1)  # [N, K]
    axis2 = _c(g, "low_axis2", np.array([2], np.int64))
    pairs = g.node(
        "Concat",
        [g.node("Unsqueeze", [pieces, axis2]), g.node("Unsqueeze", [padded, axis2])],
        axis=2,
    )
    flat = g.node("Reshape", [pairs, _c(g, "low_shape2", np.array([0, -1], np.int64))])
    flat = g.node("Concat", [flat, empty_col], axis=1)  # never empty, even when K = 0
    trips = _c(g, "low_trips", np.array(64, dtype=np.int64))  # halvings: 2^64 cells at most
    joined = g.node("Loop", [trips, "", flat], body=_halving_body())
    return g.node("Squeeze", [joined, _c(g, "low_axis1", np.array([1], np.int64))])


@functools.cache
def _halving_body() -> onnx.GraphProto:
    """Loop body: a string [N, W] row pairs up its neighbours (``StringConcat``; an odd last
    cell with ``""``) into [N, ceil(W / 2)], and stops once one column is left."""

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(value, name)

    nodes = [
        helper.make_node("Shape", ["s"], ["n1"], start=0, end=1),
        helper.make_node("Shape", ["s"], ["w1"], start=1, end=2),
        helper.make_node("Mod", ["w1", "two"], ["odd1"]),
        helper.make_node("Concat", ["n1", "odd1"], ["pad_shape"], axis=0),
        helper.make_node("Expand", ["empty", "pad_shape"], ["pad"]),
        helper.make_node("Concat", ["s", "pad"], ["even"], axis=1),
        helper.make_node("Reshape", ["even", "shape3"], ["pairs"]),
        helper.make_node("Gather", ["pairs", "zero"], ["left"], axis=2),
        helper.make_node("Gather", ["pairs", "one"], ["right"], axis=2),
        helper.make_node("StringConcat", ["left", "right"], ["s_out"]),
        helper.make_node("Shape", ["s_out"], ["w2"], start=1, end=2),
        helper.make_node("Greater", ["w2", "one1"], ["more"]),
        helper.make_node("Squeeze", ["more"], ["cond_out"]),
    ]
    string = lambda name: helper.make_tensor_value_info(name, TensorProto.STRING, ["N", None])  # noqa: E731
    body = helper.make_graph(
        nodes,
        "halve",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            string("s"),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), string("s_out")],
        initializer=[
            const("two", np.array([2], np.int64)),
            const("one1", np.array([1], np.int64)),
            const("zero", np.array(0, np.int64)),
            const("one", np.array(1, np.int64)),
            const("empty", np.array([[""]], dtype=object)),
            const("shape3", np.array([0, -1, 2], np.int64)),
        ],
    )
    return _prefixed(body, "halve_")


def _prefixed(body: onnx.GraphProto, prefix: str) -> onnx.GraphProto:
    """``body`` with every name it defines prefixed: a subgraph may not redefine a name of an
    enclosing graph (ONNX's SSA rule), and the linear head has its own ``one`` and ``zero``."""
    out = onnx.GraphProto()
    out.CopyFrom(body)
    defined = {v.name for v in out.input} | {t.name for t in out.initializer}
    defined |= {o for n in out.node for o in n.output}
    rename = {name: prefix + name for name in defined if name}
    for v in (*out.input, *out.output):
        v.name = rename.get(v.name, v.name)
    for t in out.initializer:
        t.name = rename[t.name]
    for n in out.node:
        n.input[:] = [rename.get(x, x) for x in n.input]
        n.output[:] = [rename.get(x, x) for x in n.output]
    return out


def _c(g: Graph, name: str, value: np.ndarray) -> str:
    """An initializer shared by every node that needs it (added once)."""
    if not any(t.name == name for t in g.initializers):
        g.const(name, np.asarray(value))
    return name


def _s(g: Graph, v: int) -> str:
    return _c(g, f"low_s{v}", np.array(v, dtype=np.int64))


def _str(g: Graph, text: str) -> str:
    return _c(g, f"low_str{len(text)}_{ord(text[0]) if text else 0}", np.array(text, dtype=object))
