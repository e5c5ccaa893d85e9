"""Small file helpers shared by every writer: atomic writes and friendly read errors.

Standard library only (the runtime uses :func:`read_bytes`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelFileError


def read_bytes(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    max_bytes: int | None = None,
    how_to_raise: str = "",
) -> bytes:
    """Read a whole file, turning OS errors into :class:`ModelFileError` with a hint.

    With ``max_bytes``, a larger file is refused before any of it is read (and a file that
    grows while it is read is refused too); ``how_to_raise`` ends that message.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            if max_bytes is None:
                return fh.read()
            size = os.fstat(fh.fileno()).st_size
            data = b""
            if size <= max_bytes:
                # read(n) allocates n bytes up front: ask for what the file holds (+1 to see
                # growth), never for the cap itself (4 GiB for a blob), then any growth in
                # bounded steps until the cap is passed.
                data = fh.read(size + 1)
                while len(data) <= max_bytes and len(data) > size:
                    more = fh.read(min(1 << 24, max_bytes + 1 - len(data)))
                    if not more:
                        break
                    data += more
    except FileNotFoundError:
        raise ModelFileError(f"{what} not found: {p} (check the path)") from None
    except IsADirectoryError:
        raise ModelFileError(f"{what} is a directory, not a file: {p}") from None
    except PermissionError:
        raise ModelFileError(f"{what} is not readable: {p} (check its permissions)") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if size > max_bytes or len(data) > max_bytes:
        raise ModelFileError(
            f"{what} {p} is {max(size, len(data))} bytes, more than the limit of {max_bytes} "
            f"bytes{'; ' + how_to_raise if how_to_raise else ''}"
        )
    return data


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    Either the complete new file appears at ``path`` or nothing changes there. On any error
    (full disk, file size limit, an interrupt) the temporary file is removed. A process killed
    outright (``kill -9``, power loss) cannot clean up: its temporary file is named
    ``.<name>.<pid>.<random>.tmp`` and the next write to the same path deletes those of
    processes that no longer run.
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
    _remove_stale_temps(parent, p.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.{os.getpid()}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise ModelFileError(f"cannot write {p}: {exc.strerror or exc}") from None
    try:
        try:
            view = memoryview(data).cast("B")
            while view:  # os.write may write less than asked (signals, pipes, quotas)
                view = view[os.write(fd, view) :]
            # mkstemp creates 0600; give the file the mode a plain open() would have (or the
            # replaced file's), so copying a model to a device keeps it readable.
            os.fchmod(fd, _target_mode(p))
            os.fsync(fd)
        finally:
            os.close(fd)
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


def _target_mode(p: Path) -> int:
    try:
        return p.stat().st_mode & 0o7777
    except OSError:
        pass
    mask = os.umask(0o022)  # the only portable way to read the umask is to set it
    os.umask(mask)
    return 0o666 & ~mask


def _remove_stale_temps(folder: Path, name: str) -> None:
    """Delete temp files a killed writer of ``folder/name`` left behind (never a live one's)."""
    prefix = f".{name}."
    try:
        entries = [e.name for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        pid_text, _, rest = entry[len(prefix) :].partition(".")
        if not (entry.endswith(".tmp") and pid_text.isdigit() and rest):
            continue
        pid = int(pid_text)
        if pid == os.getpid() or _process_alive(pid):
            continue
        try:
            os.unlink(folder / entry)
        except OSError:
            pass


def _process_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but not ours, or the platform cannot tell: leave it alone
    return True
