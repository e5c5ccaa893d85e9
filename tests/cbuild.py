"""Compile each distinct C program once per test session, however many tests ask for it.

Many test modules build the same program: the host `esb` driver (gcc -Werror), its
ASan + UBSan build under clang, the static aarch64/armhf cross builds and the libFuzzer target
are each built by three to six modules, some once per test. :func:`build` runs a compiler
command once per session and hands every later caller the same executable.

The cache key is the compiler's resolved path and every argument, with each source file
argument replaced by its contents' SHA-256 and the whole C runtime folder's sources (the files
``esb.c`` includes) hashed in: a changed flag, source or header is a different program. The
cache lives under this session's pytest temporary directory (shared by the xdist workers of
one run, fresh for every run, never reused across runs, so it cannot hand out a stale build),
and a file lock per key makes concurrent workers build a program once and never see it
half-written.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from edgesparse.export_c import c_runtime_dir

C_DIR = c_runtime_dir()
_cache_dir: Path | None = None


def set_cache_dir(path: Path) -> None:
    """Where :func:`build` keeps its programs (tests/conftest.py sets it once per session)."""
    global _cache_dir
    path.mkdir(parents=True, exist_ok=True)
    _cache_dir = path


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _runtime_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(C_DIR.iterdir()):
        if p.suffix in (".c", ".h"):
            h.update(p.name.encode() + b"\0" + _file_digest(p).encode() + b"\0")
    return h.hexdigest()


def _key(cmd: list[str]) -> str:
    h = hashlib.sha256()
    compiler = shutil.which(cmd[0])
    h.update(str(Path(compiler).resolve() if compiler else cmd[0]).encode() + b"\0")
    for arg in cmd[1:]:
        p = Path(arg)
        if p.suffix in (".c", ".h") and p.is_file():
            arg = f"{p.name}@{_file_digest(p)}"
        h.update(arg.encode() + b"\0")
    h.update(_runtime_digest().encode())
    return h.hexdigest()[:32]


def build(cmd: list[str], *, name: str) -> tuple[Path, subprocess.CompletedProcess]:
    """``cmd -o <cache>/<key>/name``, run at most once per session for the same compiler,
    arguments and sources: returns the executable and the compiler's result (a successful
    empty one when the program was already built; a failed build is not cached, so every
    caller sees its error).

    ``cmd`` is the whole compiler command without ``-o``; source paths must be absolute.
    """
    if _cache_dir is None:
        raise RuntimeError("tests.cbuild.set_cache_dir was not called (tests/conftest.py)")
    key = _key(cmd)
    folder = _cache_dir / key
    folder.mkdir(exist_ok=True)
    built, exe = folder / "program", folder / name
    with open(_cache_dir / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            partial = folder / f".partial.{os.getpid()}"
            res = subprocess.run(
                [*cmd, "-o", str(partial)], capture_output=True, text=True, timeout=300
            )
            if res.returncode != 0:
                return exe, res
            os.replace(partial, built)
        else:
            res = subprocess.CompletedProcess(cmd, 0, "", "")
        if not exe.exists():  # the same program under the caller's name
            os.link(built, exe)
        return exe, res


def runtime_object(cc: str, flags: list[str]) -> Path:
    """The C runtime (``esb.c``, which includes the other runtime files) compiled by ``cc``
    with ``flags`` into one object file, once per session: a program of a test links it
    instead of compiling the same few thousand lines again. An export-c folder's ``esb.c`` is
    this file byte for byte (tests/test_c_runtime.py checks that, and builds such folders
    with their own Makefile too)."""
    obj, res = build([cc, *flags, "-c", str(C_DIR / "esb.c")], name="esb.o")
    assert res.returncode == 0, res.stderr
    return obj
