"""Provisioning of emulated targets: the fake CPU description (hand-checked), the apt sources
taken from the host, the hand-encoded verification model, and a real setup of rpi4 run under
qemu (downloads ~80 MB once into the default cache; later runs reuse it and take seconds)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgesparse.bench import provision as P
from edgesparse.bench import targets as T
from edgesparse.bench.debian import host_debian_sources
from edgesparse.cli import cli
from edgesparse.errors import ToolMissingError
from tests.conftest import require_tool


def test_cpuinfo_rpi5() -> None:
    text = P.render_cpuinfo(T.get_target("rpi5"))
    blocks = text.split("\n\n")
    assert len(blocks) == 5  # four processors and the board's Model line
    # Hand-decoded from MIDR 0x414fd0b1 (Cortex-A76 r4p1), as a Pi 5 kernel prints it.
    assert blocks[3] == (
        "processor\t: 3\n"
        "BogoMIPS\t: 108.00\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
        "asimdrdm lrcpc dcpop asimddp\n"
        "CPU implementer\t: 0x41\n"
        "CPU architecture: 8\n"
        "CPU variant\t: 0x4\n"
        "CPU part\t: 0xd0b\n"
        "CPU revision\t: 1"
    )
    assert blocks[4] == "Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n"


def test_cpuinfo_rpi3_fields() -> None:
    text = P.render_cpuinfo(T.get_target("rpi3"))
    assert text.count("processor\t:") == 4
    assert "CPU part\t: 0xd03\nCPU revision\t: 4\n" in text
    assert "CPU variant\t: 0x0\n" in text and "asimddp" not in text


def test_cpu_sysfs_rpi4() -> None:
    files = P.cpu_sysfs(T.get_target("rpi4"))
    assert files["possible"] == files["online"] == "0-3\n"
    assert files["cpu2/cpufreq/cpuinfo_max_freq"] == "1800000\n"
    assert files["cpu2/cpufreq/cpuinfo_min_freq"] == "600000\n"
    assert files["cpu2/topology/core_id"] == "2\n"
    assert files["cpu2/topology/core_siblings_list"] == "0-3\n"
    assert files["cpu2/topology/thread_siblings"] == "4\n"  # bit 2
    assert files["cpu2/regs/identification/midr_el1"] == "0x00000000410fd083\n"
    # L1d: 32 KiB, 2 ways, 64 B lines -> 256 sets, private; L2: 1 MiB shared by all four.
    assert files["cpu1/cache/index0/type"] == "Data\n"
    assert files["cpu1/cache/index0/number_of_sets"] == "256\n"
    assert files["cpu1/cache/index0/shared_cpu_list"] == "1\n"
    assert files["cpu1/cache/index2/size"] == "1024K\n"
    assert files["cpu1/cache/index2/number_of_sets"] == "1024\n"
    assert files["cpu1/cache/index2/shared_cpu_map"] == "f\n"
    assert not any(k.startswith("cpu4/") for k in files)


def test_verify_model_is_valid_and_right() -> None:
    w = ((1.0, -2.0), (0.5, 3.0), (-1.0, 4.0))
    blob = P.verify_model(w)
    model = onnx.load_from_string(blob)
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"X": x})[0]
    np.testing.assert_allclose(got, x @ np.array(w, dtype=np.float32), rtol=1e-6)


def test_host_debian_sources(tmp_path: Path) -> None:
    one_line = tmp_path / "sources.list"
    one_line.write_text(
        "# comment\n"
        "deb http://mirror.example/debian bookworm main contrib\n"
        "deb-src http://mirror.example/debian bookworm main\n"
        "deb [arch=amd64] https://vendor.example/apt stable main\n"
        "deb http://mirror.example/debian trixie main\n"
    )
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm-updates\n"
        "Components: main\nEnabled: no\n"
    )
    (parts / "ignored.txt").write_text("deb http://x.example/debian bookworm main\n")
    text = host_debian_sources("bookworm", arch="arm64", roots=(one_line, parts))
    assert text == (
        "deb [arch=arm64] http://mirror.example/debian bookworm main contrib\n"
        "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://sec.example/debian-security bookworm-security main\n"
    )


# ----------------------------------------------------------------------------------------------
# The real thing: Debian's aarch64 Python with numpy and onnxruntime under qemu.


@pytest.fixture(scope="session")
def rpi4() -> T.Target:
    """rpi4 set up in the default cache (first run downloads; later runs are instant)."""
    require_tool(
        shutil.which("qemu-aarch64-static") is not None,
        what="qemu-aarch64-static",
        install="apt-get install qemu-user-static",
    )
    target = T.get_target("rpi4")
    P.provision(target)
    return target


_GUEST = r"""
import json, os, platform, sys
import numpy as np, onnxruntime as ort
x = np.load(sys.argv[2])
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
y = sess.run(None, {"X": x})[0]
np.save(sys.argv[3], y)
print(json.dumps({"machine": platform.machine(), "cpu_count": os.cpu_count(),
                  "numpy": np.__version__, "onnxruntime": ort.__version__,
                  "cpuinfo": open("/proc/cpuinfo").read(), "home": os.environ["HOME"]}))
"""


def test_rpi4_guest_runs_onnxruntime(rpi4: T.Target, tmp_path: Path) -> None:
    assert T.target_status(rpi4)[0] is True
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, 4)).astype(np.float32)
    x = rng.normal(size=(8, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "mm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "mm.onnx")
    np.save(tmp_path / "x.npy", x)

    lau = T.launch(rpi4)
    assert lau.emulated and lau.argv[1:3] == ["-cpu", "cortex-a72"]
    argv = [*lau.argv, "-c", _GUEST, str(tmp_path / "mm.onnx"), str(tmp_path / "x.npy")]
    done = subprocess.run(
        [*argv, str(tmp_path / "y.npy")], env=lau.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout)
    assert info["machine"] == "aarch64"
    assert info["cpu_count"] == rpi4.cores == 4
    assert rpi4.guest is not None
    pins = dict(w.split("==") for w in rpi4.guest.wheels)
    assert (info["numpy"], info["onnxruntime"]) == (pins["numpy"], pins["onnxruntime"])
    assert "CPU part\t: 0xd08" in info["cpuinfo"]  # the board's, not the host's
    assert info["home"] == str(T.target_dir("rpi4") / "home")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), x @ w, rtol=1e-5, atol=1e-6)


def test_setup_is_idempotent(rpi4: T.Target) -> None:
    before = (T.target_dir("rpi4") / T.STAMP_NAME).read_text()
    calls: list[tuple[str, int, int]] = []
    P.provision(rpi4, progress=lambda *a: calls.append(a))
    # The early return, not a stopwatch, shows nothing was redone: no step but this one ran.
    assert calls == [("already set up", 1, 1)]
    assert (T.target_dir("rpi4") / T.STAMP_NAME).read_text() == before


def test_failed_setup_leaves_nothing(
    rpi4: T.Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A profile of its own, so the shared sysroot and wheels (already cached) are reused.
    devices = tmp_path / "devices"
    devices.mkdir()
    text = (T.devices_dir() / "rpi4.toml").read_text().replace('name = "rpi4"', 'name = "rpi4x"')
    (devices / "rpi4x.toml").write_text(text)
    target = T.get_target("rpi4x", directory=devices)

    def broken(*args: object, **kwargs: object) -> None:
        raise ToolMissingError("the guest died")

    monkeypatch.setattr(P, "_verify", broken)
    with pytest.raises(ToolMissingError, match="the guest died"):
        P.provision(target)
    assert not T.target_dir("rpi4x").exists()
    leftovers = T.cache_dir() / "tmp"
    assert not leftovers.exists() or not any(leftovers.glob("rpi4x*"))
    assert T.target_status(target) == (False, "not set up: run `edgesparse devices setup rpi4x`")


def test_cli_setup(rpi4: T.Target) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["devices", "setup", "rpi4"])
    assert result.exit_code == 0, result.output
    assert "rpi4: ready in " in result.output
    assert f"target:  {T.target_dir('rpi4')}" in result.output
    assert "guest:   python 3.11.2, numpy 2.4.6, onnxruntime 1.32.0" in result.output
    result = runner.invoke(cli, ["devices", "setup", "ssh://pi@board"])
    assert result.exit_code == 1
    assert "Error: ssh://pi@board is a real board: nothing to set up here" in result.output
