"""Small file helpers shared by every writer: atomic writes and friendly read errors.

Standard library only (the runtime uses :func:`read_bytes`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelFileError


def read_bytes(path: str | os.PathLike[str], *, what: str = "file") -> bytes:
    """Read a whole file, turning OS errors into :class:`ModelFileError` with a hint."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{what} not found: {p} (check the path)") from None
    except IsADirectoryError:
        raise ModelFileError(f"{what} is a directory, not a file: {p}") from None
    except PermissionError:
        raise ModelFileError(f"{what} is not readable: {p} (check its permissions)") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {what} {p}: {exc.strerror or exc}") from None


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    Either the complete new file appears at ``path`` or nothing changes there; the temporary
    file is removed on any failure.
    """
    # Imported here: tempfile pulls in random -> hashlib -> OpenSSL (~3 MiB of RSS) that a
    # device which only reads blobs should not pay for.
    import tempfile

    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ModelFileError(f"output folder does not exist: {parent} (create it first)")
    if p.is_dir():
        raise ModelFileError(f"output path is a directory: {p} (give a file name)")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ModelFileError(f"cannot write {p}: {exc.strerror or exc}") from None
        raise
    # Make the rename itself durable where the platform allows it.
    try:
        dfd = os.open(parent, os.O_RDONLY)
    except OSError:
        return p
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return p
