"""Building and running the C runtime's programs in the recommender tests (test_c_knn.py,
test_c_factors.py): the `esb` driver (gcc -Werror, or clang under ASan + UBSan where its
sanitizer runtimes exist), export-c's Makefile, small probes against esb.h, and static
cross builds for QEMU user mode. Each build skips with a reason only when the tool is absent.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgesparse.export_c import c_runtime_dir
from tests import cbuild
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
C_DIR = c_runtime_dir()
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
DRIVER_SOURCES = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
CROSS = {
    "aarch64": ("aarch64-linux-gnu-gcc", "qemu-aarch64-static"),
    "armhf": ("arm-linux-gnueabihf-gcc", "qemu-arm-static"),
}
#: Every sanitized run's environment: leak detection on (the driver frees all it allocates,
#: on every exit), UBSan stack traces.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"}


#: The libFuzzer target (fuzz/c/fuzz_esb_open.c) under ASan + UBSan, without ``-o``.
FUZZ_BUILD = [
    *("clang", "-g", "-O1", "-std=c99", "-fsanitize=fuzzer,address,undefined"),
    *("-fno-sanitize-recover=all", "-I", str(C_DIR)),
    *(str(ROOT / "fuzz" / "c" / "fuzz_esb_open.c"), str(C_DIR / "esb.c"), "-lm"),
]


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    """``cmd`` with text output captured and a 300 s hang bound."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def build_driver(build_dir: str | Path, *, sanitized: bool, name: str) -> list[str]:
    """The `esb` driver (``name``, ``-asan`` appended when sanitized), compiled once per
    session (tests/cbuild.py); ``build_dir`` is no longer written to."""
    del build_dir
    cc = "clang" if sanitized else "gcc"
    require_tool(shutil.which(cc) is not None, what=cc, install=f"sudo apt-get install {cc}")
    exe, res = cbuild.build(
        [cc, *CFLAGS, *(SANITIZE if sanitized else []), *DRIVER_SOURCES, "-lm"],
        name=f"{name}-asan" if sanitized else name,
    )
    if sanitized and res.returncode != 0 and "fsanitize" in res.stderr + res.stdout:
        require_tool(False, what="clang's sanitizer runtimes", install="apt-get install clang")
    assert res.returncode == 0, res.stderr
    return [str(exe)]


def run_driver(driver: list[str], *args: str | Path) -> str:
    """The driver's stdout; it must exit 0 with no sanitizer report."""
    res = run([*driver, *map(str, args)], env={**os.environ, **SANITIZER_ENV})
    assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, res.stderr
    assert res.returncode == 0, res.stderr
    return res.stdout


def verify_all(driver: list[str], blobs: list[bytes], tmp_path: Path) -> list[str]:
    """`esb verify` on every blob (400 per run): one output line per blob."""
    paths = []
    for n, b in enumerate(blobs):
        p = tmp_path / f"{n}.esb"
        p.write_bytes(b)
        paths.append(str(p))
    lines: list[str] = []
    env = {**os.environ, **SANITIZER_ENV}
    for lo in range(0, len(paths), 400):
        res = run([*driver, "verify", *paths[lo : lo + 400]], env=env)
        assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, res.stderr
        assert res.returncode in (0, 1), res.stderr
        lines += res.stdout.splitlines()
    assert len(lines) == len(blobs)
    return lines


def make_export(out: Path) -> None:
    """Build an export-c directory's ``model_main`` as its own Makefile says: clang with the
    sanitizers where they link, else gcc.

    ``make -n`` reads the Makefile (every prerequisite must exist) and prints its command;
    that command runs as printed except that ``esb.c``, the runtime's own file byte for byte
    (the callers check it), comes as the object tests/cbuild.py compiles once per session
    with the same compiler and flags. tests/test_c_runtime.py runs the Makefile for real."""
    require_tool(shutil.which("make") is not None, what="make", install="apt-get install make")
    assert (out / "esb.c").read_bytes() == (C_DIR / "esb.c").read_bytes()
    for cc, flags in _export_builds():
        obj, res = cbuild.build([cc, *flags, "-c", str(C_DIR / "esb.c")], name="esb.o")
        if res.returncode != 0 and "fsanitize" in res.stdout + res.stderr:
            continue  # clang without its sanitizer runtimes: gcc
        assert res.returncode == 0, res.stderr
        res = run(["make", "-n", "-s", "-C", str(out), f"CC={cc}", f"CFLAGS={' '.join(flags)}"])
        assert res.returncode == 0, res.stdout + res.stderr
        commands = [shlex.split(ln) for ln in res.stdout.splitlines() if ln.startswith(f"{cc} ")]
        assert len(commands) == 1 and commands[0].count("esb.c") == 1, res.stdout
        cmd = [str(obj) if arg == "esb.c" else arg for arg in commands[0]]
        res = run(cmd, cwd=out)
        assert res.returncode == 0, res.stdout + res.stderr
        return
    raise AssertionError("gcc failed to build the runtime")


def _export_builds() -> list[tuple[str, list[str]]]:
    sanitized = ("clang", [*CFLAGS, "-fsanitize=address,undefined"])
    return [sanitized, ("gcc", CFLAGS)] if shutil.which("clang") else [("gcc", CFLAGS)]


def build_probe(source: str, tmp_path: Path) -> Path:
    """A small C program against esb.h and esb.c (gcc -Werror)."""
    probe = tmp_path / "probe.c"
    probe.write_text(source)
    exe = tmp_path / "probe"
    obj = cbuild.runtime_object("gcc", CFLAGS)  # esb.c, compiled once per session
    cmd = ["gcc", *CFLAGS, "-I", str(C_DIR), str(probe), str(obj), "-lm"]
    res = run([*cmd, "-o", str(exe)])
    assert res.returncode == 0, res.stderr
    return exe


def build_cross(arch: str, tmp_path: Path) -> list[str]:
    """The driver, statically cross-built for ``arch`` and run under QEMU user mode."""
    cc, qemu = CROSS[arch]
    how = "apt-get install gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user-static"
    require_tool(
        shutil.which(cc) is not None and shutil.which(qemu) is not None, what=cc, install=how
    )
    exe, res = cbuild.build([cc, *CFLAGS, "-static", *DRIVER_SOURCES, "-lm"], name="esb")
    assert res.returncode == 0, res.stderr
    return [qemu, str(exe)]


def fuzz_seeds(seeds: list[bytes], tmp_path: Path, *, runs: int = 20000) -> None:
    """fuzz/c/fuzz_esb_open.c under libFuzzer + ASan + UBSan: ``runs`` fixed-seed inputs
    grown from ``seeds``, with no crash or sanitizer report."""
    require_tool(shutil.which("clang") is not None, what="clang", install="apt-get install clang")
    exe, res = cbuild.build(FUZZ_BUILD, name="fuzz_esb_open")
    if res.returncode != 0 and "fsanitize" in res.stderr:
        require_tool(False, what="clang's libFuzzer runtime", install="apt-get install clang")
    assert res.returncode == 0, res.stderr
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, blob in enumerate(seeds):
        (corpus / f"seed{n}.esb").write_bytes(blob)
    res = run([str(exe), "-seed=1", f"-runs={runs}", "-max_len=4096", str(corpus)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"Done {runs} runs" in res.stderr
