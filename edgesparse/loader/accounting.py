"""Resource accounting: the size caps, the stream that counts bytes and opcodes against them,
the audit of what a pickle built, and the error each cap raises."""

from __future__ import annotations

import io
import math
import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgesparse.errors import (
    InputError,
    ModelFileError,
    ToolMissingError,
    UnsafeModelError,
    UnsupportedModelError,
)
from edgesparse.loader.allowlist import Crafted, one_line_error, shown_text

# Size caps. A model file is read whole into memory, and a compressed pickle can unpack to far
# more than its own size; both are bounded, with a documented way to raise the bound.
DEFAULT_MAX_FILE_BYTES = 1 << 30
"""Largest model file :func:`load_model` reads (1 GiB); ``EDGESPARSE_MAX_MODEL_BYTES`` overrides."""
DEFAULT_MAX_UNPACKED_BYTES = 2 << 30
"""Most bytes a model may unpack to (2 GiB: decompressed pickle stream, zip members);
``EDGESPARSE_MAX_UNPACKED_BYTES`` overrides."""
MAX_PICKLE_OPCODES = 2_000_000
"""Most pickle opcodes one file may execute beyond one per :data:`OPCODE_BYTES` bytes it builds
(see :class:`CappedStream`): a scikit-learn linear model needs thousands, a Surprise k-NN model
about four per rating and list, each building ~70 bytes; a stream of opcodes that build
nothing stops here."""
OPCODE_BYTES = 48
"""Bytes an opcode must build, on average, to be counted beyond :data:`MAX_PICKLE_OPCODES`; with
the largest build budget this bounds the time a pickle may take (1 GiB: 24 million opcodes)."""
ENV_MAX_FILE = "EDGESPARSE_MAX_MODEL_BYTES"
ENV_MAX_UNPACKED = "EDGESPARSE_MAX_UNPACKED_BYTES"
PICKLE_FIX = "re-save the model with joblib.dump or pickle.dump"


PICKLE_OVERHEAD_BYTES = 32 << 20
"""What a pickle stream may hold beyond its arrays (opcodes, names, numbers): a model within the
array cap unpacks to at most the cap plus this (2 million opcodes of at most 9 bytes each)."""

DEFAULT_MAX_KNN_BYTES = 1 << 30
"""Most bytes a Surprise k-NN pickle may build (1 GiB): its similarity matrix and the rating
lists of its trainset, Python objects counted at CPython's sizes. A MovieLens-1M-size model
(1 M ratings) builds about 0.5 GiB item-based, 0.7 GiB user-based; the cap bounds the arrays,
the stream and the objects of such a pickle together. ``EDGESPARSE_MAX_KNN_BYTES`` overrides."""
ENV_MAX_KNN = "EDGESPARSE_MAX_KNN_BYTES"
KNN_MODULE = "surprise.prediction_algorithms.knns"
"""Where Surprise's k-NN classes live (as :data:`edgesparse.frontends.surprise.SURPRISE_MODULE`):
a pickle naming one of them is held to :data:`DEFAULT_MAX_KNN_BYTES`."""
RECOMMENDER_MODULES = frozenset(
    {
        KNN_MODULE,
        "surprise.prediction_algorithms.matrix_factorization",
        "surprise.prediction_algorithms.baseline_only",
    }
)
"""Where Surprise's supported recommenders live: a pickle naming one of their classes holds a
trainset (every rating, twice, as tuples), so it is held to :data:`DEFAULT_MAX_KNN_BYTES` too
(a matrix-factorization model keeps the trainset as a k-NN one does)."""
KNN_FIX = f"if you trust the file, raise the limit with {ENV_MAX_KNN}=<bytes>"


@dataclass
class Budget:
    """What a pickle being read may cost: its source, and the bytes of arrays, of stream and of
    everything it builds (arrays included) that it may reach; ``knn`` once it names a Surprise
    k-NN class, whose single cap replaces the three."""

    source: str
    arrays: int
    stream: int
    built: int
    knn: bool = False

    def to_knn(self) -> None:
        """Switch to the k-NN cap (a k-NN model's size is its ratings, not its weights)."""
        if not self.knn:
            cap = limit_from_env(None, ENV_MAX_KNN, DEFAULT_MAX_KNN_BYTES)
            self.knn, self.arrays, self.stream, self.built = True, cap, cap, cap


def stream_budget(source: str) -> Budget:
    """The budget of a pickle about to be read: arrays within the array cap, a stream of at
    most the cap plus :data:`PICKLE_OVERHEAD_BYTES` (so a file that unpacks to more is refused
    as it streams, not after 2 GiB were read), objects built of at most twice that overhead
    more (every byte read is built, and so is each object's own header)."""
    cap = limit_from_env(None, ENV_MAX_ARRAYS, DEFAULT_MAX_ARRAY_BYTES)
    return Budget(source, cap, cap + PICKLE_OVERHEAD_BYTES, cap + 2 * PICKLE_OVERHEAD_BYTES)


def _stream_budget_error(budget: Budget) -> ModelFileError:
    if budget.knn:
        return ModelFileError(
            f"cannot load {budget.source}: its pickle data runs past {budget.stream} bytes, "
            f"more than edgesparse allows for a Surprise k-NN model by default; {KNN_FIX}"
        )
    return ModelFileError(
        f"cannot load {budget.source}: its pickle data runs past {budget.stream} bytes, more "
        f"than a model within the array cap holds ({budget.arrays} bytes of arrays plus "
        f"{PICKLE_OVERHEAD_BYTES} for the pickle itself); if you trust the file, raise the "
        f"limit with {ENV_MAX_ARRAYS}=<bytes>"
    )


def _built_error(budget: Budget) -> ModelFileError:
    if budget.knn:
        return ModelFileError(
            f"cannot load {budget.source}: it builds more than {budget.built} bytes of arrays "
            "and objects, more than edgesparse allows for a Surprise k-NN model by default (one "
            f"of MovieLens-1M size builds about 0.5 GiB); {KNN_FIX}"
        )
    return ModelFileError(
        f"cannot load {budget.source}: it builds more than {budget.built} bytes of arrays and "
        f"objects, more than a model within the array cap holds ({budget.arrays} bytes of "
        f"arrays plus {2 * PICKLE_OVERHEAD_BYTES} for the objects describing them); if you "
        f"trust the file, raise the limit with {ENV_MAX_ARRAYS}=<bytes>"
    )


class LimitExceeded(Exception):
    """A size or opcode cap was hit (see limit_error for the message the user sees)."""

    def __init__(self, what: str, *, raisable: bool = True) -> None:
        super().__init__(what)
        self.raisable = raisable


def limit_error(source: str, exc: LimitExceeded) -> ModelFileError:
    if not exc.raisable:
        return ModelFileError(f"cannot load {source}: {exc}")
    return ModelFileError(
        f"cannot load {source}: {exc}, more than edgesparse allows by default; if you trust "
        f"the file, raise the limit with {ENV_MAX_UNPACKED}=<bytes> "
        "(or load_model(..., max_unpacked_bytes=...))"
    )


READ_CHUNK_BYTES = 1 << 20
"""Largest piece :meth:`CappedStream.read_bytearray` reads at once."""


class CappedStream:
    """File object the unpicklers read from: counts bytes, opcodes and what they build.

    ``limit`` is the most bytes the stream may deliver: the file size for a plain pickle, the
    decompressed-size cap for a compressed one. A read asking for more than is left (a pickle
    declaring a 1 TiB bytes object) is refused before anything is allocated. The cost of a
    pickle is what it materializes, so each opcode is charged the bytes it builds
    (:meth:`charge`): that, not the opcode count, is held to the budget; the opcode count is
    held to :data:`MAX_PICKLE_OPCODES` plus one per :data:`OPCODE_BYTES` built, which bounds
    the time without refusing a large real model.
    """

    def __init__(
        self,
        raw: Any,
        limit: int,
        *,
        compressed: bool,
        budget: Budget | None = None,
    ) -> None:
        self._raw = raw
        self.limit = limit
        self.compressed = compressed
        self.budget = budget
        self.used = 0
        self.opcodes = 0
        self.built = 0

    def check_budget(self, n: int) -> None:
        """Refuse, before reading or allocating, ``n`` more bytes past the stream budget."""
        if self.budget is not None and self.used + n > self.budget.stream:
            raise _stream_budget_error(self.budget)

    def left(self) -> int:
        """Bytes the stream may still deliver."""
        return self.limit - self.used

    def _refuse(self, n: int) -> None:
        if self.compressed:
            raise LimitExceeded(f"it unpacks to more than {self.limit} bytes")
        raise Crafted(
            f"the file is truncated: its pickle needs {n} more bytes and {self.left()} are left"
        )

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left()
        if n > self.left():
            self._refuse(n)
        self.check_budget(n)
        data = self._raw.read(n)
        self.used += len(data)
        return data

    def read_bytearray(self, n: int) -> bytearray:
        """``read(n)`` as a bytearray, refused the same way before anything is read, and read
        into place: ``bytearray(read(n))`` holds the bytes twice, and a wide model's weights
        are most of the file (issue 19)."""
        if n > self.left():
            self._refuse(n)
        self.check_budget(n)
        if not self.compressed:
            # What is left of a plain file is really there: allocate it, read straight in.
            out = bytearray(n)
            got = self._raw.readinto(out)
            self.used += got
            del out[got:]
            return out
        # A compressed stream may end sooner than its cap: grow with what really arrives.
        out = bytearray()
        while len(out) < n:
            part = self._raw.read(min(READ_CHUNK_BYTES, n - len(out)))
            if not part:
                break
            self.used += len(part)
            out += part  # grows in place (large blocks are remapped, not copied)
        return out

    def readline(self, size: int = -1) -> bytes:
        # Only GLOBAL/INST read lines (module and class names): bounded by the cap too.
        limit = self.left() if size is None or size < 0 else min(size, self.left())
        line = self._raw.readline(limit)
        self.check_budget(len(line))
        self.used += len(line)
        return line

    def charge(self, nbytes: int) -> None:
        """Count one opcode that built ``nbytes`` (what it read included)."""
        self.opcodes += 1
        self.built += nbytes
        if self.budget is not None and self.built > self.budget.built:
            raise _built_error(self.budget)
        if self.opcodes > MAX_PICKLE_OPCODES + self.built // OPCODE_BYTES:
            raise LimitExceeded(self._idle_message(), raisable=False)

    def _idle_message(self) -> str:
        knn = self.budget is not None and self.budget.knn
        kind = (
            "a Surprise k-NN model runs about 8 per rating, each building some 70 bytes"
            if knn
            else "a scikit-learn linear model needs a few thousand"
        )
        fix = (
            "no Surprise model is written so; the file is crafted or corrupt"
            if knn
            else "a pickle this long is not a model edgesparse can read (export its weights "
            "to .npz instead)"
        )
        return (
            f"it runs more than {MAX_PICKLE_OPCODES} pickle opcodes beyond one per "
            f"{OPCODE_BYTES} bytes they build ({self.opcodes} opcodes for {self.built} bytes; "
            f"{kind}); {fix}"
        )


def limit_from_env(value: int | None, env: str, default: int) -> int:
    """A size cap: the argument, else the environment variable, else the default."""
    origin = {ENV_MAX_FILE: "max_file_bytes", ENV_MAX_UNPACKED: "max_unpacked_bytes"}.get(env, env)
    if value is None:
        text = os.environ.get(env, "").strip()
        if not text:
            return default
        origin = env
        try:
            value = int(text)
        except ValueError:
            raise InputError(f"{env}={text!r} is not a whole number of bytes") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{origin} must be a positive number of bytes, got {value!r}")
    return value


def _check_zip(data: bytes, source: str, max_unpacked: int) -> None:
    """Refuse a zip archive (npz, skops) whose members unpack to more than the cap, or whose
    arrays declare more than the array cap, before anything is inflated or allocated.

    ``zipfile`` never inflates a member past its declared size, so the declared sizes bound
    the real work; for ``.npy`` members the array header must also fit the member, since numpy
    allocates the declared shape before reading the data. A ``.npz`` member (skops keeps a
    scipy sparse matrix so) is an archive of its own: its members count too, one level deep.
    """
    max_arrays = limit_from_env(None, ENV_MAX_ARRAYS, DEFAULT_MAX_ARRAY_BYTES)
    unpacked, arrays, leaves = _zip_sizes(data, (source, max_unpacked, max_arrays), depth=0)
    if unpacked > max_unpacked:
        raise LimitExceeded(f"its archive members unpack to {unpacked} bytes")
    if arrays > max_arrays:
        raise array_limit_error(source, arrays, max_arrays)
    # Members that are not arrays (skops reads every member, schema.json is parsed whole) are
    # bounded like a pickle stream: the arrays a model may hold plus what describes them.
    if leaves > max_arrays + PICKLE_OVERHEAD_BYTES:
        raise ModelFileError(
            f"cannot load {source}: its archive members unpack to {leaves} bytes, more than "
            f"a model within the array cap holds ({max_arrays} bytes of arrays plus "
            f"{PICKLE_OVERHEAD_BYTES} to describe them); if you trust the file, raise the "
            f"limit with {ENV_MAX_ARRAYS}=<bytes>"
        )


def _zip_sizes(data: bytes, caps: tuple[str, int, int], *, depth: int) -> tuple[int, int, int]:
    """(bytes the members unpack to, bytes their arrays declare, bytes of the members that are
    not archives), nested .npz included;
    ``caps`` is (source, unpacked-size cap, array cap). An inner archive is read whole only
    when it is no larger than the arrays a model may hold (plus a pickle's overhead)."""
    source, max_unpacked, max_arrays = caps
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = zf.infolist()
        unpacked = sum(m.file_size for m in members)
        if unpacked > max_unpacked:  # refused by the caller: open nothing
            return unpacked, 0, 0
        arrays = leaves = 0
        for m in members:
            if m.filename.endswith(".npz"):
                if depth > 0:
                    raise Crafted(
                        f"it holds an archive {shown_text(m.filename)!r} inside an archive inside "
                        "the file; neither skops nor numpy writes that: the file is crafted or "
                        "corrupt"
                    )
                if m.file_size > max_arrays + PICKLE_OVERHEAD_BYTES:
                    raise array_limit_error(source, m.file_size, max_arrays)
                inner = _zip_sizes(zf.read(m), caps, depth=depth + 1)
                unpacked, arrays, leaves = (
                    unpacked + inner[0],
                    arrays + inner[1],
                    leaves + inner[2],
                )
                continue
            if m.filename.endswith(".npy"):
                arrays += _npy_bytes(zf, m)
            leaves += m.file_size
        return unpacked, arrays, leaves


def _npy_bytes(zf: zipfile.ZipFile, m: zipfile.ZipInfo) -> int:
    """Bytes the array in ``.npy`` member ``m`` declares (checked against what it holds)."""
    with zf.open(m) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    nbytes = math.prod(shape) * dtype.itemsize
    if not dtype.hasobject and nbytes > m.file_size:
        raise Crafted(
            f"its array {shown_text(m.filename)!r} declares {nbytes} bytes, but its "
            f"archive member holds only {m.file_size}; numpy never writes that: "
            "the file is crafted or corrupt"
        )
    return nbytes


def zip_guarded(source: str, kind: str, fix: str, data: bytes, max_unpacked: int) -> None:
    try:
        guarded(source, kind, fix, _check_zip, data, source, max_unpacked)
    except LimitExceeded as exc:
        raise limit_error(source, exc) from None


def guarded(source: str, kind: str, fix: str, func: Any, *args: Any) -> Any:
    """Run a loader; any exception that is not ours becomes one ModelFileError line."""
    try:
        return func(*args)
    except (
        UnsafeModelError,
        UnsupportedModelError,
        ModelFileError,
        ToolMissingError,
        InputError,
        LimitExceeded,
        MemoryError,  # the CLI says "out of memory" in one line
    ):
        raise
    except Crafted as exc:  # found by edgesparse: its own words, then what to do
        raise ModelFileError(f"cannot load {source}: {exc}; {fix}") from None
    except Exception as exc:  # a hostile or corrupt file can make any library raise anything
        raise ModelFileError(
            f"cannot load {source}: not a valid {kind} file, or it is truncated; {fix} "
            f"(where reading stopped: {one_line_error(exc)})"
        ) from exc


MAX_NESTING = 100
"""Deepest chain of containers a loaded model may have (a Pipeline of a one-vs-rest model is
about 8 deep); deeper structures, and reference cycles, are refused."""

MAX_TREE_SIZE = 10_000_000
"""Most objects a loaded model may hold when shared references are counted once per use."""

DEFAULT_MAX_ARRAY_BYTES = 64 << 20
"""Most bytes of arrays a loaded model may hold (64 MiB: 8 million float64 weights, which
compress in about 0.9 GiB), counted as the frontends
materialize them: a shared array once per reference, a scipy sparse matrix also by the
per-row and per-column arrays its shape implies. ``EDGESPARSE_MAX_ARRAY_BYTES`` overrides."""
ENV_MAX_ARRAYS = "EDGESPARSE_MAX_ARRAY_BYTES"


def _own_bytes(obj: Any) -> int:
    """Bytes ``obj`` itself makes the frontends hold, beyond its children."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return int(obj.nbytes)
    if isinstance(obj, (str, bytes, bytearray)):
        return len(obj)
    if hasattr(obj, "check_format") and type(obj).__module__.startswith("scipy.sparse"):
        # Converting it builds an index (and a bias) per row and per column of its shape.
        shape = getattr(obj, "_shape", None) or ()
        return 16 * sum(int(n) for n in shape if isinstance(n, (int, np.integer)))
    return 0


ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic, type)


def children_of(obj: Any) -> list[Any] | None:
    """What ``obj`` refers to, or None for a leaf."""
    if isinstance(obj, ATOMS):
        return None
    if isinstance(obj, np.ndarray):
        return list(obj.ravel()) if obj.dtype.hasobject else None
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    attrs = getattr(obj, "__dict__", None)
    return list(attrs.values()) if isinstance(attrs, dict) else None


def is_knn_pickle(root: Any) -> bool:
    """True when what a pickle built is a Surprise k-NN algorithm (or a ``surprise.dump`` of
    one): such a model is held to :data:`DEFAULT_MAX_KNN_BYTES`, not the array cap."""
    if isinstance(root, dict) and set(root) == {"predictions", "algo"}:
        root = root["algo"]
    return (type(root).__module__ or "") in RECOMMENDER_MODULES


def _audit_caps(root: Any) -> tuple[int, bool]:
    """(array cap, k-NN?) for the audit of ``root``: a k-NN model's one cap bounds its arrays."""
    if is_knn_pickle(root):
        return limit_from_env(None, ENV_MAX_KNN, DEFAULT_MAX_KNN_BYTES), True
    return limit_from_env(None, ENV_MAX_ARRAYS, DEFAULT_MAX_ARRAY_BYTES), False


TREE_PER_OBJECT = 4
"""How many times its distinct objects a Surprise k-NN model's tree may number, beyond
:data:`MAX_TREE_SIZE`: its algorithm refers to the trainset's rating lists twice (``ur`` and
``xr``, ``ir`` and ``yr``), so a real model's tree is about twice what it holds, however many
ratings it has; a pickle that shares one rating list among all items is far more."""


_FLAT_ATOMS = frozenset({int, float, str, bool, type(None)})
_FLAT_LEN = 4


def _is_flat(obj: Any) -> bool:
    """A short tuple of plain atoms (a Surprise ``(inner id, rating)`` pair): it can hold no
    cycle, and its sizes are summed where it is used instead of walking it, which keeps the
    audit of a million-rating trainset in seconds."""
    return type(obj) is tuple and len(obj) <= _FLAT_LEN and all(type(x) in _FLAT_ATOMS for x in obj)


def _sums(
    children: list[Any], tree: dict[int, int], weight: dict[int, int]
) -> tuple[int, int, int]:
    """(tree size, bytes, nodes seen here for the first time) of ``children``: walked
    containers from the tables, flat tuples and leaves from themselves."""
    size = nbytes = fresh = 0
    for c in children:
        k = id(c)
        if k in tree:
            size += tree[k]
            nbytes += weight[k]
        elif type(c) is tuple:  # flat (any other tuple was walked)
            fresh += 1 + len(c)
            nbytes += sum(len(x) for x in c if type(x) is str)
        else:
            fresh += 1
            nbytes += _own_bytes(c)
    return size + fresh, nbytes, fresh


def _tree_error(source: str, cap: int, distinct: int) -> ModelFileError:
    if cap > MAX_TREE_SIZE:
        return ModelFileError(
            f"cannot load {source}: its objects, walked as a tree, number more than {cap}, "
            f"{TREE_PER_OBJECT} times the {distinct} it holds (shared references repeated many "
            "times; no Surprise model does that, the file is crafted or corrupt)"
        )
    return ModelFileError(
        f"cannot load {source}: its objects, walked as a tree, number more than "
        f"{cap} (shared references repeated many times; no scikit-learn "
        "model does that, the file is crafted or corrupt)"
    )


def _check_container(obj: Any, source: str, depth: int, seen: int | None) -> None:
    """Refuse a container met again on its own path (a cycle), too deep, or an inconsistent
    scipy.sparse matrix."""
    if seen is not None:
        raise ModelFileError(
            f"cannot load {source}: a {shown_text(type(obj).__name__)} in it contains itself "
            "(a reference cycle, which no scikit-learn model has; the file is crafted or "
            "corrupt)"
        )
    if depth > MAX_NESTING:
        raise ModelFileError(
            f"cannot load {source}: its objects nest more than {MAX_NESTING} levels deep "
            "(no scikit-learn model does; the file is crafted or corrupt)"
        )
    if hasattr(obj, "check_format") and type(obj).__module__.startswith("scipy.sparse"):
        try:
            obj.check_format(full_check=True)
        except Exception as exc:  # scipy raises ValueError, TypeError, IndexError...
            raise ModelFileError(
                f"cannot load {source}: a sparse matrix in it is inconsistent "
                f"({one_line_error(exc)}); {PICKLE_FIX}"
            ) from None


def audit_objects(root: Any, source: str) -> None:
    """Walk what a pickle built, once per object, before anything else touches it.

    A pickle can build shapes no scikit-learn model has: reference cycles and very deep
    nesting (which send recursive code into RecursionError), and scipy.sparse matrices whose
    arrays disagree (BUILD sets them without scipy's checks). Refuse those here, with one line.
    """
    max_bytes, knn = _audit_caps(root)
    distinct = 0  # objects walked once each (flat tuples and leaves with their container)
    on_path, done = 1, 2
    state: dict[int, int] = {}
    # Bytes under each object, shared references counted once per use, like ``tree``.
    weight: dict[int, int] = {}
    # Size of each container as a tree: shared references count once per path, so a DAG of
    # 12 lists of 100 references each ("billion laughs") is 100**11, which recursive code
    # such as numpy.asarray would try to materialize.
    tree: dict[int, int] = {}
    stack: list[tuple[Any, int, list[Any] | None]] = [(root, 0, None)]
    while stack:
        obj, depth, leaving = stack.pop()
        if leaving is not None:
            state[id(obj)] = done
            size, total, fresh = _sums(leaving, tree, weight)
            distinct += 1 + fresh
            # What is held once may be walked a few times (k-NN), not 100**11 times.
            max_tree = max(MAX_TREE_SIZE, TREE_PER_OBJECT * distinct) if knn else MAX_TREE_SIZE
            if 1 + size > max_tree:
                raise _tree_error(source, max_tree, distinct)
            total += _own_bytes(obj)
            if total > max_bytes:
                raise array_limit_error(source, total, max_bytes, knn=knn)
            tree[id(obj)], weight[id(obj)] = 1 + size, total
            continue
        children = children_of(obj)
        if children is None:
            if obj is root and _own_bytes(obj) > max_bytes:
                raise array_limit_error(source, _own_bytes(obj), max_bytes, knn=knn)
            continue
        seen = state.get(id(obj))
        if seen == done:
            continue
        _check_container(obj, source, depth, seen)
        state[id(obj)] = on_path
        stack.append((obj, depth, children))
        flat_ok = depth + 1 <= MAX_NESTING  # deeper, even a flat tuple is refused
        stack.extend(
            (child, depth + 1, None) for child in children if not (flat_ok and _is_flat(child))
        )


def array_limit_error(
    source: str, total: int, max_bytes: int, *, knn: bool = False
) -> ModelFileError:
    """The error for arrays past the cap: for a Surprise k-NN model, its own cap's variable."""
    if knn:
        return ModelFileError(
            f"cannot load {source}: its arrays hold more than {max_bytes} bytes (at least "
            f"{total} bytes), more than edgesparse allows for a Surprise k-NN model by "
            f"default; {KNN_FIX}"
        )
    return ModelFileError(
        f"cannot load {source}: its arrays hold more than {max_bytes} bytes (at least "
        f"{total} bytes, shared arrays counted once per use), more than edgesparse allows by "
        f"default; if you trust the file, raise the limit with {ENV_MAX_ARRAYS}=<bytes>"
    )
