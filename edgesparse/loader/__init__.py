"""Safe model loading: the only package in edgesparse that unpickles.

Split by job: :mod:`.allowlist` (what a file may name), :mod:`.accounting` (the size caps and
the audit of what was built), :mod:`.unpickler` (the restricted pickle/joblib reader and its
stand-ins), :mod:`.skops_reader` and :mod:`.npz_reader`; this module picks one by suffix.

A pickle is a program: every global it names is imported and may be called. So ``.pkl``,
``.pickle`` and ``.joblib`` files go through an allow-list unpickler that checks each
``(module, name)`` pair against :data:`ALLOWED_GLOBALS` *before* importing anything, and refuses
the other ways a pickle can reach code (persistent ids, the copyreg extension registry).
``.skops`` files are audited against the same list (every type in the file, not only the ones
skops itself distrusts), and ``.npz`` files are read with ``allow_pickle=False`` into a
:class:`RawLinearModel`.

The whole file is read once into memory and every check and the load itself use those bytes,
so the file cannot change between being checked and being loaded.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from edgesparse.errors import ModelFileError, ToolMissingError
from edgesparse.fileio import read_bytes
from edgesparse.loader.accounting import (
    DEFAULT_MAX_ARRAY_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_UNPACKED_BYTES,
    ENV_MAX_FILE,
    ENV_MAX_UNPACKED,
    MAX_NESTING,
    MAX_PICKLE_OPCODES,
    MAX_TREE_SIZE,
    PICKLE_FIX,
    audit_objects,
    guarded,
    limit_from_env,
)
from edgesparse.loader.allowlist import (
    ALLOWED_GLOBALS,
    PICKLE_PROTO_OPCODE,
    SUPPORTED_SUFFIXES,
    ZIP_MAGIC,
    allowed_globals,
)
from edgesparse.loader.npz_reader import RawLinearModel, load_npz
from edgesparse.loader.skops_reader import load_skops
from edgesparse.loader.unpickler import (
    MAX_SCALAR_BYTES,
    SKLEARN_VERSION_ATTRIBUTE,
    resolve_global,
    unpickle_guarded,
)

__all__ = [
    "ALLOWED_GLOBALS",
    "SUPPORTED_SUFFIXES",
    "RawLinearModel",
    "allowed_globals",
    "SKLEARN_VERSION_ATTRIBUTE",
    "load_model",
    "DEFAULT_MAX_ARRAY_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_UNPACKED_BYTES",
    "MAX_NESTING",
    "MAX_PICKLE_OPCODES",
    "MAX_SCALAR_BYTES",
    "MAX_TREE_SIZE",
]
resolve_global = resolve_global  # tests check the allow-list resolution directly


# ---------------------------------------------------------------------------------------------
# The public entry point and one loader per file kind
# ---------------------------------------------------------------------------------------------
def load_model(
    path: str | os.PathLike[str],
    *,
    max_file_bytes: int | None = None,
    max_unpacked_bytes: int | None = None,
) -> Any:
    """Load a trained model from ``path`` without running anything outside the allow-list.

    ``.pkl``/``.pickle``/``.joblib`` (pickle or joblib, plain or compressed) are unpickled by
    an allow-list unpickler; ``.skops`` files are audited against the same list and loaded by
    skops; ``.npz`` weight files (``coef``, ``intercept``, optional ``classes``, ``head``) give a
    :class:`RawLinearModel`.

    ``max_file_bytes`` (default :data:`DEFAULT_MAX_FILE_BYTES`, or the environment variable
    ``EDGESPARSE_MAX_MODEL_BYTES``) caps the file size; ``max_unpacked_bytes`` (default
    :data:`DEFAULT_MAX_UNPACKED_BYTES`, or ``EDGESPARSE_MAX_UNPACKED_BYTES``) caps what a
    compressed pickle or a zip archive may unpack to.

    Raises:
        UnsafeModelError: the file references something not on :data:`ALLOWED_GLOBALS`.
        ModelFileError: missing, unreadable, empty, truncated, too large, or the wrong kind of
            file.
        ToolMissingError: the file needs an optional library (skops, lz4) that is absent.
        InputError: a size cap (argument or environment variable) is not a positive integer.
    """
    p = Path(path)
    source = str(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise ModelFileError(
            f"cannot load {source}: it is a directory, not a model file; give the model file "
            f"({', '.join(SUPPORTED_SUFFIXES)}), e.g. one inside it"
        )
    if suffix not in SUPPORTED_SUFFIXES:
        raise _unknown_suffix(p, source, suffix)
    max_file = limit_from_env(max_file_bytes, ENV_MAX_FILE, DEFAULT_MAX_FILE_BYTES)
    max_unpacked = limit_from_env(max_unpacked_bytes, ENV_MAX_UNPACKED, DEFAULT_MAX_UNPACKED_BYTES)
    data = read_bytes(
        p,
        what="model file",
        max_bytes=max_file,
        how_to_raise=(
            f"if you trust it, raise the limit with {ENV_MAX_FILE}=<bytes> "
            "(or load_model(..., max_file_bytes=...))"
        ),
    )
    if not data:
        raise ModelFileError(
            f"cannot load {source}: the file is empty (save the model again with joblib.dump, "
            "pickle.dump, skops.io.dump or numpy.savez)"
        )
    if suffix == ".npz":
        return load_npz(data, source, max_unpacked)
    if suffix == ".skops":
        return load_skops(data, source, max_unpacked)
    return _load_pickle(data, source, max_unpacked)


def _unknown_suffix(p: Path, source: str, suffix: str) -> ModelFileError:
    """The error for a name load_model does not know, saying what the file is when it can."""
    from edgesparse.formats.sniff import sniff

    supported = ", ".join(SUPPORTED_SUFFIXES)
    kind = sniff(p)
    if kind is not None and kind.role == "compressed":
        return ModelFileError(
            f"cannot load {source}: it is {kind.what}, already compressed; compress reads the "
            f"trained model ({supported}); to see what it holds: edgesparse inspect {source}"
        )
    if kind is not None and kind.role == "data":
        return ModelFileError(
            f"cannot load {source}: it is {kind.what}, a data file, not a model; compress "
            f"reads the trained model ({supported}); data goes to --check-data or --calibration"
        )
    shown = f"'{suffix}'" if suffix else "no suffix"
    looks = f"; it looks like {kind.what}" if kind is not None else ""
    return ModelFileError(
        f"cannot load {source}: unknown model file type ({shown}){looks}; supported: "
        f"{supported} (rename it to match how it was saved)"
    )


# -- pickle / joblib -------------------------------------------------------------------------


def _load_pickle(data: bytes, source: str, max_unpacked: int) -> Any:
    if data.startswith(ZIP_MAGIC):
        raise ModelFileError(
            f"cannot load {source}: it is a zip archive, not a pickle (a skops or npz file? "
            "give it a .skops or .npz suffix)"
        )
    try:
        from joblib.compressor import _COMPRESSORS, _ZFILE_PREFIX
        from joblib.numpy_pickle_utils import _detect_compressor
    except ImportError as exc:  # joblib is a dependency, and scikit-learn's too
        raise ToolMissingError(
            f"cannot load {source}: reading pickles needs joblib (pip install joblib)"
        ) from exc

    if data.startswith(_ZFILE_PREFIX):
        # joblib < 0.10 kept arrays in companion files and used its own loader: not supported.
        raise ModelFileError(
            f"cannot load {source}: it was written by joblib older than 0.10; "
            "load it with that joblib version and save it again"
        )
    compressor = _detect_compressor(io.BytesIO(data))
    if compressor == "lz4":
        try:
            import lz4  # noqa: F401
        except ImportError:
            raise ToolMissingError(
                f"cannot load {source}: it is lz4-compressed and lz4 is not installed "
                "(pip install lz4)"
            ) from None
    if compressor == "not-compressed" and not data.startswith(PICKLE_PROTO_OPCODE):
        # Every pickle of protocol 2+ starts with PROTO; scikit-learn models are never saved
        # with 0/1. This also turns a text file named .pkl into a clear message.
        raise ModelFileError(
            f"cannot load {source}: not a pickle or joblib file (it does not start like a "
            f"pickle of protocol 2 or newer); {PICKLE_FIX}"
        )
    obj = guarded(
        source,
        "pickle/joblib",
        PICKLE_FIX,
        unpickle_guarded,
        data,
        compressor,
        _COMPRESSORS,
        source,
        max_unpacked,
    )
    audit_objects(obj, source)
    return obj
