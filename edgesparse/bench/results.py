"""The bench results file (``results.json``, docs/BENCH.md): :func:`write_results` validates
a results dict (:mod:`edgesparse.bench.results_build` builds it) and writes it atomically into
a report folder (:func:`make_output_dir`); :func:`read_results` reads one back and validates
it (:func:`edgesparse.bench.results_schema.validate_results`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgesparse.bench.results_schema import validate_results
from edgesparse.errors import FormatError, ModelFileError
from edgesparse.fileio import atomic_write_bytes, read_bytes

__all__ = ["RESULTS_FILE", "make_output_dir", "read_results", "write_results"]

#: The file name of the results inside a report folder.
RESULTS_FILE = "results.json"


def read_results(path: str | Path) -> dict[str, Any]:
    """Read and validate a results.json file written by ``edgesparse bench``.

    Raises:
        ModelFileError: the file is missing or unreadable.
        FormatError: not JSON, not a bench results file, an unknown schema version, or a field
            that breaks the schema (the message names the file and the field).
    """
    p = Path(path)
    raw = read_bytes(p, what="results file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise FormatError(
            f"{p}: not UTF-8 text; point at the results.json `edgesparse bench` wrote"
        ) from None
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"{p}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"point at the results.json `edgesparse bench` wrote"
        ) from None
    try:
        validate_results(data)
    except FormatError as exc:
        raise FormatError(f"{p}: {exc}") from None
    return data


def make_output_dir(out: Path) -> None:
    """Create the report folder ``out`` (and its parents) if missing.

    Raises:
        ModelFileError: ``out`` is a file, or cannot be created.
    """
    if out.exists() and not out.is_dir():
        raise ModelFileError(f"report folder is a file: {out} (give a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(f"cannot create report folder {out}: {exc.strerror or exc}") from None


def write_results(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Validate ``results`` and write them as ``results.json`` into ``out_dir`` (atomically;
    the folder must exist). Returns the written path."""
    validate_results(results)
    data = json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write_bytes(Path(out_dir) / RESULTS_FILE, data.encode("utf-8"))
