"""edgesparse: prune and int8-quantize trained linear models for edge devices.

``import edgesparse`` and :func:`edgesparse.load` need numpy only, so the same package serves
on a device; everything that needs scikit-learn, scipy or onnx is imported on first use.
"""

from __future__ import annotations

from typing import Any

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
from .ir import LinearIR
from .runtime import Model, OnnxModel, load
from .version import __version__

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
