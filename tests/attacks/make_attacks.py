"""Write the hostile model files that tests/test_attacks.py feeds to edgesparse.

Every fixture is built here from readable parts (hand-assembled pickle opcodes, or pickles of
small objects), deterministically: the same canary folder gives byte-identical files. Nothing
opaque is committed; the test session generates the files into a temporary folder.

    python tests/attacks/make_attacks.py OUT_DIR [--canary-dir DIR]

writes one file per attack plus ``manifest.json`` (name, file, what it tries, the error class
and a fragment of the message edgesparse must answer with). A payload that ran would create
``CANARY_DIR/<name>``; the tests check that no such file exists afterwards.

Sources of the attack ideas: the pickle-scanner bypasses published against picklescan,
fickling, modelscan and torch ``weights_only`` (``runpy``, ``pty``, ``timeit``, ``cProfile``,
``pdb``, ``numpy.testing`` ``runstring``, ``operator`` getters, ``pickle.loads`` nesting,
dotted ``STACK_GLOBAL`` names, the copyreg extension registry) and the joblib/numpy advisories
(object arrays, declared array sizes, decompression bombs).
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import struct
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Refusal texts (fragments of the one-line messages; the full path is added at run time).
REFUSED = "which is not on edgesparse's allow-list"
STREAM_BUDGET = (
    "its pickle data runs past 100663296 bytes, more than a model within the array cap holds "
    "(67108864 bytes of arrays plus 33554432 for the pickle itself); if you trust the file, "
    "raise the limit with EDGESPARSE_MAX_ARRAY_BYTES=<bytes>"
)


@dataclass(frozen=True)
class Attack:
    """One hostile file and the answer edgesparse must give."""

    name: str
    suffix: str
    what: str  # the technique, for humans
    error: str  # the exception class name edgesparse must raise
    message: str  # a fragment of its message
    make: Callable[[], bytes] = field(repr=False, compare=False, default=bytes)
    # the fragment when the file is run alone with the default caps (RESOURCE_BOMBS), if other
    alone: str = ""

    @property
    def data(self) -> bytes:
        """The file's bytes (built on demand: the bombs take a moment to compress)."""
        return self.make()

    def manifest(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("make", "alone")}
        d["file"] = f"{self.name}{self.suffix}"
        return d


# ---------------------------------------------------------------------------------------------
# A tiny pickle assembler (names follow pickletools)
# ---------------------------------------------------------------------------------------------
MARK, STOP, TUPLE, REDUCE, BUILD, LIST, APPEND, APPENDS = (
    b"(",
    b".",
    b"t",
    b"R",
    b"b",
    b"l",
    b"a",
    b"e",
)
NONE, EMPTY_DICT, EMPTY_LIST, NEWOBJ, MEMOIZE, STACK_GLOBAL = (
    b"N",
    b"}",
    b"]",
    b"\x81",
    b"\x94",
    b"\x93",
)
POP_MARK = b"1"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def s(text: str) -> bytes:
    """BINUNICODE (any protocol >= 1)."""
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def b(raw: bytes) -> bytes:
    """BINBYTES (protocol 3+) / BINBYTES8 for huge declared sizes."""
    return b"B" + struct.pack("<I", len(raw)) + raw


def i(n: int) -> bytes:
    """An int: BININT for 32-bit values, LONG1 otherwise."""
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def glob(module: str, name: str) -> bytes:
    """GLOBAL opcode: module and name as text lines."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sglob(module: str, name: str) -> bytes:
    """STACK_GLOBAL: module and name pushed as strings first (protocol 4+)."""
    return s(module) + s(name) + STACK_GLOBAL


def tup(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def lst(*items: bytes) -> bytes:
    return MARK + b"".join(items) + LIST


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + REDUCE


def p2(body: bytes) -> bytes:
    return proto(2) + body + STOP


def p4(body: bytes) -> bytes:
    return proto(4) + body + STOP


def p5(body: bytes) -> bytes:
    return proto(5) + body + STOP


class _Reduce:
    """Pickles as ``func(*args)``: what a hostile object looks like to ``pickle.dumps``."""

    def __init__(self, func: Callable, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


# ---------------------------------------------------------------------------------------------
# Helpers for joblib streams
# ---------------------------------------------------------------------------------------------
def joblib_dumps(obj: object, compress: object = 0) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf, compress=compress)
    return buf.getvalue()


def joblib_compress(stream: bytes, method: str, chunks: int = 1) -> bytes:
    """``stream`` (repeated ``chunks`` times) through joblib's own compressor file objects."""
    from joblib.compressor import _COMPRESSORS

    buf = io.BytesIO()
    with _COMPRESSORS[method].compressor_file(buf, compresslevel=1) as fh:
        for _ in range(chunks):
            fh.write(stream)
    return buf.getvalue()


def estimator(**attrs: object) -> object:
    """A LogisticRegression with the given fitted attributes (no fitting: exact bytes)."""
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression()
    base = {
        "coef_": np.array([[1.0, -2.0, 0.5]]),
        "intercept_": np.array([0.25]),
        "classes_": np.array([0, 1]),
        "n_features_in_": 3,
        "n_iter_": np.array([7], dtype=np.int32),
    }
    for k, v in {**base, **attrs}.items():
        setattr(est, k, v)
    return est


# ---------------------------------------------------------------------------------------------
# The attacks
# ---------------------------------------------------------------------------------------------
def attacks(canary_dir: str | Path) -> list[Attack]:
    """Every hostile fixture, built for canaries in ``canary_dir``."""
    canary_dir = str(canary_dir)
    out: list[Attack] = []

    def add(
        name: str,
        what: str,
        data: bytes | Callable[[], bytes],
        *,
        error: str = "UnsafeModelError",
        message: str = "",
        suffix: str = ".pkl",
        alone: str = "",
    ) -> None:
        make = data if callable(data) else (lambda: data)
        out.append(Attack(name, suffix, what, error, message, make, alone))

    def canary(name: str) -> str:
        return f"{canary_dir}/{name}"

    def sh(name: str) -> str:
        return f"touch {canary(name)}"

    def py(name: str) -> str:
        return f"open({canary(name)!r}, 'w').close()"

    def refuses(target: str) -> str:
        return f"it references {target}, {REFUSED}"

    # -- direct calls of dangerous callables ------------------------------------------------------
    for name, mod, fn, arg in [
        ("os-system", "os", "system", lambda n: s(sh(n))),
        ("posix-system", "posix", "system", lambda n: s(sh(n))),
        ("nt-system", "nt", "system", lambda n: s(sh(n))),
        ("os-popen", "os", "popen", lambda n: s(sh(n))),
        ("os-execv", "os", "execv", lambda n: s("/bin/sh") + lst(s("sh"), s("-c"), s(sh(n)))),
        ("subprocess-popen", "subprocess", "Popen", lambda n: lst(s("touch"), s(canary(n)))),
        (
            "subprocess-check-output",
            "subprocess",
            "check_output",
            lambda n: lst(s("touch"), s(canary(n))),
        ),
        ("subprocess-getoutput", "subprocess", "getoutput", lambda n: s(sh(n))),
        (
            "posixsubprocess-fork-exec",
            "_posixsubprocess",
            "fork_exec",
            lambda n: lst(s("touch"), s(canary(n))),
        ),
        ("builtins-eval", "builtins", "eval", lambda n: s(py(n))),
        ("builtins-exec", "builtins", "exec", lambda n: s(py(n))),
        ("builtins-open", "builtins", "open", lambda n: s(canary(n)) + s("w")),
        ("py2-builtin-eval", "__builtin__", "eval", lambda n: s(py(n))),
        ("runpy-run-code", "runpy", "_run_code", lambda n: s(py(n)) + EMPTY_DICT),
        ("pty-spawn", "pty", "spawn", lambda n: lst(s("touch"), s(canary(n)))),
        ("timeit-timeit", "timeit", "timeit", lambda n: s(py(n))),
        ("cprofile-run", "cProfile", "run", lambda n: s(py(n))),
        ("pdb-run", "pdb", "run", lambda n: s(py(n))),
        (
            "numpy-testing-runstring",
            "numpy.testing._private.utils",
            "runstring",
            lambda n: s(py(n)) + EMPTY_DICT,
        ),
        ("shutil-copyfile", "shutil", "copyfile", lambda n: s("/dev/null") + s(canary(n))),
        ("pip-main", "pip._internal", "main", lambda n: lst(s("download"), s(canary(n)))),
    ]:
        add(
            name,
            f"{mod}.{fn}(...) via GLOBAL + REDUCE",
            p2(call(glob(mod, fn), arg(name))),
            message=refuses(f"{mod}.{fn}"),
        )

    # -- chains whose first step is a harmless-looking builtin / getter ---------------------------
    n = "getattr-import-chain"
    chain = call(
        call(
            glob("builtins", "getattr"), call(glob("builtins", "__import__"), s("os")), s("system")
        ),
        s(sh(n)),
    )
    add(
        n,
        "getattr(__import__('os'), 'system')(cmd)",
        p2(chain),
        message=refuses("builtins.getattr"),
    )
    n = "import-then-getattr"
    add(
        n,
        "__import__('os') first, then getattr",
        p2(
            call(glob("builtins", "__import__"), s("os"))
            + b"0"
            + call(
                call(
                    glob("builtins", "getattr"),
                    call(glob("builtins", "__import__"), s("os")),
                    s("system"),
                ),
                s(sh(n)),
            )
        ),
        message=refuses("builtins.__import__"),
    )
    n = "importlib-import-module"
    add(
        n,
        "importlib.import_module('os').system via getattr",
        p2(
            call(
                call(
                    glob("builtins", "getattr"),
                    call(glob("importlib", "import_module"), s("os")),
                    s("system"),
                ),
                s(sh(n)),
            )
        ),
        message=refuses("builtins.getattr"),
    )
    n = "importlib-first"
    add(
        n,
        "importlib.import_module as the outermost global",
        p4(call(glob("importlib", "import_module"), s("os"))),
        message=refuses("importlib.import_module"),
    )
    n = "operator-attrgetter"
    add(
        n,
        "operator.attrgetter('system')(os)(cmd)",
        p2(
            call(
                call(
                    call(glob("operator", "attrgetter"), s("system")),
                    call(glob("importlib", "import_module"), s("os")),
                ),
                s(sh(n)),
            )
        ),
        message=refuses("operator.attrgetter"),
    )
    n = "operator-methodcaller"
    add(
        n,
        "operator.methodcaller('system', cmd)(os)",
        p2(
            call(
                call(glob("operator", "methodcaller"), s("system"), s(sh(n))),
                call(glob("importlib", "import_module"), s("os")),
            )
        ),
        message=refuses("operator.methodcaller"),
    )
    n = "operator-itemgetter"
    add(
        n,
        "operator.itemgetter('system')(vars(os))(cmd)",
        p2(
            call(
                call(
                    call(glob("operator", "itemgetter"), s("system")),
                    call(
                        glob("builtins", "vars"), call(glob("importlib", "import_module"), s("os"))
                    ),
                ),
                s(sh(n)),
            )
        ),
        message=refuses("operator.itemgetter"),
    )
    n = "ctypes-cdll"
    add(
        n,
        "ctypes.CDLL(None).system(cmd)",
        p2(
            call(
                call(glob("builtins", "getattr"), call(glob("ctypes", "CDLL"), NONE), s("system")),
                b(sh(n).encode()),
            )
        ),
        message=refuses("builtins.getattr"),
    )
    n = "ctypes-first"
    add(
        n,
        "ctypes.CDLL as the outermost global",
        p4(call(glob("ctypes", "CDLL"), NONE)),
        message=refuses("ctypes.CDLL"),
    )
    n = "sys-modules"
    add(
        n,
        "sys.modules['os'] via the module table",
        p2(glob("sys", "modules")),
        message=refuses("sys.modules"),
    )

    # -- pickles nested in pickles ---------------------------------------------------------------
    inner = p2(call(glob("os", "system"), s(sh("pickle-loads-nested"))))
    add(
        "pickle-loads-nested",
        "pickle.loads(bytes of an os.system pickle)",
        proto(3) + call(glob("pickle", "loads"), b(inner)) + STOP,
        message=refuses("pickle.loads"),
    )
    inner = p2(call(glob("os", "system"), s(sh("cpickle-loads-nested"))))
    add(
        "cpickle-loads-nested",
        "_pickle.loads(bytes of an os.system pickle)",
        proto(3) + call(glob("_pickle", "loads"), b(inner)) + STOP,
        message=refuses("_pickle.loads"),
    )

    # -- obfuscated opcodes ----------------------------------------------------------------------
    n = "stack-global-memoized"
    add(
        n,
        "STACK_GLOBAL whose strings come from the memo (BINGET)",
        p4(
            s("posix")
            + MEMOIZE
            + s("system")
            + MEMOIZE
            + s("unused")
            + b"0"
            + b"h\x00h\x01"
            + STACK_GLOBAL
            + tup(s(sh(n)))
            + REDUCE
        ),
        message=refuses("posix.system"),
    )
    n = "stack-global-dotted"
    add(
        n,
        "STACK_GLOBAL with a dotted name walking from an allowed global",
        p4(sglob("numpy.random._pickle", "__randomstate_ctor.__globals__")),
        message=refuses("numpy.random._pickle.__randomstate_ctor.__globals__"),
    )
    n = "global-dotted-name"
    add(
        n,
        "GLOBAL with a dotted name on an allowed class",
        p2(call(glob("sklearn.linear_model._logistic", "LogisticRegression.__init__.__globals__"))),
        message=refuses("sklearn.linear_model._logistic.LogisticRegression.__init__.__globals__"),
    )
    n = "global-dotted-module"
    add(
        n,
        "GLOBAL module 'os.path', name 'os' (os.path.os is os)",
        p2(glob("os.path", "os")),
        message=refuses("os.path.os"),
    )
    n = "global-numpy-attribute"
    add(
        n,
        "GLOBAL numpy.sys: a module reached through an allowed package",
        p2(glob("numpy", "sys")),
        message=refuses("numpy.sys"),
    )
    n = "global-nul-in-name"
    add(
        n,
        "GLOBAL with a NUL byte inside the module name",
        p2(glob("numpy\x00os", "system")),
        message="which is not on edgesparse's allow-list",
    )
    n = "inst-opcode"
    add(
        n,
        "INST (protocol 0 opcode inside a protocol 2 pickle)",
        proto(2) + MARK + s(sh(n)) + b"ios\nsystem\n" + STOP,
        message=refuses("os.system"),
    )
    n = "obj-opcode"
    add(
        n,
        "OBJ with os.system as the class",
        proto(2) + MARK + glob("os", "system") + s(sh(n)) + b"o" + STOP,
        message=refuses("os.system"),
    )
    n = "newobj-popen"
    add(
        n,
        "NEWOBJ on subprocess.Popen",
        p2(glob("subprocess", "Popen") + tup(lst(s("touch"), s(canary(n)))) + NEWOBJ),
        message=refuses("subprocess.Popen"),
    )
    for op, code in (
        ("ext1", b"\x82\x7b"),
        ("ext2", b"\x83\x34\x12"),
        ("ext4", b"\x84\x78\x56\x34\x12"),
    ):
        n = f"copyreg-{op}"
        # the test harness registers os.system under these codes first, as an attacker who
        # controls an imported module could
        add(
            n,
            f"{op.upper()} opcode: a global from copyreg's extension registry",
            p2(code + tup(s(sh(n))) + REDUCE),
            message="the copyreg extension registry",
        )
    n = "persistent-id"
    add(
        n,
        "PERSID: a persistent id handed to persistent_load",
        proto(2) + b"Pos.system\n" + STOP,
        message="a persistent id",
    )
    n = "binpersid"
    add(
        n,
        "BINPERSID with a tuple id",
        p2(tup(s("os"), s("system")) + b"Q"),
        message="a persistent id",
    )
    n = "protocol-0"
    add(
        n,
        "protocol 0 text pickle of os.system",
        f"cos\nsystem\n(S'{sh(n)}'\ntR.".encode(),
        error="ModelFileError",
        message="does not start like a pickle of protocol 2",
    )
    n = "out-of-band-buffer"
    add(
        n,
        "protocol 5 NEXT_BUFFER with no buffers given",
        proto(5) + b"\x97" + STOP,
        error="ModelFileError",
        message="not a valid pickle/joblib file",
    )
    n = "stack-global-bytes"
    add(
        n,
        "STACK_GLOBAL with bytes instead of str",
        proto(4) + b(b"os") + b(b"system") + STACK_GLOBAL + STOP,
        error="ModelFileError",
        # our sentence; the cause after it is CPython's wording ("STACK_GLOBAL requires str")
        message="not a valid pickle/joblib file",
    )
    n = "second-pickle-after-stop"
    add(
        n,
        "a valid model, then a second pickle that calls os.system",
        lambda n=n: (
            pickle.dumps(estimator(), protocol=4) + p2(call(glob("os", "system"), s(sh(n))))
        ),
        error="ModelFileError",
        message="the file goes on after the end of its pickle (two files joined, or a damaged one)",
    )

    # -- allowed classes carrying hostile state ----------------------------------------------------
    n = "state-with-os-system"
    add(
        n,
        "an allowed LogisticRegression whose __dict__ holds an os.system reduce",
        lambda n=n: pickle.dumps(estimator(note_=_Reduce(_os_system(), (sh(n),))), protocol=4),
        message="system, which is not",
    )
    n = "numpy-ndarray-constructor"
    add(
        n,
        "numpy.ndarray((2**40,)) called directly: a 8 TiB allocation",
        p2(call(glob("numpy", "ndarray"), tup(i(2**40)))),
        message="numpy.ndarray called as a constructor",
    )
    n = "numpy-ndarray-newobj"
    add(
        n,
        "NEWOBJ numpy.ndarray with a 2**35 shape",
        p2(glob("numpy", "ndarray") + tup(tup(i(2**35))) + NEWOBJ),
        message="numpy.ndarray called as a constructor",
    )
    n = "numpy-reconstruct-huge"
    add(
        n,
        "numpy _reconstruct(ndarray, (2**40,), 'b'): numpy would allocate the shape",
        p2(
            call(
                glob("numpy.core.multiarray", "_reconstruct"),
                glob("numpy", "ndarray"),
                tup(i(2**40)),
                s("b"),
            )
        ),
        error="ModelFileError",
        message="it rebuilds a numpy array with arguments numpy never writes",
    )
    n = "coef-object-array"
    add(
        n,
        "coef_ an object array (of floats) in a plain pickle",
        lambda n=n: pickle.dumps(
            estimator(coef_=np.array([[1.0, 2.0, 3.0]], dtype=object)), protocol=4
        ),
        error="UnsupportedModelError",
        message="coef_ has dtype object",
    )
    n = "coef-object-array-joblib"
    add(
        n,
        "coef_ an object array in a joblib file (nested pickle path)",
        lambda n=n: joblib_dumps(estimator(coef_=np.array([[1.0, 2.0, 3.0]], dtype=object))),
        error="UnsupportedModelError",
        message="coef_ has dtype object",
    )
    n = "coef-3d"
    add(
        n,
        "coef_ with a 3-D shape",
        lambda n=n: pickle.dumps(estimator(coef_=np.ones((1, 3, 1))), 4),
        error="UnsupportedModelError",
        message="coef_ has shape (1, 3, 1)",
    )
    n = "coef-nan"
    add(
        n,
        "coef_ holding NaN",
        lambda n=n: pickle.dumps(estimator(coef_=np.array([[1.0, np.nan, 0]])), 4),
        error="IRError",
        message="coef_ contains NaN or Inf",
    )
    n = "coef-inf"
    add(
        n,
        "coef_ holding -Inf",
        lambda n=n: joblib_dumps(estimator(coef_=np.array([[1.0, -np.inf, 0]]))),
        error="IRError",
        message="coef_ contains NaN or Inf",
    )
    n = "intercept-wrong-length"
    add(
        n,
        "intercept_ with 4 entries for 1 output row",
        lambda n=n: pickle.dumps(estimator(intercept_=np.zeros(4)), 4),
        error="UnsupportedModelError",
        message="intercept_ has 4 entries but coef_ has 1 row",
    )
    n = "n-features-mismatch"
    add(
        n,
        "n_features_in_ disagreeing with coef_",
        lambda n=n: pickle.dumps(estimator(n_features_in_=99), 4),
        error="UnsupportedModelError",
        message="n_features_in_ is 99 but coef_ has 3 columns",
    )
    n = "sparse-coef-bad-indices"
    add(
        n,
        "a .sparsify()-style CSR coef_ whose indices point outside the matrix",
        lambda n=n: pickle.dumps(estimator(coef_=_bad_csr()), 4),
        error="ModelFileError",
        # our sentence; scipy's exception class and text in the parentheses vary by version
        message="a sparse matrix in it is inconsistent (",
    )
    n = "joblib-object-array-os-system"
    add(
        n,
        "joblib object array whose nested pickle calls os.system",
        lambda n=n: joblib_dumps(np.array([_Reduce(_os_system(), (sh(n),)), 1], dtype=object)),
        message="system, which is not",
    )
    n = "joblib-object-array-pickle-loads"
    add(
        n,
        "joblib object array whose nested pickle calls pickle.loads",
        lambda inner=inner: joblib_dumps(
            np.array([_Reduce(pickle.loads, (inner,)), 1], dtype=object)
        ),
        message="pickle.loads",
    )
    n = "joblib-array-huge-declared"
    add(
        n,
        "joblib array header declaring 2**40 float64 in a 200-byte file",
        lambda n=n: _joblib_wrapper_stream((2**40,)),
        error="ModelFileError",
        message="the file is truncated: a joblib array declares 8796093022208 bytes",
    )
    n = "joblib-array-negative-shape"
    add(
        n,
        "joblib array header with a negative dimension",
        lambda n=n: _joblib_wrapper_stream((-1,)),
        error="ModelFileError",
        message="it holds a joblib array header joblib never writes",
    )

    # -- memo and recursion bombs ----------------------------------------------------------------
    add(
        "memo-huge-get",
        "LONG_BINGET 0xFFFFFFFF: a memo index nothing was stored at",
        p2(b"j\xff\xff\xff\xff"),
        error="ModelFileError",
        message="not a valid pickle/joblib",
    )
    add(
        "memo-huge-put",
        "LONG_BINPUT at index 2**32-1 (a C unpickler would size its memo table)",
        p2(NONE + b"r\xff\xff\xff\xff" + b"j\xff\xff\xff\xff"),
        error="UnsupportedModelError",
        message="NoneType is not supported",
    )
    depth = 200_000
    add(
        "deep-nested-lists",
        f"{depth} nested lists (recursion in whatever walks the result)",
        proto(2) + EMPTY_LIST * depth + APPEND * (depth - 1) + STOP,
        error="ModelFileError",
        message="its objects nest more than 100 levels deep",
    )
    add(
        "deep-nested-tuples",
        f"{depth} nested MARK ... TUPLE (a deep metastack)",
        proto(2) + MARK * depth + TUPLE * depth + STOP,
        error="ModelFileError",
        message="its objects nest more than 100 levels deep",
    )
    laughs = EMPTY_LIST + b"q\x00" + b"0"  # memo[0] = [], popped
    for level in range(1, 12):  # memo[level] = [memo[level - 1]] * 100, popped
        laughs += MARK + (b"h" + bytes([level - 1])) * 100 + LIST + b"q" + bytes([level]) + b"0"
    laughs += b"h\x0b"  # push the top level
    add(
        "billion-laughs-classes",
        "classes_ = 100**11 list references built from the memo",
        proto(2)
        + glob("sklearn.linear_model._logistic", "LogisticRegression")
        + tup()
        + NEWOBJ
        + EMPTY_DICT
        + s("classes_")
        + laughs
        + b"s"
        + s("coef_")
        + _np_float_array([[1.0]])
        + b"s"
        + s("intercept_")
        + _np_float_array([0.0])
        + b"s"
        + BUILD
        + STOP,
        error="ModelFileError",
        message="its objects, walked as a tree, number more than 10000000",
    )
    n = "self-referential-pipeline"
    add(
        n,
        "a Pipeline whose only step is itself",
        proto(2)
        + glob("sklearn.pipeline", "Pipeline")
        + tup()
        + NEWOBJ
        + b"q\x00"
        + EMPTY_DICT
        + s("steps")
        + lst(tup(s("loop"), b"h\x00"))
        + b"s"
        + BUILD
        + STOP,
        error="ModelFileError",
        message="a Pipeline in it contains itself (a reference cycle",
    )
    ops = 3_000_000
    add(
        "opcode-flood-zlib",
        f"{2 * ops} no-op opcodes (MARK, POP_MARK), zlib-compressed",
        lambda n=n: joblib_compress(proto(2) + (MARK + POP_MARK) * ops + NONE + STOP, "zlib"),
        error="ModelFileError",
        message="pickle opcodes",
        suffix=".joblib",
    )

    # -- decompression bombs (joblib's compressors) --------------------------------------------
    # A list of 4 MiB bytes objects, repeated: memory would grow with every chunk. The tests
    # set EDGESPARSE_MAX_UNPACKED_BYTES to 32 MiB, so 96 MiB of stream is three times the cap.
    chunk = b(bytes(4 << 20)) + APPEND
    for method in ("zlib", "gzip", "bz2", "lzma", "xz"):
        stream = _repeat_stream(proto(3) + EMPTY_LIST, chunk, 24, NONE + STOP)
        add(
            f"bomb-{method}",
            f"{method} joblib stream unpacking to 96 MiB of 4 MiB objects",
            lambda stream=stream, method=method: _compress_parts(stream, method),
            error="ModelFileError",
            message="it unpacks to more than 33554432 bytes",
            suffix=".joblib",
        )
    add(
        "bomb-declared-1tib",
        "zlib joblib stream declaring one 1 TiB BINBYTES8 object",
        lambda n=n: joblib_compress(proto(4) + b"\x8e" + struct.pack("<Q", 1 << 40), "zlib"),
        error="ModelFileError",
        message="it unpacks to more than 33554432 bytes",
        suffix=".joblib",
    )
    add(
        "bomb-joblib-array-declared",
        "zlib joblib array header declaring 2**40 float64",
        lambda n=n: joblib_compress(_joblib_wrapper_stream((2**40,)), "zlib"),
        error="ModelFileError",
        message="it declares an array of 8796093022208 bytes",
        suffix=".joblib",
    )

    # -- resource bombs through allowed globals (tiny file, huge cost) -------------------------
    # Each also runs alone under a 1.5 GiB address-space limit (tests/test_attacks.py).
    add(
        "bomb-void-scalar",
        "numpy scalar(dtype('V1073741824')) with no bytes: numpy would allocate 1 GiB",
        lambda: pickle.dumps(
            estimator(n_iter_=_Reduce(_numpy_scalar(), (np.dtype("V1073741824"),))), 4
        ),
        error="ModelFileError",
        message="(1073741824 bytes; at most 1048576 are allowed)",
    )
    huge_seed = 1 << (8 * 400_000)
    add(
        "bomb-mt19937-seed",
        "MT19937 seeded with a 400 KB integer (LONG4): converting the seed is quadratic",
        lambda: pickle.dumps(estimator(random_state=_Reduce(_mt19937(), (huge_seed,))), 4),
        error="ModelFileError",
        message="it calls MT19937 with arguments its pickles never have",
    )
    add(
        "bomb-mt19937-seed-zlib",
        "the same seeded MT19937, zlib-compressed joblib",
        lambda: joblib_compress(
            pickle.dumps(estimator(random_state=_Reduce(_mt19937(), (huge_seed,))), 4), "zlib"
        ),
        error="ModelFileError",
        message="it calls MT19937 with arguments its pickles never have",
        suffix=".joblib",
    )
    add(
        "bomb-randomstate-ctor-ndarray",
        "__randomstate_ctor((2**40,), numpy.ndarray): ndarray called through numpy's helper",
        lambda: pickle.dumps(_Reduce(_randomstate_ctor(), ((2**40,), np.ndarray)), 4),
        error="ModelFileError",
        message="it builds a numpy RandomState with a constructor numpy never writes",
    )
    add(
        "bomb-csr-reduce-shape",
        "csr_matrix(((2**26, 4),)) called directly: scipy allocates the shape",
        lambda: pickle.dumps(estimator(coef_=_Reduce(_csr_matrix(), (((2**26, 4),),))), 4),
        error="ModelFileError",
        message="it calls csr_matrix with arguments its pickles never have",
    )
    add(
        "bomb-csc-shape",
        "csc_matrix([[1.0]]) with _shape (2**27, 1): passes scipy's check, 2**27 outputs",
        lambda: pickle.dumps(_regressor(coef_=_csc_with_shape((2**27, 1)), intercept_=0.0), 4),
        error="ModelFileError",
        message="its arrays hold more than 67108864 bytes",
    )
    add(
        "bomb-joblib-array-1gib",
        "zlib joblib array header declaring 2**27 float64 (1 GiB, under the unpacked-size cap)",
        lambda: joblib_compress(_joblib_wrapper_stream((2**27,)), "zlib"),
        error="ModelFileError",
        # the array cap by default; the unpacked-size cap first where that is set lower
        message=" 1073741824 bytes",
        suffix=".joblib",
    )
    add(
        "bomb-bytearray8-1gib",
        "BYTEARRAY8 declaring 1 GiB in a 12-byte file (pickle allocates before reading)",
        p5(b"\x96" + struct.pack("<Q", 1 << 30)),
        error="ModelFileError",
        message="the file is truncated: its pickle needs 1073741824 more bytes and 1 are left",
    )
    # Many 1 MiB bytes objects in a gzip stream: each read is small, the sum is what counts.
    # In the corpus the 32 MiB unpacked-size cap stops it; alone, the array-cap budget does.
    add(
        "bomb-gzip-many-bytes",
        "gzip pickle stream of 200 x 1 MiB bytes objects (no array at all)",
        lambda: _compress_parts(
            _repeat_stream(proto(3) + EMPTY_LIST, b(bytes(1 << 20)) + APPEND, 200, NONE + STOP),
            "gzip",
        ),
        error="ModelFileError",
        message="it unpacks to more than 33554432 bytes",
        alone=STREAM_BUDGET,
        suffix=".pkl",
    )
    add(
        "bomb-multioutput-memo",
        "MultiOutputRegressor: one 8192-coefficient model repeated 12 000 times by memo",
        lambda: pickle.dumps(_multioutput_repeated(8192, 12_000), 4),
        error="ModelFileError",
        message="its arrays hold more than 67108864 bytes",
    )

    # -- malformed but allowed structures: one Error line, never a traceback ------------------
    pairs = "steps must be a list of (name, step) pairs, but it is"
    for name, what, make, message in [
        ("pipeline-steps-str", "Pipeline.steps a string", lambda: _pipe(steps="abc"), pairs),
        ("pipeline-steps-int", "Pipeline.steps an int", lambda: _pipe(steps=7), pairs),
        (
            "pipeline-steps-3-tuples",
            "Pipeline.steps of (name, step, extra) triples",
            lambda: _pipe(steps=[("s", _scaler("MaxAbsScaler"), 1), ("m", estimator(), 2)]),
            pairs,
        ),
        (
            "maxabs-scale-short",
            "MaxAbsScaler.scale_ with 2 entries for 3 features",
            lambda: _pipe(_scaler("MaxAbsScaler", scale_=np.ones(2))),
            "MaxAbsScaler: scale_ must be 3 finite nonzero numbers",
        ),
        (
            "maxabs-scale-0d",
            "MaxAbsScaler.scale_ a 0-d array",
            lambda: _pipe(_scaler("MaxAbsScaler", scale_=np.array(2.0))),
            "but it is an array of shape () and dtype float64",
        ),
        (
            "standard-scale-2d",
            "StandardScaler.scale_ 2-D",
            lambda: _pipe(_scaler("StandardScaler", scale_=np.ones((3, 3)))),
            "StandardScaler: scale_ must be 3 finite nonzero numbers",
        ),
        (
            "standard-mean-strings",
            "StandardScaler.mean_ an array of strings",
            lambda: _pipe(_scaler("StandardScaler", mean_=np.array(["a", "b", "c"]))),
            "StandardScaler: mean_ must be 3 finite numbers",
        ),
        (
            "minmax-data-min-strings",
            "MinMaxScaler.data_min_ an array of strings",
            lambda: _pipe(_scaler("MinMaxScaler", data_min_=np.array(["a", "b", "c"]))),
            "MinMaxScaler: data_min_ must be 3 finite numbers",
        ),
        (
            "robust-center-nan",
            "RobustScaler.center_ holding NaN",
            lambda: _pipe(_scaler("RobustScaler", center_=np.array([0.0, np.nan, 1.0]))),
            "RobustScaler: center_ must be 3 finite numbers",
        ),
        (
            "n-features-in-str",
            "n_features_in_ a string",
            lambda: pickle.dumps(estimator(n_features_in_="3"), 4),
            "n_features_in_ must be a positive whole number, but it is a str",
        ),
        (
            "n-features-in-list",
            "n_features_in_ a list",
            lambda: pickle.dumps(estimator(n_features_in_=[3]), 4),
            "n_features_in_ must be a positive whole number, but it is a list",
        ),
        (
            "classes-a-scalar",
            "classes_ a 0-d array (an int too large for int64 becomes one)",
            lambda: pickle.dumps(estimator(classes_=np.array(10**30, dtype=object)), 4),
            "LogisticRegression: classes_ must be a 1-D array of labels, got shape ()",
        ),
        (
            "n-features-in-10-to-5000",
            "n_features_in_ 10**5000 (printing it in a message fails: int-to-str limit)",
            lambda: pickle.dumps(estimator(n_features_in_=10**5000), 4),
            "LogisticRegression: n_features_in_ is huge (int), more than the 2147483647 inputs "
            "a model can have; the model is corrupt or crafted: fit it again and save it again",
        ),
        (
            "classes-huge-int",
            "an object-dtype label 10**5000 (int64 conversion overflows)",
            lambda: pickle.dumps(estimator(classes_=np.array([10**5000, 1], dtype=object)), 4),
            "LogisticRegression: class labels must fit 64-bit integers",
        ),
        (
            "sgd-loss-an-array",
            "SGDClassifier.loss an array (compared with 'log' by the version rules)",
            lambda: pickle.dumps(_sgd(loss=np.array([1.0, 2.0])), 4),
            "SGDClassifier: loss must be a name such as 'hinge' or 'log_loss', but it is a "
            "ndarray; the model is corrupt or crafted: fit it again and save it again",
        ),
        (
            "scaler-n-features-in-str",
            "a scaler's n_features_in_ a string",
            lambda: _pipe(_scaler("StandardScaler", n_features_in_="3")),
            "StandardScaler: n_features_in_ must be a positive whole number",
        ),
    ]:
        add(
            name,
            what,
            lambda make=make: _dumped(make()),
            error="UnsupportedModelError",
            message=message,
        )
    return out


def _sgd(**attrs: object) -> object:
    """An SGDClassifier with the fitted attributes of the LogisticRegression fixture."""
    from sklearn.linear_model import SGDClassifier

    est = SGDClassifier()
    for k, v in {**vars(estimator()), **attrs}.items():
        if k.endswith("_") or k in attrs:
            setattr(est, k, v)
    return est


def _dumped(obj: object) -> bytes:
    return obj if isinstance(obj, bytes) else pickle.dumps(obj, 4)


def _scaler(kind: str, **attrs: object) -> object:
    """A fitted-looking scikit-learn scaler over 3 features (attributes set, no fitting)."""
    from sklearn import preprocessing

    step = getattr(preprocessing, kind)()
    base: dict[str, object] = {"n_features_in_": 3, "n_samples_seen_": 10}
    if kind == "StandardScaler":
        base.update(mean_=np.zeros(3), var_=np.ones(3), scale_=np.ones(3))
    elif kind == "MaxAbsScaler":
        base.update(max_abs_=np.ones(3), scale_=np.ones(3))
    elif kind == "MinMaxScaler":
        base.update(
            min_=np.zeros(3),
            scale_=np.ones(3),
            data_min_=np.zeros(3),
            data_max_=np.ones(3),
            data_range_=np.ones(3),
        )
    else:
        base.update(center_=np.zeros(3), scale_=np.ones(3))
    for k, v in {**base, **attrs}.items():
        setattr(step, k, v)
    return step


def _pipe(scaler: object = None, *, steps: object = None) -> object:
    """A Pipeline(scaler, LogisticRegression) with its steps as given."""
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("m", estimator())])
    pipe.steps = steps if steps is not None else [("s", scaler), ("m", estimator())]
    return pipe


RESOURCE_BOMBS = (
    "bomb-void-scalar",
    "bomb-mt19937-seed",
    "bomb-mt19937-seed-zlib",
    "bomb-randomstate-ctor-ndarray",
    "bomb-csr-reduce-shape",
    "bomb-csc-shape",
    "bomb-joblib-array-1gib",
    "bomb-multioutput-memo",
    "bomb-bytearray8-1gib",
    "bomb-gzip-many-bytes",
)
"""The fixtures that cost far more than their size; each is also run alone under limits."""


def _numpy_scalar() -> Callable:
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


def _mt19937() -> Callable:
    from numpy.random import MT19937

    return MT19937


def _randomstate_ctor() -> Callable:
    import numpy.random._pickle as nrp

    return getattr(nrp, "__randomstate_ctor")


def _csr_matrix() -> Callable:
    import scipy.sparse as sp

    return sp.csr_matrix


def _csc_with_shape(shape: tuple) -> object:
    import scipy.sparse as sp

    m = sp.csc_matrix(np.array([[1.0]]))
    m._shape = shape  # indptr still has N + 1 = 2 entries: scipy's full check passes
    return m


def _regressor(**attrs: object) -> object:
    from sklearn.linear_model import LinearRegression

    est = LinearRegression()
    for k, v in attrs.items():
        setattr(est, k, v)
    return est


def _multioutput_repeated(n_features: int, times: int) -> object:
    from sklearn.multioutput import MultiOutputRegressor

    one = _regressor(
        coef_=np.linspace(1.0, 2.0, n_features), intercept_=0.5, n_features_in_=n_features
    )
    meta = MultiOutputRegressor(_regressor())
    meta.estimators_ = [one] * times
    meta.n_features_in_ = n_features
    return meta


def _os_system() -> Callable:
    import os

    return os.system


def _bad_csr() -> object:
    import scipy.sparse as sp

    m = sp.csr_matrix(np.array([[1.0, 0.0, 2.0]]))
    m.indices = np.array([0, 10**9], dtype=m.indices.dtype)  # bypasses scipy's checks
    return m


def _np_float_array(values: list) -> bytes:
    """A float64 array as numpy pickles it (protocol 2 spelling)."""
    return pickle.dumps(np.array(values, dtype=np.float64), protocol=2)[2:-1]


def _joblib_wrapper_stream(shape: tuple) -> bytes:
    """A joblib array record (NumpyArrayWrapper) declaring ``shape`` float64, with no data."""
    from joblib.numpy_pickle import NumpyArrayWrapper

    w = NumpyArrayWrapper(np.ndarray, shape, "C", np.dtype("float64"))
    return pickle.dumps(w, protocol=3)


def _repeat_stream(head: bytes, part: bytes, times: int, tail: bytes) -> list[bytes]:
    return [head, *([part] * times), tail]


def _compress_parts(parts: list[bytes], method: str) -> bytes:
    from joblib.compressor import _COMPRESSORS

    buf = io.BytesIO()
    with _COMPRESSORS[method].compressor_file(buf, compresslevel=1) as fh:
        for part in parts:
            fh.write(part)
    return buf.getvalue()


def write_all(out_dir: str | Path, canary_dir: str | Path) -> list[dict]:
    """Write every attack and ``manifest.json`` into ``out_dir``; return the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for a in attacks(canary_dir):
        (out / f"{a.name}{a.suffix}").write_bytes(a.data)
        manifest.append(a.manifest())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line: write the fixtures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument(
        "--canary-dir", default=None, help="where payloads would write (default: out_dir)"
    )
    args = ap.parse_args(argv)
    manifest = write_all(args.out_dir, args.canary_dir or args.out_dir)
    print(f"wrote {len(manifest)} hostile fixtures to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
