"""Data files that declare more memory than the cap: ``Error:`` and exit 1, quickly, without
allocating (a child process under an address-space limit runs the real CLI)."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from edgesparse.data import DEFAULT_MAX_DATA_BYTES, load_calibration, load_dataset
from edgesparse.errors import InputError, ModelFileError
from edgesparse.formats import esb
from edgesparse.ir import from_dense

AS_LIMIT = 2 << 30  # the declared arrays are far larger: any attempt to allocate them fails
N_FEATURES = 64


def _npy_header_only(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _model(tmp_path: Path) -> Path:
    w = np.zeros((1, N_FEATURES))
    w[0, :3] = [1.0, -2.0, 0.5]
    path = tmp_path / "m.esb"
    esb.write(from_dense(w, bias=[0.0], head="hard", classes=np.array([0, 1])), path)
    return path


def _zip_claiming(tmp_path: Path, declared: int) -> Path:
    """An .npz whose X.npy member's central-directory entry claims ``declared`` unpacked bytes
    (what a real deflate bomb of zeros declares honestly, without writing gigabytes here)."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X.npy", _npy_header_only((declared // 8 // N_FEATURES, N_FEATURES)))
    raw = bytearray(path.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")
    struct.pack_into("<I", raw, cd + 24, declared)  # uncompressed size in the central directory
    path.write_bytes(bytes(raw))
    return path


def _cli_limited(*args: str | Path, env: dict[str, str] | None = None):
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({AS_LIMIT}, {AS_LIMIT}))\n"
        "from edgesparse.cli import main\n"
        "sys.argv = ['edgesparse', *sys.argv[1:]]\n"
        "main()\n"
    )
    full_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )
    return res, time.monotonic() - started


def _assert_one_error(res, elapsed: float, contains: str) -> None:
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "MemoryError" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert contains in lines[0], lines[0]
    assert elapsed < 30, elapsed


def test_npy_declaring_a_terabyte_array_is_refused_before_loading(tmp_path: Path) -> None:
    X = tmp_path / "X.npy"
    X.write_bytes(_npy_header_only((10**12, N_FEATURES)))  # 512 TB declared, no data
    res, elapsed = _cli_limited("predict", _model(tmp_path), X)
    _assert_one_error(
        res,
        elapsed,
        f"{X}: its array would take {8 * 10**12 * N_FEATURES} bytes, more than the data-file "
        f"limit of {DEFAULT_MAX_DATA_BYTES}; split the data, or if you trust it raise the "
        "limit with EDGESPARSE_MAX_DATA_BYTES=<bytes>",
    )


def test_npz_member_unpacking_past_the_cap_is_refused(tmp_path: Path) -> None:
    bomb = _zip_claiming(tmp_path, 4_000_000_000)
    res, elapsed = _cli_limited("predict", _model(tmp_path), bomb)
    _assert_one_error(res, elapsed, "member 'X.npy' unpacks to 4000000000 bytes, more than")


def test_real_deflate_bomb_is_refused_under_a_lowered_cap(tmp_path: Path) -> None:
    bomb = tmp_path / "zeros.npz"
    np.savez_compressed(bomb, X=np.zeros((1 << 17, N_FEATURES)))  # 64 MiB of zeros, ~64 KiB
    assert bomb.stat().st_size < 1 << 20
    res, elapsed = _cli_limited(
        "predict", _model(tmp_path), bomb, env={"EDGESPARSE_MAX_DATA_BYTES": str(1 << 20)}
    )
    _assert_one_error(res, elapsed, "unpacks to 67108992 bytes, more than the data-file limit")


def test_npz_array_larger_than_its_member_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", _npy_header_only((1000, N_FEATURES)))
    with pytest.raises(InputError, match=r"member 'X.npy' declares a 512000-byte array in 128 "):
        load_dataset(path)


def test_cap_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    X = tmp_path / "X.npy"
    np.save(X, np.ones((4, N_FEATURES)))
    assert load_dataset(X).X.shape == (4, N_FEATURES)
    monkeypatch.setenv("EDGESPARSE_MAX_DATA_BYTES", "1000")
    with pytest.raises(InputError, match="its array would take 2048 bytes, more than the data-"):
        load_dataset(X)
    table = tmp_path / "t.csv"
    table.write_text("1,2,0\n" * 500)
    monkeypatch.setenv("EDGESPARSE_MAX_DATA_BYTES", str(32 * 1000))
    with pytest.raises(ModelFileError) as info:
        load_calibration(table)
    assert str(info.value) == (
        f"calibration file {table} is 3000 bytes, more than the limit of 1000 bytes; a text "
        "table may be 1/32 of the data-file limit (reading text takes up to 32 bytes of memory "
        "per byte): save the data as .npy or .npz, or raise the limit with "
        "EDGESPARSE_MAX_DATA_BYTES=<bytes>"
    )
    monkeypatch.setenv("EDGESPARSE_MAX_DATA_BYTES", "lots")
    with pytest.raises(InputError, match="EDGESPARSE_MAX_DATA_BYTES='lots' is not a whole"):
        load_dataset(X)


def test_pairs_file_shares_the_text_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgesparse.data import read_pairs

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("u1,i1\n" * 40)
    assert len(read_pairs(pairs)[0]) == 40
    monkeypatch.setenv("EDGESPARSE_MAX_DATA_BYTES", str(32 * 100))
    with pytest.raises(InputError) as info:
        read_pairs(pairs)
    assert str(info.value) == (
        f"pairs file {pairs} is 240 bytes, more than the limit of 100 bytes; a text table may "
        "be 1/32 of the data-file limit (reading text takes up to 32 bytes of memory per "
        "byte): split it, or raise the limit with EDGESPARSE_MAX_DATA_BYTES=<bytes>"
    )
