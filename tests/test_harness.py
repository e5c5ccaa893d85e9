"""The bench harness end to end: real probe processes on the host, on emulated rpi4 (QEMU) and
over ssh to a real sshd on localhost; hanging, crashing and missing targets; strict mode."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import edgesparse
from edgesparse.bench import harness
from edgesparse.bench import targets as targets_mod
from edgesparse.bench.results_schema import validate_results
from edgesparse.bench.targets import Launch, get_target
from edgesparse.errors import ToolMissingError
from edgesparse.loader import load_model
from edgesparse.pipeline import CompressOptions, compress_file
from tests.conftest import require_tool

MODELS = Path(__file__).resolve().parent.parent / "models"
PKL = MODELS / "digits_pipeline.pkl"
DATA = MODELS / "digits_pipeline.test.npz"


@pytest.fixture(scope="module")
def esb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("harness") / "digits.esb"
    compress_file(CompressOptions(source=PKL, output=out, quantize="int8"))
    return out


@pytest.fixture(scope="module")
def onnx(esb: Path) -> Path:
    out = esb.with_suffix(".onnx")
    compress_file(CompressOptions(source=PKL, output=out, quantize="int8"))
    return out


@pytest.fixture(scope="module")
def oracle(esb: Path, onnx: Path) -> dict[str, float]:
    """Agreement and accuracy computed here, from scikit-learn's own predictions."""
    data = np.load(DATA)
    X, y = data["X"], data["y"]
    sk = load_model(PKL).predict(X)
    ours = edgesparse.load(esb).predict(X)
    ort = edgesparse.load(onnx).predict(X)
    return {
        "esb_agreement": float(np.mean(ours == sk)),
        "esb_accuracy": float(np.mean(ours == y)),
        "onnx_agreement": float(np.mean(ort == sk)),
        "sk_accuracy": float(np.mean(sk == y)),
    }


def _by(results: dict, target: str, artifact: str, batch: int) -> dict:
    (row,) = [
        r
        for r in results["results"]
        if (r["target"], r["artifact"], r["batch_size"]) == (target, artifact, batch)
    ]
    return row


def test_host_end_to_end(esb: Path, onnx: Path, oracle: dict[str, float]) -> None:
    calls: list[tuple[str, int, int]] = []
    results = harness.run_bench(
        artifacts=[esb, PKL, onnx],
        targets=["host"],
        data=DATA,
        batch_sizes=(1, 8),
        runs=30,
        warmup=3,
        progress=lambda m, d, t: calls.append((m, d, t)),
    )
    validate_results(results)
    assert results["reference"] == {"kind": "sklearn", "source": "digits_pipeline.pkl"}
    assert results["settings"]["labels"] == f"{DATA} (y)"  # accuracy came from the npz's y
    assert len(results["results"]) == 6
    for batch in (1, 8):
        row = _by(results, "host", "digits.onnx", batch)
        assert row["status"] == "ok" and row["engine"] == "onnx"
        assert row["agreement"] == pytest.approx(oracle["onnx_agreement"])
        sk = _by(results, "host", "digits_pipeline.pkl", batch)
        ours = _by(results, "host", "digits.esb", batch)
        assert sk["status"] == ours["status"] == "ok"
        assert sk["agreement"] == 1.0
        assert sk["accuracy"] == pytest.approx(oracle["sk_accuracy"])
        assert ours["agreement"] == pytest.approx(oracle["esb_agreement"])
        assert ours["accuracy"] == pytest.approx(oracle["esb_accuracy"])
        assert ours["emulated"] is False and ours["engine"] == "esb"
        assert ours["model_bytes"] == esb.stat().st_size
        assert ours["runs"] == 30
        # One process per artifact: the scikit-learn process holds scikit-learn and scipy.
        assert sk["peak_rss_bytes"] > ours["peak_rss_bytes"] > 0
        assert ours["cold_start_ms"] > ours["load_ms"] > 0
    target = results["targets"][0]
    assert target["status"] == "ok" and target["environment"]["python"]
    assert calls[-1] == ("done", 3, 3)
    assert calls[:4] == [
        ("loading digits_pipeline.test.npz and the reference predictions", 0, 3),
        ("host: digits.esb", 0, 3),
        ("host: digits_pipeline.pkl", 1, 3),
        ("host: digits.onnx", 2, 3),
    ]


def test_cli_bench(esb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from edgesparse import cli as cli_module
    from edgesparse.cli import cli

    out = tmp_path / "report"
    args = ["bench", str(esb), "--data", str(DATA), "--batch", "2", "--runs", "5", "-o", str(out)]
    # stderr not a terminal (CliRunner's): no progress lines, the table alone
    res = CliRunner().invoke(cli, [*args, "--warmup", "1"])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    # on a terminal: one line per step on stderr, stdout unchanged
    monkeypatch.setattr(cli_module, "_stderr_is_tty", lambda: True)
    tty = CliRunner().invoke(cli, [*args, "--warmup", "1"])
    assert tty.exit_code == 0, tty.output
    assert tty.stderr.splitlines() == [
        "[1/1] loading digits_pipeline.test.npz and the reference predictions ...",
        "[1/1] host: digits.esb ...",
    ]
    assert tty.stdout.splitlines()[0] == res.stdout.splitlines()[0]
    lines = res.output.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("target"))
    row = lines[header + 1].split()
    assert row[:3] == ["host", "digits.esb", "2"] and row[-1] == "ok"
    for name in ("results.json", "report.md", "report.html"):
        assert (out / name).is_file() and str(out / name) in res.output
    bad = CliRunner().invoke(cli, [*args, "--target", "nosuchboard"])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines()[-1].startswith("Error: unknown target 'nosuchboard'")


def test_reference_falls_back_to_labels_then_first_artifact(
    esb: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = np.load(DATA)
    np.save(tmp_path / "X.npy", data["X"])
    np.save(tmp_path / "y.npy", data["y"])
    ours = edgesparse.load(esb).predict(data["X"])
    with_labels = harness.run_bench(
        artifacts=[esb],
        targets=["host"],
        data=tmp_path / "X.npy",
        labels=tmp_path / "y.npy",
        runs=3,
        warmup=0,
    )
    validate_results(with_labels)
    assert with_labels["reference"]["kind"] == "labels"
    row = with_labels["results"][0]
    assert row["agreement"] == row["accuracy"] == pytest.approx(np.mean(ours == data["y"]))
    without = harness.run_bench(
        artifacts=[esb], targets=["host"], data=tmp_path / "X.npy", runs=3, warmup=0
    )
    # no progress callback: the library prints nothing
    assert capfd.readouterr() == ("", "")
    validate_results(without)
    assert without["reference"] == {"kind": "artifact", "source": "digits.esb on the host"}
    assert without["results"][0]["agreement"] == 1.0
    assert without["results"][0]["accuracy"] is None


# -- failing targets ----------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead, merely not yet reaped by its new parent


@pytest.fixture()
def fake_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Targets whose "Python" is a shell script that hangs (with a child in its process
    group), crashes with SIGSEGV, is SIGKILLed as by the OOM killer, or lacks its tools."""
    scripts = {
        "hang": f"sleep 300 & echo $! > {tmp_path}/child.pid; sleep 300\n",
        "crash": "kill -SEGV $$\n",
        "oom": "echo 'about to be killed' >&2; kill -KILL $$\n",
    }
    real_launch = targets_mod.launch
    host = get_target("host")

    def fake_launch(target: object, **kw: object) -> Launch:
        name = target.name  # type: ignore[attr-defined]
        if name == "noqemu":
            raise ToolMissingError(
                "qemu-aarch64-static is missing (needed for noqemu): "
                "apt-get install qemu-user-static"
            )
        if name in scripts:
            path = tmp_path / f"{name}.sh"
            path.write_text(scripts[name])
            return Launch(argv=["/bin/sh", str(path)], env=dict(os.environ), emulated=False)
        return real_launch(target, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(targets_mod, "launch", fake_launch)
    fakes = {n: dataclasses.replace(host, name=n) for n in [*scripts, "noqemu"]}
    return {"fakes": fakes, "host": host, "pidfile": tmp_path / "child.pid"}


def test_failing_targets_are_recorded_and_others_survive(
    esb: Path, fake_targets: dict, oracle: dict[str, float]
) -> None:
    fakes = fake_targets["fakes"]
    started = time.monotonic()
    results = harness.run_bench(
        artifacts=[esb],
        targets=[
            fakes["hang"],
            fakes["crash"],
            fake_targets["host"],
            fakes["oom"],
            fakes["noqemu"],
        ],
        data=DATA,
        runs=5,
        warmup=1,
        timeout_s=2.0,
    )
    assert time.monotonic() - started < 30
    validate_results(results)
    reasons = {r["target"]: r["error"] for r in results["results"]}
    assert reasons["hang"] == "timeout after 2 s (process group killed)"
    assert reasons["crash"].startswith("crashed: killed by SIGSEGV")
    assert reasons["oom"] == (
        "killed by SIGKILL (out of memory? the kernel's OOM killer sends it) about to be killed"
    )
    assert "apt-get install qemu-user-static" in reasons["noqemu"]
    assert reasons["host"] is None
    # No scikit-learn artifact in this run: the labels (y in the .npz) are the reference.
    assert results["reference"]["kind"] == "labels"
    assert _by(results, "host", "digits.esb", 1)["agreement"] == pytest.approx(
        oracle["esb_accuracy"]
    )
    statuses = {t["target"]: t["status"] for t in results["targets"]}
    assert statuses == {
        "hang": "failed",
        "crash": "failed",
        "host": "ok",
        "oom": "failed",
        "noqemu": "failed",
    }
    for row in results["results"]:
        if row["status"] == "failed":
            assert row["latency_us"] is None and row["cold_start_ms"] is None
    # The hanging script's background child was in the killed process group.
    child = int(fake_targets["pidfile"].read_text())
    deadline = time.monotonic() + 5
    while _pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(child)


def test_strict_raises_on_first_failure(esb: Path, fake_targets: dict) -> None:
    with pytest.raises(
        edgesparse.TargetError, match=r"crash: digits\.esb: crashed: killed by SIGSEGV"
    ):
        harness.run_bench(
            artifacts=[esb],
            targets=[fake_targets["host"], fake_targets["fakes"]["crash"]],
            data=DATA,
            runs=2,
            warmup=0,
            strict=True,
        )


def test_bad_arguments(esb: Path, tmp_path: Path) -> None:
    with pytest.raises(edgesparse.InputError, match="unknown artifact type"):
        harness.run_bench(artifacts=[tmp_path / "m.bin"], targets=["host"], data=DATA)
    with pytest.raises(edgesparse.InputError, match="each target may be given once"):
        harness.run_bench(artifacts=[esb], targets=["host", "host"], data=DATA)
    with pytest.raises(edgesparse.ModelFileError, match="artifact not found"):
        harness.run_bench(artifacts=[tmp_path / "nope.esb"], targets=["host"], data=DATA)
    with pytest.raises(edgesparse.InputError, match="batch sizes"):
        harness.run_bench(artifacts=[esb], targets=["host"], data=DATA, batch_sizes=(0,))


# -- emulated Raspberry Pi 4 ---------------------------------------------------------------------
def test_emulated_rpi4_end_to_end(esb: Path, onnx: Path, oracle: dict[str, float]) -> None:
    require_tool(
        targets_mod.qemu_binary("aarch64") is not None,
        what="qemu-aarch64-static",
        install="apt-get install qemu-user-static",
    )
    from edgesparse.bench.provision import provision

    rpi4 = get_target("rpi4")
    provision(rpi4)
    results = harness.run_bench(
        artifacts=[esb, onnx, PKL],
        targets=[rpi4],
        data=DATA,
        batch_sizes=(1, 64),
        runs=20,
        warmup=5,
    )
    validate_results(results)
    (target,) = results["targets"]
    assert target["emulated"] is True and target["status"] == "ok"
    env = target["environment"]
    assert env["machine"] == "aarch64"
    assert env["qemu"] and env["qemu"][0].isdigit()
    assert env["mem_total_bytes"] is None  # the guest's /proc/meminfo is the host's
    assert results["reference"]["kind"] == "sklearn"
    for batch in (1, 64):
        # onnxruntime's aarch64 build under QEMU (the cpuinfo trap is handled by the target).
        row = _by(results, "rpi4", "digits.onnx", batch)
        assert row["status"] == "ok", row["error"]
        assert row["emulated"] is True
        assert row["agreement"] == pytest.approx(oracle["onnx_agreement"])
        row = _by(results, "rpi4", "digits.esb", batch)
        assert row["status"] == "ok", row["error"]
        assert row["emulated"] is True
        # Same int8 model, same labels on the emulated Cortex-A72 as on the host.
        assert row["agreement"] == pytest.approx(oracle["esb_agreement"])
        assert row["accuracy"] == pytest.approx(oracle["esb_accuracy"])
        assert row["peak_rss_bytes"] is None
        assert row["memory_method"] == "guest heap (mallinfo2 + tracemalloc)"
        assert row["model_rss_bytes"] > 0
        skipped = _by(results, "rpi4", "digits_pipeline.pkl", batch)
        assert skipped["status"] == "skipped" and "host only" in skipped["error"]


# -- a real board over ssh (a real sshd on localhost) -------------------------------------------
@contextlib.contextmanager
def _unused_port() -> Iterator[int]:
    """A localhost port that stays bound (not listening) while the block runs: connecting to
    it is refused, and no other process (another pytest-xdist worker's sshd, say) can take it
    meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def _free_port() -> int:
    """A localhost port free a moment ago (bound to port 0, then closed): another process may
    take it before the caller binds it, so the caller must handle that (see _start_sshd)."""
    with _unused_port() as port:
        return port


_SSHD_TRIES = 5
"""Ports the sshd fixture tries: a free port found by binding port 0 and closing it can be
taken by another process (another worker's sshd) before sshd binds it; then sshd says so and
exits, and the fixture starts it again on a new port."""


def _check_login(port: int, options: list[str], log: Path) -> None:
    """sshd without PAM refuses locked accounts and ones without a usable shell (``nobody``,
    say): then skip, saying so, rather than fail every ssh test with "Permission denied"."""
    user = getpass.getuser()
    probe = subprocess.run(
        ["ssh", *options, "-o", "BatchMode=yes", "-p", str(port), f"{user}@127.0.0.1", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode == 0:
        return
    refused = [line.strip() for line in log.read_text().splitlines() if "not allowed" in line]
    if not refused:
        pytest.fail(f"ssh to the test sshd failed: {probe.stderr.strip()}; sshd: {log.read_text()}")
    message = f"sshd will not log {user} in ({refused[0]}); run the ssh tests as a regular user"
    if os.environ.get("EDGESPARSE_REQUIRE_TARGETS") == "1":
        pytest.fail(f"EDGESPARSE_REQUIRE_TARGETS=1 but {message}")
    pytest.skip(message)


def _sshd_dir(d: Path) -> Path:
    """``d`` with what a test sshd needs: host and client keys, the client's key authorized,
    the board's private TMPDIR."""
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True
        )
    shutil.copyfile(d / "client_key.pub", d / "authorized_keys")
    (d / "board_tmp").mkdir()
    # sshd started as root insists on its privilege separation folder (Debian's service
    # creates it at boot); make it if it is missing and leave it, as the service does: removing
    # it afterwards broke every other sshd still running, e.g. another checkout's test run.
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return d


def _sshd_config(d: Path, port: int) -> None:
    sftp = next(
        (
            p
            for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server")
            if Path(p).exists()
        ),
        "internal-sftp",
    )
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nLogLevel INFO\n"
        f"Subsystem sftp {sftp}\n"
        # A private TMPDIR for the "board": tests check it is left empty, unaffected by
        # other runs that use /tmp at the same time.
        f"SetEnv TMPDIR={d}/board_tmp\n"
    )


def _start_sshd(d: Path) -> tuple[subprocess.Popen[bytes], int]:
    """sshd on a free localhost port, listening: its own log line says so (a connection alone
    could reach another process that took the port). When the port was taken between finding
    it and sshd binding it, sshd exits saying so and it starts again on a new port."""
    log = d / "sshd.log"
    for _ in range(_SSHD_TRIES):
        port = _free_port()
        _sshd_config(d, port)
        with open(log, "wb") as err:  # sshd keeps its own copy of the descriptor
            proc = subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        listening = f"Server listening on 127.0.0.1 port {port}."
        deadline = time.monotonic() + 30
        while listening not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            return proc, port
        text = log.read_text(errors="replace")
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail(f"sshd did not start listening within 30 s: {text}")
        if f"Bind to port {port} " not in text:  # sshd: "Bind to port N on ADDR failed: ..."
            pytest.fail(f"sshd did not start: {text}")
    pytest.fail(f"sshd found each of {_SSHD_TRIES} free ports taken before it bound them")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tools = [shutil.which(t) for t in ("ssh", "scp", "ssh-keygen")]
    require_tool(
        all(tools) and Path("/usr/sbin/sshd").exists(),
        what="OpenSSH (sshd, ssh, scp, ssh-keygen)",
        install="apt-get install openssh-server openssh-client",
    )
    d = _sshd_dir(tmp_path_factory.mktemp("sshd"))
    proc, port = _start_sshd(d)
    try:
        host_pub = (d / "host_key.pub").read_text().split()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        options = [
            "-i",
            str(d / "client_key"),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={d}/known_hosts",
            "-o",
            "StrictHostKeyChecking=yes",
        ]
        _check_login(port, options, d / "sshd.log")
        yield {"port": port, "options": options, "board_tmp": d / "board_tmp"}
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_sshd_starts_again_on_a_new_port_when_its_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of _free_port: another process listens on the port before sshd binds it.
    sshd fails to bind and exits; _start_sshd starts it on another port, and the sshd there
    is ours (its own log says it listens), not the process holding the first port."""
    require_tool(
        shutil.which("ssh-keygen") is not None and Path("/usr/sbin/sshd").exists(),
        what="OpenSSH (sshd, ssh-keygen)",
        install="apt-get install openssh-server openssh-client",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        first = int(taken.getsockname()[1])
        ports = iter([first])
        real = _free_port
        monkeypatch.setattr(
            sys.modules[__name__], "_free_port", lambda: next(ports, None) or real()
        )
        proc, port = _start_sshd(_sshd_dir(tmp_path))
        try:
            assert port != first and proc.poll() is None
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                assert c.recv(4).startswith(b"SSH-")  # sshd's banner
        finally:
            _stop(proc)


def test_ssh_target_against_local_sshd(
    esb: Path, sshd: dict[str, object], oracle: dict[str, float]
) -> None:
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{sshd['port']}?python={sys.executable}"
    results = harness.run_bench(
        artifacts=[esb, PKL],
        targets=[url],
        data=DATA,
        batch_sizes=(1, 4),
        runs=10,
        warmup=2,
        ssh_options=sshd["options"],  # type: ignore[arg-type]
    )
    validate_results(results)
    for batch in (1, 4):
        row = _by(results, url, "digits.esb", batch)
        assert row["status"] == "ok", row["error"]
        assert row["emulated"] is False
        assert row["agreement"] == pytest.approx(oracle["esb_agreement"])
        assert row["memory_method"] == "VmHWM/VmRSS" and row["peak_rss_bytes"] > 0
        # Measured on the board from the wrapper's `date +%s%N` timestamp.
        assert row["cold_start_method"] == "spawn timestamp"
        assert row["cold_start_ms"] > row["load_ms"] > 0
        assert _by(results, url, "digits_pipeline.pkl", batch)["status"] == "skipped"
    assert results["targets"][0]["environment"]["python"]
    # The harness's temp dir went to the board's TMPDIR, and it was removed.
    echo = subprocess.run(
        [
            "ssh",
            *sshd["options"],  # type: ignore[misc]
            "-p",
            str(sshd["port"]),
            f"{getpass.getuser()}@127.0.0.1",
            "echo $TMPDIR",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert echo.stdout.strip() == str(sshd["board_tmp"])
    assert not any(Path(sshd["board_tmp"]).iterdir())  # type: ignore[arg-type]


def test_ssh_unreachable_board_is_a_failed_row(esb: Path) -> None:
    require_tool(
        shutil.which("ssh") is not None,
        what="ssh",
        install="apt-get install openssh-client",
    )
    with _unused_port() as port:  # held: nothing listens there while the bench runs
        url = f"ssh://127.0.0.1:{port}"
        results = harness.run_bench(artifacts=[esb], targets=[url], data=DATA, runs=2, warmup=0)
    validate_results(results)
    (row,) = results["results"]
    assert row["status"] == "failed"
    # Ours up to ssh's exit code 255 (it failed to connect); the rest is OpenSSH's own words.
    assert row["error"].startswith("ssh 127.0.0.1: exit code 255: "), row["error"]
