"""The hostile-model corpus (tests/attacks/make_attacks.py) against the real load path.

All fixtures are generated into a temporary folder and loaded by ``api.compress_file`` in one
child process that:

* runs under an address-space limit (``RLIMIT_AS`` = 2 GiB) and a per-file alarm (20 s);
* has every module the allow-list names imported up front (plus one legitimate load per
  compressor, so joblib's lazy imports are done), then records, for each hostile file, every
  module that appears in ``sys.modules`` and every ``importlib.import_module`` call: nothing
  may be imported while a hostile file is handled, and only allow-listed modules requested;
* sets ``EDGESPARSE_MAX_UNPACKED_BYTES`` to 32 MiB so the decompression bombs (96 MiB each)
  are three times over the cap without making the generator slow.

A payload that ran would create ``canaries/<name>``; none may exist afterwards, and no output
file may be written. The CLI path is checked too: one ``Error:`` line, exit code 1, no output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgesparse.loader import ALLOWED_GLOBALS, load_model
from tests.attacks import make_attacks
from tests.conftest import run_cli_limited

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = make_attacks.attacks("/unused")  # names and expectations only (bytes built lazily)
UNPACKED_CAP = 32 << 20
AS_LIMIT = 2 << 30

CHILD = textwrap.dedent(
    r"""
    import copyreg, importlib, io, json, os, resource, signal, sys, time, traceback
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    fixtures, canaries, outputs = (os.path.abspath(a) for a in sys.argv[1:4])

    # -- warm up: everything the allow-list names, and one legitimate load per compressor ----
    import joblib, numpy as np
    from sklearn.linear_model import LogisticRegression
    from edgesparse.pipeline import CompressOptions, compress_file
    from edgesparse.loader import ALLOWED_GLOBALS
    for module, _ in sorted(ALLOWED_GLOBALS):
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # e.g. the numpy 1.x spellings on numpy 2
    allowed_modules = {m for m, _ in ALLOWED_GLOBALS}
    est = LogisticRegression().fit(np.eye(3), [0, 1, 2])
    for i, c in enumerate([0, 3, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)]):
        joblib.dump(est, f"{outputs}/warm{i}.joblib", compress=c)
        warm = f"{outputs}/warm{i}"
        compress_file(CompressOptions(source=f"{warm}.joblib", output=f"{warm}.esb"))
        os.unlink(f"{outputs}/warm{i}.esb")
        os.unlink(f"{outputs}/warm{i}.joblib")
    import pickle
    for protocol in range(2, 6):
        with open(f"{outputs}/warm.pkl", "wb") as fh:
            pickle.dump(est, fh, protocol=protocol)
        compress_file(CompressOptions(source=f"{outputs}/warm.pkl", output=f"{outputs}/warm.esb"))
        os.unlink(f"{outputs}/warm.esb")
    os.unlink(f"{outputs}/warm.pkl")

    # -- recorders -------------------------------------------------------------------------
    requested = []
    real_import_module = importlib.import_module
    def recording_import_module(name, package=None):
        requested.append(name)
        return real_import_module(name, package)
    importlib.import_module = recording_import_module

    class Recorder:
        seen = []
        def find_spec(self, fullname, path=None, target=None):
            Recorder.seen.append(fullname)
            return None
    sys.meta_path.insert(0, Recorder())

    class Alarm(BaseException):
        pass
    def on_alarm(signum, frame):
        raise Alarm("timed out after 20 s")
    signal.signal(signal.SIGALRM, on_alarm)

    for entry in json.load(open(os.path.join(fixtures, "manifest.json"))):
        name = entry["name"]
        ext = {"copyreg-ext1": 0x7B, "copyreg-ext2": 0x1234, "copyreg-ext4": 0x12345678}
        if name in ext:  # the attacker's module registered os.system in the registry
            copyreg.add_extension("os", "system", ext[name])
        before = set(sys.modules)
        del requested[:], Recorder.seen[:]
        out = os.path.join(outputs, name + ".esb")
        t0 = time.perf_counter()
        signal.alarm(20)
        try:
            compress_file(CompressOptions(source=os.path.join(fixtures, entry["file"]), output=out))
            error, message = None, "loaded and compressed without an error"
        except BaseException as exc:
            error, message = type(exc).__name__, str(exc)
            if not isinstance(exc, Exception) or type(exc).__module__ != "edgesparse.errors":
                message += " | " + "".join(traceback.format_exception(exc))[-1500:]
        finally:
            signal.alarm(0)
        if name in ext:
            copyreg.remove_extension("os", "system", ext[name])
        print(json.dumps({
            "name": name,
            "error": error,
            "message": message,
            "seconds": round(time.perf_counter() - t0, 3),
            "new_modules": sorted(set(sys.modules) - before),
            "finder_calls": sorted(set(Recorder.seen)),
            "import_module": sorted(set(requested)),
            "not_allowed_requests": sorted(set(requested) - allowed_modules),
            "canary": os.path.exists(os.path.join(canaries, name)),
            "output_written": os.path.exists(out),
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        }), flush=True)
    """
).replace("AS_LIMIT", str(AS_LIMIT))


@pytest.fixture(scope="session")
def attack_results(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("attacks")
    fixtures, canaries, outputs = base / "fixtures", base / "canaries", base / "outputs"
    for d in (canaries, outputs):
        d.mkdir()
    make_attacks.write_all(fixtures, canaries)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EDGESPARSE_MAX_UNPACKED_BYTES": str(UNPACKED_CAP),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(fixtures), str(canaries), str(outputs)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=base,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    # Nothing at all was written: no canary, no output, no stray temp file.
    assert sorted(os.listdir(canaries)) == []
    assert sorted(os.listdir(outputs)) == []
    return results


def test_the_corpus_is_big_and_deterministic(tmp_path) -> None:
    assert len(ATTACKS) >= 40
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)
    a = make_attacks.write_all(tmp_path / "a", tmp_path / "c")
    b = make_attacks.write_all(tmp_path / "b", tmp_path / "c")
    assert a == b
    for entry in a:
        assert (tmp_path / "a" / entry["file"]).read_bytes() == (
            tmp_path / "b" / entry["file"]
        ).read_bytes(), entry["name"]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_refused(attack: make_attacks.Attack, attack_results: dict[str, dict]) -> None:
    r = attack_results[attack.name]
    assert r["error"] == attack.error, r["message"]
    assert attack.message in r["message"], r["message"]
    assert "\n" not in r["message"] and len(r["message"]) < 1000  # one line
    assert not r["canary"], "the payload ran"
    assert not r["output_written"]
    assert r["new_modules"] == [], "a module was imported while handling a hostile file"
    assert r["finder_calls"] == []
    assert r["not_allowed_requests"] == []
    # No timing bound here ("seconds" is kept for diagnosis): the child's 20 s alarm turns a
    # hang into an "Alarm" error, which the first assertion fails on, whatever the load.
    assert r["maxrss_mib"] < AS_LIMIT >> 20


def test_refusals_happen_before_import(attack_results: dict[str, dict]) -> None:
    # The modules the payloads name and that the warm-up did not import stay unimported.
    never = {"pty", "runpy", "timeit", "cProfile", "pdb", "ctypes", "pip", "_posixsubprocess"}
    for r in attack_results.values():
        assert not never & {m.split(".")[0] for m in r["new_modules"]}
    assert all(
        m in {mod for mod, _ in ALLOWED_GLOBALS}
        for r in attack_results.values()
        for m in r["import_module"]
    )


# ---------------------------------------------------------------------------------------------
# The CLI path
# ---------------------------------------------------------------------------------------------
CLI_SAMPLE = [
    "os-system",
    "stack-global-memoized",
    "joblib-object-array-os-system",
    "numpy-ndarray-constructor",
    "coef-object-array",
    "bomb-xz",
    "opcode-flood-zlib",
]


def test_cli_prints_one_error_line_and_writes_nothing(tmp_path) -> None:
    from click.testing import CliRunner

    from edgesparse.cli import cli

    canaries = tmp_path / "canaries"
    canaries.mkdir()
    by_name = {a.name: a for a in make_attacks.attacks(canaries)}
    work = tmp_path / "work"
    work.mkdir()
    for name in CLI_SAMPLE:
        a = by_name[name]
        src = work / f"{name}{a.suffix}"
        src.write_bytes(a.data)
        before = sorted(p.name for p in work.iterdir())
        result = CliRunner(env={"EDGESPARSE_MAX_UNPACKED_BYTES": str(UNPACKED_CAP)}).invoke(
            cli, ["compress", str(src), "-o", str(work / f"{name}.esb")]
        )
        assert result.exit_code == 1, (name, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (name, result.stderr)
        assert a.message in lines[0], (name, lines[0])
        assert sorted(p.name for p in work.iterdir()) == before, name
    assert list(canaries.iterdir()) == []


def test_cli_subprocess_hostile_pickle(tmp_path) -> None:
    # The real console entry point, in a fresh interpreter.
    canaries = tmp_path / "canaries"
    canaries.mkdir()
    a = {x.name: x for x in make_attacks.attacks(canaries)}["getattr-import-chain"]
    src = tmp_path / "hostile.pkl"
    src.write_bytes(a.data)
    proc = subprocess.run(
        [sys.executable, "-m", "edgesparse", "compress", str(src)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: refused to load ")
    assert "builtins.getattr" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canaries", "hostile.pkl"]
    assert list(canaries.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Size caps
# ---------------------------------------------------------------------------------------------
def test_file_size_cap_refuses_before_reading(tmp_path, monkeypatch) -> None:
    big = tmp_path / "huge.pkl"
    with open(big, "wb") as fh:  # sparse: 3 GiB that take no disk space
        fh.truncate(3 << 30)
    with pytest.raises(Exception) as info:
        load_model(big)
    assert type(info.value).__name__ == "ModelFileError"
    assert str(info.value) == (
        f"model file {big} is {3 << 30} bytes, more than the limit of {1 << 30} bytes; if you "
        "trust it, raise the limit with EDGESPARSE_MAX_MODEL_BYTES=<bytes> "
        "(or load_model(..., max_file_bytes=...))"
    )
    small = tmp_path / "m.pkl"
    small.write_bytes(b"\x80\x02N.")
    assert load_model(small) is None
    with pytest.raises(Exception, match="is 4 bytes, more than the limit of 3 bytes"):
        load_model(small, max_file_bytes=3)
    monkeypatch.setenv("EDGESPARSE_MAX_MODEL_BYTES", "3")
    with pytest.raises(Exception, match="is 4 bytes, more than the limit of 3 bytes"):
        load_model(small)
    monkeypatch.setenv("EDGESPARSE_MAX_MODEL_BYTES", "lots")
    with pytest.raises(ValueError, match="EDGESPARSE_MAX_MODEL_BYTES='lots' is not a whole"):
        load_model(small)
    with pytest.raises(ValueError, match="max_file_bytes must be a positive number"):
        load_model(small, max_file_bytes=0)


def test_unpacked_cap_applies_to_compressed_joblib_and_can_be_raised(tmp_path) -> None:
    import joblib

    path = tmp_path / "m.joblib"
    joblib.dump({"w": np.zeros(1 << 20)}, path, compress=3)  # 8 MiB unpacked, ~8 KiB on disk
    with pytest.raises(Exception) as info:
        load_model(path, max_unpacked_bytes=1 << 20)
    assert type(info.value).__name__ == "ModelFileError"
    assert str(info.value) == (
        f"cannot load {path}: it declares an array of {8 << 20} bytes, more than edgesparse "
        "allows by default; if you trust the file, raise the limit with "
        "EDGESPARSE_MAX_UNPACKED_BYTES=<bytes> (or load_model(..., max_unpacked_bytes=...))"
    )
    assert load_model(path, max_unpacked_bytes=16 << 20)["w"].shape == (1 << 20,)


def test_unpacked_cap_applies_to_zip_members(tmp_path) -> None:
    path = tmp_path / "w.npz"
    np.savez_compressed(path, coef=np.ones((4, 1 << 18)), intercept=np.zeros(4))
    with pytest.raises(Exception, match=r"archive members unpack to \d+ bytes, more than"):
        load_model(path, max_unpacked_bytes=1 << 20)
    assert load_model(path).coef.shape == (4, 1 << 18)


def test_npy_member_declaring_more_than_it_holds(tmp_path) -> None:
    import io
    import zipfile

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (1 << 40,)}
    )
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("coef.npy", head.getvalue() + bytes(64))
        zf.writestr("intercept.npy", b"")
    with pytest.raises(Exception, match="declares 8796093022208 bytes, but its archive member"):
        load_model(path)


# ---------------------------------------------------------------------------------------------
# Resource bombs: each alone, through the real CLI, under the documented budget
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", make_attacks.RESOURCE_BOMBS)
def test_resource_bomb_ends_within_budget(name: str, tmp_path) -> None:
    a = {x.name: x for x in make_attacks.attacks(tmp_path)}[name]
    src = tmp_path / f"{name}{a.suffix}"
    src.write_bytes(a.data)
    proc = run_cli_limited(
        ["compress", str(src), "-o", str(tmp_path / "o.esb")],
        unset=("EDGESPARSE_MAX_ARRAY_BYTES", "EDGESPARSE_MAX_UNPACKED_BYTES"),
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: "), proc.stderr
    assert (a.alone or a.message) in proc.stderr
    assert not (tmp_path / "o.esb").exists()
