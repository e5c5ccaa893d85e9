"""Atomic writes under faults: every step failing, a full disk, and ``kill -9`` mid-write.

After each fault the destination is either absent or the previous file, byte for byte, and no
temporary file is left behind (a killed writer's temp file is removed by the next write).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgesparse import fileio
from edgesparse.errors import ModelFileError
from edgesparse.fileio import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
OLD = b"previous model " * 100
NEW = bytes(range(256)) * 4096  # 1 MiB


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(params=["absent", "existing"])
def dest(request, tmp_path) -> Path:
    d = tmp_path / "out" / "model.esb"
    d.parent.mkdir()
    if request.param == "existing":
        d.write_bytes(OLD)
    return d


def assert_untouched(d: Path, before: list[str], had_old: bool) -> None:
    assert listing(d.parent) == before, "a temporary file was left behind"
    if had_old:
        assert d.read_bytes() == OLD
    else:
        assert not d.exists()


class Boom(Exception):
    pass


# Each step of the write, failing with a disk error or with an interrupt (Ctrl-C).
STEPS = ["mkstemp", "write-first", "write-later", "fsync", "close", "replace"]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("fault", ["ENOSPC", "EIO", "KeyboardInterrupt"])
def test_fault_at_each_step(monkeypatch, dest: Path, step: str, fault: str) -> None:
    import tempfile

    had_old = dest.exists()
    before = listing(dest.parent)

    def fail() -> None:
        if fault == "KeyboardInterrupt":
            raise KeyboardInterrupt
        code = getattr(errno, fault)
        raise OSError(code, os.strerror(code))

    real = {"write": os.write, "fsync": os.fsync, "close": os.close, "replace": os.replace}
    calls = {"write": 0}

    def write(fd, data):
        calls["write"] += 1
        if step == "write-first" or (step == "write-later" and calls["write"] == 2):
            fail()
        return real["write"](fd, data[: 64 * 1024])  # short writes: the loop must go on

    def fsync(fd):
        if step == "fsync":
            fail()
        return real["fsync"](fd)

    def close(fd):
        real["close"](fd)
        if step == "close":
            fail()

    def replace(a, b):
        if step == "replace":
            fail()
        return real["replace"](a, b)

    def mkstemp(*a, **k):
        fail()

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "close", close)
    monkeypatch.setattr(os, "replace", replace)
    if step == "mkstemp":
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    if fault == "KeyboardInterrupt":
        with pytest.raises(KeyboardInterrupt):
            atomic_write_bytes(dest, NEW)
    else:
        with pytest.raises(ModelFileError) as info:
            atomic_write_bytes(dest, NEW)
        assert str(info.value) == f"cannot write {dest}: {os.strerror(getattr(errno, fault))}"
    monkeypatch.undo()
    assert_untouched(dest, before, had_old)
    # And the next write works and is complete.
    atomic_write_bytes(dest, NEW)
    assert dest.read_bytes() == NEW
    assert listing(dest.parent) == ["model.esb"]


def test_short_writes_are_completed(monkeypatch, tmp_path) -> None:
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, data[:1000]))
    atomic_write_bytes(tmp_path / "m.esb", NEW)
    assert (tmp_path / "m.esb").read_bytes() == NEW


# ---------------------------------------------------------------------------------------------
# Full disk: a child process with RLIMIT_FSIZE (the kernel's "file too large", EFBIG)
# ---------------------------------------------------------------------------------------------
FULL_DISK_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    from edgesparse.errors import ModelFileError
    from edgesparse.fileio import atomic_write_bytes
    try:
        atomic_write_bytes(sys.argv[1], bytes(1 << 20))
    except ModelFileError as exc:
        print(exc)
        sys.exit(3)
    """
)


def test_full_disk_rlimit_fsize(dest: Path) -> None:
    had_old = dest.exists()
    before = listing(dest.parent)
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == f"cannot write {dest}: File too large"
    assert_untouched(dest, before, had_old)


# ---------------------------------------------------------------------------------------------
# kill -9 in the middle of writing a large model
# ---------------------------------------------------------------------------------------------
KILL_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from edgesparse.fileio import atomic_write_bytes
    real = os.write
    def slow_write(fd, data):  # 1 MiB at a time, slowly: the parent kills us half-way
        n = real(fd, data[: 1 << 20])
        time.sleep(0.02)
        return n
    os.write = slow_write
    atomic_write_bytes(sys.argv[1], os.urandom(64 << 20))
    print("finished")
    """
)


def test_kill_9_mid_write_then_next_write_cleans_up(dest: Path) -> None:
    had_old = dest.exists()
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_CHILD, str(dest)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    folder = dest.parent
    temp = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        temps = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
        if temps and temps[0].stat().st_size >= 8 << 20:
            temp = temps[0]
            break
        time.sleep(0.01)
    assert temp is not None, "the child never got half-way"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # The destination is exactly what it was; the killed writer's temp file is recognisable.
    if had_old:
        assert dest.read_bytes() == OLD
    else:
        assert not dest.exists()
    assert temp.exists() and temp.name.startswith(f".model.esb.{child.pid}.")
    # A live writer's temp file is never touched; a dead one's is removed by the next write.
    live = folder / f".model.esb.{os.getpid()}.keep.tmp"
    live.write_bytes(b"in progress")
    atomic_write_bytes(dest, NEW)
    assert dest.read_bytes() == NEW
    assert listing(folder) == sorted(["model.esb", live.name])


def test_stale_temp_of_other_names_is_left_alone(tmp_path) -> None:
    other = tmp_path / ".other.esb.999999999.abc.tmp"
    other.write_bytes(b"x")
    unrelated = tmp_path / ".model.esb.notapid.tmp"
    unrelated.write_bytes(b"y")
    atomic_write_bytes(tmp_path / "model.esb", b"data")
    assert listing(tmp_path) == sorted([other.name, unrelated.name, "model.esb"])
    assert fileio._process_alive(os.getpid())


def test_new_file_gets_umask_mode_and_replacement_keeps_mode(tmp_path: Path) -> None:
    import os
    import stat

    from edgesparse.fileio import atomic_write_bytes

    old = os.umask(0o022)
    try:
        fresh = atomic_write_bytes(tmp_path / "a.esb", b"x")
        assert (
            stat.S_IMODE(fresh.stat().st_mode) == 0o644
        )  # like open(..., "w"), not mkstemp's 0600
        kept = tmp_path / "b.esb"
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        atomic_write_bytes(kept, b"new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    finally:
        os.umask(old)
