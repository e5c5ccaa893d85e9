"""One exception family for edgesparse.

Every error a user can cause is an :class:`EdgesparseError`; the CLI turns each into a single
``Error: ...`` line. Each subclass also inherits the builtin it most resembles, so library users
can catch ``ValueError`` etc. as they would with numpy or scikit-learn.

This module imports nothing but the standard library: the on-device runtime uses it.
"""

from __future__ import annotations


class EdgesparseError(Exception):
    """Base class of every error edgesparse raises on purpose."""


class InputError(EdgesparseError, ValueError):
    """Bad user data: wrong feature count, NaN, wrong dtype, unreadable array file."""


class UnsafeModelError(EdgesparseError, ValueError):
    """A model file asked for something outside the allow-list (e.g. a hostile pickle)."""


class UnsupportedModelError(EdgesparseError, TypeError):
    """The estimator (or a part of it) is not one edgesparse can convert."""


class FormatError(EdgesparseError, ValueError):
    """A ``.esb`` blob (or another file format) is malformed, truncated or corrupt."""


class IRError(EdgesparseError, ValueError):
    """A :class:`~edgesparse.ir.LinearIR` invariant does not hold."""


class ModelFileError(EdgesparseError, OSError):
    """A file could not be read or written (missing, unreadable, wrong kind of file)."""


class ToolMissingError(EdgesparseError, RuntimeError):
    """An optional dependency or external tool needed for this operation is absent."""


class TargetError(EdgesparseError, RuntimeError):
    """A benchmark target failed (hang, crash, out of memory, missing tool) under ``--strict``."""
