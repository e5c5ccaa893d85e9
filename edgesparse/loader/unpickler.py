"""The allow-list unpickler: stand-ins for the globals numpy and scikit-learn pickles call, the
checks on every call, and the joblib reader built on them."""

from __future__ import annotations

import codecs
import importlib
import io
import math
import pickle
import struct
import warnings
from typing import Any, NamedTuple

import numpy as np

from edgesparse.errors import (
    ModelFileError,
    ToolMissingError,
)
from edgesparse.loader.accounting import (
    DEFAULT_MAX_ARRAY_BYTES,
    ENV_MAX_ARRAYS,
    RECOMMENDER_MODULES,
    CappedStream,
    LimitExceeded,
    array_limit_error,
    limit_error,
    limit_from_env,
    stream_budget,
)
from edgesparse.loader.allowlist import (
    ALIASES,
    ALLOWED_GLOBALS,
    CRAFTED,
    LEGACY,
    RENAMED,
    SGD_FAST_LOSSES,
    Crafted,
    refused_error,
    shown_text,
)


# ---------------------------------------------------------------------------------------------
# The allow-list unpickler
# ---------------------------------------------------------------------------------------------
def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that does only what pickle protocol 2 needs."""
    # codecs.encode can reach every registered codec; a pickle only ever needs latin-1.
    if type(obj) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise Crafted(f"it calls _codecs.encode other than as text to latin-1 bytes; {CRAFTED}")
    return codecs.encode(obj, "latin1")


def _empty_array_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Stand-in for ``numpy._core.multiarray._reconstruct`` that cannot allocate."""
    # numpy pickles every array as _reconstruct(ndarray, (0,), b"b") plus BUILD(state); a
    # hostile pickle could ask for any shape and make numpy allocate it before anything else.
    if subtype is not np.ndarray or type(shape) is not tuple or shape != (0,):
        raise Crafted(
            "it rebuilds a numpy array with arguments numpy never writes "
            f"(subtype {shown_text(getattr(subtype, '__name__', type(subtype).__name__))}, shape "
            f"{shown_text(repr(shape))}); {CRAFTED}"
        )
    return np.ndarray.__new__(np.ndarray, (0,), dtype)


MAX_SCALAR_BYTES = 1 << 20
"""Largest numpy scalar a model file may build (a label or a number needs a few bytes)."""


def _checked_scalar(dtype: Any, obj: Any = None) -> Any:
    """Stand-in for ``numpy._core.multiarray.scalar`` that cannot allocate more than it read.

    numpy pickles a scalar as ``scalar(dtype, raw_bytes)`` (``scalar(dtype('O'), obj)`` for
    objects); without bytes, numpy allocates ``dtype.itemsize`` zeros, and a void dtype can
    declare a GiB in a few characters."""
    if not isinstance(dtype, np.dtype):
        raise Crafted(f"it builds a numpy scalar without a dtype; {CRAFTED}")
    if dtype.itemsize > MAX_SCALAR_BYTES:
        raise Crafted(
            f"it builds a numpy scalar of dtype {shown_text(str(dtype))} ({dtype.itemsize} bytes; "
            f"at most {MAX_SCALAR_BYTES} are allowed); {CRAFTED}"
        )
    if not dtype.hasobject and not (type(obj) is bytes and len(obj) == dtype.itemsize):
        raise Crafted(
            "it builds a numpy scalar whose bytes do not match its dtype "
            f"{shown_text(str(dtype))}; {CRAFTED}"
        )
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return scalar(dtype, obj) if obj is not None else scalar(dtype)


def _mt19937_class() -> Any:
    from numpy.random import MT19937

    return MT19937


def _bit_generator_ctor(bit_generator: Any = "MT19937") -> Any:
    """Stand-in for ``numpy.random._pickle.__bit_generator_ctor``: only an unseeded MT19937
    (its state comes next, from the pickle's BUILD), named by string or by class."""
    mt = _mt19937_class()
    if bit_generator is not mt and not (type(bit_generator) is str and bit_generator == "MT19937"):
        raise Crafted(
            "it builds a numpy bit generator other than an unseeded MT19937 (numpy writes only "
            f"that, then its state); {CRAFTED}"
        )
    return mt()


def _randomstate_ctor(bit_generator_name: Any = "MT19937", bit_generator_ctor: Any = None) -> Any:
    """Stand-in for ``numpy.random._pickle.__randomstate_ctor``: a RandomState around an
    MT19937 (given, or named), never a call of whatever the pickle passes as constructor."""
    mt = _mt19937_class()
    if bit_generator_ctor not in (None, _bit_generator_ctor):
        raise Crafted(
            f"it builds a numpy RandomState with a constructor numpy never writes; {CRAFTED}"
        )
    if type(bit_generator_name) is not mt:
        bit_generator_name = _bit_generator_ctor(bit_generator_name)
    return np.random.RandomState(bit_generator_name)


class _ListFactoryToken:
    """What ``builtins.list`` resolves to: a token only _defaultdict_of_list accepts, so a
    pickle can never call ``list`` itself."""

    __slots__ = ()


_LIST_FACTORY = _ListFactoryToken()


def _defaultdict_of_list(factory: Any = None) -> Any:
    """Stand-in for ``collections.defaultdict`` that builds only ``defaultdict(list)``."""
    import collections

    # Any other factory would be called later, on a missing key, with no check at all.
    if factory is not _LIST_FACTORY:
        raise Crafted(
            f"it builds a collections.defaultdict other than defaultdict(list); {CRAFTED}"
        )
    return collections.defaultdict(list)


def _checked_slice(*args: Any) -> slice:
    """Stand-in for ``builtins.slice`` (a fitted ColumnTransformer's ``output_indices_``):
    builds a slice of at most three whole numbers or None, nothing else."""
    if len(args) > 3 or not all(a is None or type(a) is int for a in args):
        raise Crafted(f"it builds a slice of something other than whole numbers; {CRAFTED}")
    return slice(*args)


class OldSGDLoss:
    """What an ``sklearn.linear_model._sgd_fast`` loss object becomes: its class name, nothing
    else. The pickle calls ``Log()`` or ``Hinge(1.0)``; the stand-in accepts at most two plain
    numbers (the loss parameters scikit-learn wrote) and keeps none of them."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<scikit-learn loss {self.name} (read as a name only)>"

    def __setstate__(self, state: Any) -> None:
        # Cython classes may add a state; it is data we never use.
        if state is not None and not isinstance(state, (dict, tuple)):
            raise Crafted(
                f"it gives the scikit-learn loss {self.name} a state of another kind; {CRAFTED}"
            )


class _OldSGDLossFactory:
    """The callable an allow-listed ``_sgd_fast.<Loss>`` global resolves to."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> OldSGDLoss:
        if len(args) > 2 or not all(type(a) in (float, int) for a in args):
            raise Crafted(
                f"it calls the scikit-learn loss {self.name} with arguments scikit-learn never "
                f"writes; {CRAFTED}"
            )
        return OldSGDLoss(self.name)


class _SurprisePrediction(NamedTuple):
    """What Surprise's ``Prediction`` in a ``surprise.dump`` file becomes: a plain tuple of its
    five fields (Surprise's own class is not imported; edgesparse reads only the ``algo``)."""

    uid: Any
    iid: Any
    r_ui: Any
    est: Any
    details: Any


_SUBSTITUTES: dict[tuple[str, str], Any] = {
    ("surprise.prediction_algorithms.predictions", "Prediction"): _SurprisePrediction,
    **{
        ("sklearn.linear_model._sgd_fast", name): _OldSGDLossFactory(name)
        for name in SGD_FAST_LOSSES
    },
    ("collections", "defaultdict"): _defaultdict_of_list,
    ("builtins", "list"): _LIST_FACTORY,
    ("__builtin__", "list"): _LIST_FACTORY,
    ("builtins", "slice"): _checked_slice,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy._core.multiarray", "_reconstruct"): _empty_array_reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): _empty_array_reconstruct,
    ("numpy._core.multiarray", "scalar"): _checked_scalar,
    ("numpy.core.multiarray", "scalar"): _checked_scalar,
    ("numpy.random._pickle", "__bit_generator_ctor"): _bit_generator_ctor,
    ("numpy.random._pickle", "__randomstate_ctor"): _randomstate_ctor,
}


def _guard_call(unpickler: Any, func: Any, args: Any = (), *, new: bool = False) -> None:
    # ndarray's constructor allocates the shape it is given; numpy pickles never call it (they
    # go through _reconstruct), so a pickle that does is crafted.
    if func is np.ndarray:
        raise refused_error(unpickler._source, ["numpy.ndarray called as a constructor"])
    if not isinstance(func, type):
        return
    module = func.__module__ or ""
    # scipy sparse matrices are pickled as an empty object plus its arrays (NEWOBJ, BUILD);
    # calling the class allocates whatever shape the arguments give. A seeded MT19937 converts
    # its seed in quadratic time; numpy pickles an unseeded one and then its state.
    sparse = module.startswith("scipy.sparse")
    seeded = module.startswith("numpy.random") and func.__name__ == "MT19937"
    if (sparse and (not new or args)) or (seeded and args):
        raise Crafted(
            f"it calls {shown_text(func.__name__)} with arguments its pickles never have; {CRAFTED}"
        )


def resolve_global(module: str, name: str, source: str) -> Any:
    """Return the object for an allow-listed global; refuse anything else before importing."""
    key = (module, name)
    # Exact pair match: a dotted name such as "LogisticRegression.__init__.__globals__" is not
    # on the list, so it is never walked attribute by attribute.
    if key not in ALLOWED_GLOBALS:
        raise refused_error(source, [f"{module}.{name}"])
    if key in _SUBSTITUTES:
        return _SUBSTITUTES[key]
    if key in RENAMED:
        candidates: tuple[tuple[str, str], ...] = (RENAMED[key],)
    else:
        candidates = (ALIASES.get(key, key), key, LEGACY.get(key, key))
    for mod_name, attr in candidates:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        return getattr(mod, attr)
    if module.startswith("surprise."):
        raise ToolMissingError(
            f"cannot load {source}: it is a Surprise model ({name}), and reading it needs "
            "scikit-surprise (pip install 'edgesparse[surprise]')"
        )
    raise ModelFileError(
        f"cannot load {source}: it needs {module}.{name}, which cannot be imported here "
        "(is the library that wrote it installed?)"
    )


class _AllowListMixin:
    """``find_class``/``persistent_load`` shared by both unpicklers below."""

    _source: str = "<model>"

    def find_class(self, module: str, name: str) -> Any:
        found = resolve_global(module, name, self._source)
        budget = self._stream.budget  # type: ignore[attr-defined]
        if module in RECOMMENDER_MODULES and budget is not None:
            # A recommender's size is its ratings: from here on the k-NN cap applies.
            budget.to_knn()
        return found

    def persistent_load(self, pid: Any) -> Any:
        # Persistent ids hand arbitrary data to a callback; no model file needs one.
        raise refused_error(self._source, ["a persistent id (pickle persistent_load)"])

    def _refuse_extension(self) -> None:
        # EXT1/2/4 look globals up in copyreg's process-wide extension registry and its cache,
        # which can bypass find_class; sklearn never writes them, so refuse them outright.
        raise refused_error(
            self._source, ["the copyreg extension registry (EXT1/EXT2/EXT4 opcodes)"]
        )

    def _instantiate(self, klass: Any, args: Any) -> None:  # INST and OBJ
        _guard_call(self, klass, args)
        super()._instantiate(klass, args)  # type: ignore[misc]

    def _load_reduce(self) -> None:
        _guard_call(self, self.stack[-2], self.stack[-1])  # type: ignore[attr-defined]
        pickle._Unpickler.load_reduce(self)  # type: ignore[attr-defined]

    def _load_newobj(self) -> None:
        _guard_call(self, self.stack[-2], self.stack[-1], new=True)  # type: ignore[attr-defined]
        pickle._Unpickler.load_newobj(self)  # type: ignore[attr-defined]

    def _load_newobj_ex(self) -> None:
        stack = self.stack  # type: ignore[attr-defined]
        _guard_call(self, stack[-3], (*stack[-2], *stack[-1]), new=True)
        pickle._Unpickler.load_newobj_ex(self)  # type: ignore[attr-defined]

    def _load_global(self) -> None:
        # The stdlib drops the last character of each line without checking it is a newline,
        # so a cut-off GLOBAL would ask for a clipped name; call it what it is: truncation.
        module, name = self.readline(), self.readline()  # type: ignore[attr-defined]
        if not (module.endswith(b"\n") and name.endswith(b"\n")):
            raise Crafted("the file is truncated: it ends inside a class name")
        self.append(self.find_class(module[:-1].decode(), name[:-1].decode()))  # type: ignore[attr-defined]


def _load_bytearray8(self: Any) -> None:
    # pickle allocates bytearray(declared length) before reading it: 12 bytes could ask for
    # 1 GiB. The stream checks the length against what is left, then reads the bytes into
    # the bytearray (a protocol-5 array's bytes, held once). A frame's bytes are read as
    # before (a frame is small, unless crafted).
    (n,) = struct.unpack("<Q", self.read(8))
    if self._unframer.current_frame is None:
        self.append(self._stream.read_bytearray(n))
    else:
        self.append(bytearray(self.read(n)))


# What each opcode builds, in bytes (CPython, 64-bit), beyond what it reads from the stream
# (strings, bytes and array data are charged as read): the object and its slot on the stack or
# in a container. Estimates within a small factor, which is what a budget needs; opcodes that
# build nothing (MARK, POP, FRAME...) cost 0 and count against MAX_PICKLE_OPCODES alone.
_P = pickle
_BUILDS: dict[bytes, int] = {
    **dict.fromkeys((_P.NONE, _P.NEWTRUE, _P.NEWFALSE, _P.EMPTY_TUPLE, _P.DUP), 8),
    **dict.fromkeys((_P.GET, _P.BINGET, _P.LONG_BINGET, _P.GLOBAL, _P.STACK_GLOBAL), 8),
    **dict.fromkeys((_P.INT, _P.BININT, _P.BININT1, _P.BININT2, _P.LONG, _P.LONG1), 36),
    **dict.fromkeys((_P.LONG4, _P.FLOAT, _P.BINFLOAT), 36),
    **dict.fromkeys((_P.STRING, _P.BINSTRING, _P.SHORT_BINSTRING, _P.UNICODE), 64),
    **dict.fromkeys((_P.BINUNICODE, _P.SHORT_BINUNICODE, _P.BINUNICODE8), 64),
    **dict.fromkeys((_P.BINBYTES, _P.SHORT_BINBYTES, _P.BINBYTES8, _P.BYTEARRAY8), 64),
    **dict.fromkeys((_P.MEMOIZE, _P.PUT, _P.BINPUT, _P.LONG_BINPUT), 64),  # memo entry + key
    **dict.fromkeys((_P.EMPTY_LIST, _P.EMPTY_DICT, _P.LIST, _P.DICT, _P.TUPLE), 72),
    **dict.fromkeys((_P.TUPLE1, _P.TUPLE2, _P.TUPLE3), 64),
    **dict.fromkeys((_P.EMPTY_SET, _P.FROZENSET), 224),
    **dict.fromkeys((_P.REDUCE, _P.NEWOBJ, _P.NEWOBJ_EX, _P.INST, _P.OBJ), 128),  # + __dict__
    _P.APPEND: 8,
    _P.SETITEM: 48,
}
# Opcodes that take every item since the last MARK: bytes per item (a list or tuple slot, half
# a dict entry, a set entry).
_PER_ITEM: dict[bytes, int] = {
    **dict.fromkeys((_P.APPENDS, _P.LIST, _P.TUPLE, _P.INST, _P.OBJ), 8),
    **dict.fromkeys((_P.SETITEMS, _P.DICT), 24),
    **dict.fromkeys((_P.ADDITEMS, _P.FROZENSET), 32),
}


def _counted(code: int, func: Any) -> Any:
    builds = _BUILDS.get(bytes([code]), 0)
    per_item = _PER_ITEM.get(bytes([code]), 0)

    def op(self: Any) -> None:
        stream = self._stream
        used = stream.used
        items = len(self.stack) if per_item else 0
        func(self)
        stream.charge(builds + per_item * items + stream.used - used)

    return op


def _restricted_dispatch(dispatch: dict[int, Any]) -> dict[int, Any]:
    table = dict(dispatch)
    for op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        table[op[0]] = _AllowListMixin._refuse_extension
    table[pickle.GLOBAL[0]] = _AllowListMixin._load_global
    table[pickle.BYTEARRAY8[0]] = _load_bytearray8
    table[pickle.REDUCE[0]] = _AllowListMixin._load_reduce
    table[pickle.NEWOBJ[0]] = _AllowListMixin._load_newobj
    table[pickle.NEWOBJ_EX[0]] = _AllowListMixin._load_newobj_ex
    # Every opcode is charged what it builds (bounded memory) and counted (bounded time).
    return {code: _counted(code, func) for code, func in table.items()}


class _SafeObjectArrayUnpickler(_AllowListMixin, pickle._Unpickler):  # type: ignore[misc]
    """Reads the nested pickle joblib writes for object-dtype arrays, with the same checks."""

    dispatch = _restricted_dispatch(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: CappedStream, source: str) -> None:
        super().__init__(file)
        self._source = source
        self._stream = file


def _make_joblib_unpickler() -> type:
    # Built on first use so that importing this module does not import joblib.
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class _SafeJoblibUnpickler(_AllowListMixin, NumpyUnpickler):  # type: ignore[misc,valid-type]
        """joblib's unpickler (a ``pickle._Unpickler``) restricted to :data:`ALLOWED_GLOBALS`.

        It reads plain pickles too, so every pickle-based file goes through it: users often
        ``joblib.dump`` to a ``.pkl`` name.
        """

        def __init__(self, file_handle: CappedStream, source: str) -> None:
            super().__init__("", file_handle, True)
            self._source = source
            self._stream = file_handle
            self._array_bytes = 0

        def load_build(self) -> None:
            # joblib's load_build, but the array is read by us: object arrays through our
            # restricted unpickler (not whatever this joblib version uses) and with the
            # wrapper's fields validated first.
            state = self.stack[-1]
            written_by = written_by_release(state)
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
            top = self.stack[-1]
            if written_by is not None:
                record_version(top, written_by)
            if type(top) is NumpyArrayWrapper:
                self.stack[-1] = self._read_wrapped_array(top)

        dispatch = _restricted_dispatch({**NumpyUnpickler.dispatch, pickle.BUILD[0]: load_build})

        def _read_wrapped_array(self, wrapper: Any) -> np.ndarray:
            fields = vars(wrapper)
            dtype, shape, order = fields.get("dtype"), fields.get("shape"), fields.get("order")
            if (
                fields.get("subclass") is not np.ndarray
                or not isinstance(dtype, np.dtype)
                or order not in ("C", "F")
                or not isinstance(shape, tuple)
                or not all(type(n) is int and n >= 0 for n in shape)
            ):
                raise Crafted(f"it holds a joblib array header joblib never writes; {CRAFTED}")
            if dtype.hasobject:
                array = _SafeObjectArrayUnpickler(self._stream, self._source).load()
                if not isinstance(array, np.ndarray):
                    raise Crafted(f"it holds a joblib object array that is not an array; {CRAFTED}")
                return array
            # joblib allocates the declared shape before reading: check it fits what is left,
            # and that the arrays read so far stay within the array cap (checked again, per
            # use, once the pickle is loaded).
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > self._stream.left():
                if self._stream.compressed:
                    raise LimitExceeded(f"it declares an array of {nbytes} bytes")
                raise Crafted(
                    f"the file is truncated: a joblib array declares {nbytes} bytes, but only "
                    f"{self._stream.left()} bytes are left"
                )
            self._array_bytes += nbytes
            budget = self._stream.budget
            cap = (
                budget.arrays
                if budget is not None
                else limit_from_env(None, ENV_MAX_ARRAYS, DEFAULT_MAX_ARRAY_BYTES)
            )
            if self._array_bytes > cap:
                knn = budget is not None and budget.knn
                raise array_limit_error(self._source, self._array_bytes, cap, knn=knn)
            self._stream.check_budget(nbytes)
            return NumpyArrayWrapper.read_array(wrapper, self, True)

    return _SafeJoblibUnpickler


SKLEARN_VERSION_ATTRIBUTE = "_sklearn_version"
"""The attribute where a loaded scikit-learn object keeps the version that pickled it.

scikit-learn writes ``_sklearn_version`` into every estimator's pickled state and drops it
again on loading (after warning when it differs from the installed version); the loader puts
it back, so that the frontend reads the estimator by the rules of the release that wrote it."""


def written_by_release(state: Any) -> str | None:
    """The version an object's pickled state records: "pre-0.18" when a state dict has none
    (as scikit-learn says of such pickles), "<not a version>" when it is not a short string;
    None for states that are not dicts."""
    if not isinstance(state, dict):
        return None
    version = state.get(SKLEARN_VERSION_ATTRIBUTE, "pre-0.18")
    if isinstance(version, str) and len(version) <= 40 and version.isprintable():
        return version
    return "<not a version>"


def record_version(obj: Any, version: str) -> None:
    # Only scikit-learn's own estimators carry a version (BaseEstimator.__getstate__).
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict) or not (type(obj).__module__ or "").startswith("sklearn."):
        return
    if not any(k.__name__ == "BaseEstimator" for k in type(obj).__mro__):
        return
    attrs[SKLEARN_VERSION_ATTRIBUTE] = version


def unpickle_guarded(
    data: bytes, compressor: str, compressors: dict[str, Any], source: str, max_unpacked: int
) -> Any:
    # scikit-learn warns (InconsistentVersionWarning) on every estimator pickled by another
    # release. edgesparse records that version instead and reads the model by its rules (the
    # compress summary says so), so the raw warning is not shown.
    with warnings.catch_warnings():
        hide_version_warning()
        return _unpickle_quietly(data, compressor, compressors, source, max_unpacked)


def hide_version_warning() -> None:
    """Inside ``warnings.catch_warnings()``: ignore scikit-learn's InconsistentVersionWarning."""
    try:
        from sklearn.exceptions import InconsistentVersionWarning
    except ImportError:  # scikit-learn < 1.3, or absent
        return
    warnings.simplefilter("ignore", InconsistentVersionWarning)


def _unpickle_quietly(
    data: bytes, compressor: str, compressors: dict[str, Any], source: str, max_unpacked: int
) -> Any:
    raw: Any = io.BytesIO(data)
    compressed = compressor != "not-compressed"
    if compressed:
        # joblib's own decompressor file objects (zlib, gzip, bz2, lzma, xz, lz4).
        raw = io.BufferedReader(compressors[compressor].decompressor_file(raw))
    stream = CappedStream(
        raw,
        max_unpacked if compressed else len(data),
        compressed=compressed,
        budget=stream_budget(source),
    )
    try:
        obj = _make_joblib_unpickler()(stream, source).load()
        # Reading on to the end makes the decompressor check its end marker and checksum, so
        # a cut-off compressed file is caught even when the cut falls after the pickle's STOP.
        if raw.read(1):
            raise Crafted(
                "the file goes on after the end of its pickle (two files joined, or a damaged one)"
            )
    except LimitExceeded as exc:
        raise limit_error(source, exc) from None
    # joblib's zlib/gzip reader takes a missing end-of-stream marker (and checksum) for a
    # normal end; the stdlib decompressor knows better.
    decompressor = getattr(getattr(raw, "raw", None), "_decompressor", None)
    if getattr(decompressor, "eof", True) is False:
        raise Crafted(
            "the file is truncated: its compressed data ends before the end-of-stream marker"
        )
    return obj
