"""edgesparse: prune and int8-quantize trained linear models for edge devices.

``import edgesparse`` and :func:`edgesparse.load` need numpy only, so the same package serves
on a device; everything that needs scikit-learn, scipy or onnx is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    EdgesparseError,
    FormatError,
    InputError,
    IRError,
    ModelFileError,
    TargetError,
    ToolMissingError,
    UnsafeModelError,
    UnsupportedModelError,
)
from .version import __version__

if TYPE_CHECKING:
    from .ir import LinearIR
    from .runtime import Model, OnnxModel, load

# Device-side names, imported on first use too: ``import edgesparse`` alone costs only the
# error classes, and a process that never touches the IR or a runtime never imports them.
_LAZY = {"LinearIR": ".ir", "Model": ".runtime", "OnnxModel": ".runtime", "load": ".runtime"}

__all__ = [
    "EdgesparseError",
    "FormatError",
    "IRError",
    "InputError",
    "LinearIR",
    "Model",
    "ModelFileError",
    "OnnxModel",
    "TargetError",
    "ToolMissingError",
    "UnsafeModelError",
    "UnsupportedModelError",
    "__version__",
    "load",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    # Workstation-side API, imported lazily so the device-side import stays numpy-only.
    if name == "compress":
        from .api import compress

        return compress
    if name in ("compress_file", "CompressOptions"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "to_ir":
        from .frontends import to_ir

        return to_ir
    raise AttributeError(f"module 'edgesparse' has no attribute {name!r}")
