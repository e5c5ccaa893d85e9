"""Device profiles: loading, validation (exact error texts), ssh URLs, cache rules, status."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgesparse.bench import targets as T
from edgesparse.cli import cli
from edgesparse.errors import FormatError, InputError, ToolMissingError

REPO_DEVICES = Path(__file__).resolve().parents[1] / "devices"


@pytest.fixture
def devices(tmp_path: Path) -> Path:
    """A private copy of the bundled profiles to break."""
    folder = tmp_path / "devices"
    shutil.copytree(REPO_DEVICES, folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_bundled_profiles() -> None:
    targets = {t.name: t for t in T.list_targets()}
    assert list(targets) == ["host", "rpi3", "rpi4", "rpi5"]
    rpi4 = targets["rpi4"]
    assert (rpi4.kind, rpi4.arch, rpi4.cores, rpi4.ram_bytes) == ("qemu", "aarch64", 4, 4 << 30)
    assert (rpi4.qemu_cpu, rpi4.midr, rpi4.dotprod, rpi4.emulated) == (
        "cortex-a72",
        "0x410fd083",
        False,
        True,
    )
    assert [(t.qemu_cpu, t.dotprod) for t in (targets["rpi3"], targets["rpi5"])] == [
        ("cortex-a53", False),
        ("cortex-a76", True),
    ]
    assert "MatMulInteger" in rpi4.notes and "DequantizeLinear" in targets["rpi5"].notes
    # Pi 4: 48 KiB 3-way L1i -> 256 sets of 64 B; 1 MiB L2 shared by the four cores.
    assert [(c.level, c.type, c.size_kib, c.shared) for c in rpi4.caches] == [
        (1, "Data", 32, False),
        (1, "Instruction", 48, False),
        (2, "Unified", 1024, True),
    ]
    assert rpi4.guest is not None and rpi4.guest.python == "3.11"
    assert "python3.11-minimal" in rpi4.guest.debian_packages
    host = targets["host"]
    assert (host.kind, host.arch, host.cores, host.emulated) == (
        "host",
        platform.machine(),
        os.cpu_count(),
        False,
    )
    assert host.ram_bytes and host.ram_bytes > 2**28


def test_get_target_by_name_and_file(devices: Path) -> None:
    assert T.get_target("rpi5", directory=devices).midr == "0x414fd0b1"
    assert T.get_target(str(devices / "rpi3.toml")).qemu_cpu == "cortex-a53"


def test_unknown_target_lists_known(devices: Path) -> None:
    with pytest.raises(InputError) as exc:
        T.get_target("rpi9", directory=devices)
    assert str(exc.value) == (
        "unknown target 'rpi9'; known: host, rpi3, rpi4, rpi5, "
        "or ssh://[user@]host[:port] for a real board"
    )
    with pytest.raises(InputError, match=r"unknown target '\.\./rpi4'"):
        T.get_target("../rpi4", directory=devices)


def test_bad_toml(devices: Path) -> None:
    (devices / "rpi4.toml").write_text('name = "rpi4"\nkind = \n')
    with pytest.raises(FormatError) as exc:
        T.get_target("rpi4", directory=devices)
    assert str(exc.value) == (
        f"device profile {devices / 'rpi4.toml'}: not valid TOML "
        "(Invalid value (at line 2, column 8)); fix the file"
    )


def test_midr_must_match_qemu_cpu(devices: Path) -> None:
    # A Pi 5 MIDR on an emulated Cortex-A72: onnxruntime would pick udot kernels and SIGILL.
    _edit(devices / "rpi4.toml", 'midr = "0x410fd083"', 'midr = "0x414fd0b1"')
    with pytest.raises(FormatError) as exc:
        T.get_target("rpi4", directory=devices)
    assert str(exc.value) == (
        f"device profile {devices / 'rpi4.toml'}: field 'emulation.midr' = 0x414fd0b1 names "
        "part 0xd0b (cortex-a76) but emulation.qemu_cpu is cortex-a72 (part 0xd08); make them "
        "the same CPU (onnxruntime picks kernels from the MIDR and dies with SIGILL on a mismatch)"
    )


def test_cpu_max_is_refused(devices: Path) -> None:
    _edit(devices / "rpi4.toml", 'qemu_cpu = "cortex-a72"', 'qemu_cpu = "max"')
    with pytest.raises(FormatError, match=r"'emulation.qemu_cpu' is 'max' \(it gives wrong int8"):
        T.get_target("rpi4", directory=devices)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("dotprod = false", "dotprod = true", "field 'dotprod' is true but emulation.features "),
        ("cores = 4", "cores = 0", "field 'cores' must be a positive integer, not 0"),
        ("cores = 4", 'cores = "4"', "field 'cores' must be a integer, not '4'"),
        ('name = "rpi4"', 'name = "pi4"', "field 'name' is 'pi4' but the file is rpi4.toml"),
        ("ram_mib = 4096", "ram_mb = 4096", "field 'ram_mib' is missing; add it"),
        ("ways = 3", "ways = 5", "field 'emulation.caches[1].size_kib' is not a whole number"),
        ('midr = "0x410fd083"', 'midr = "410fd083"', "write it as 8 hex digits"),
        (
            'governor = "ondemand"',
            "colour = 'red'",
            "field 'emulation.colour' is not a known field (known here: bogomips, caches",
        ),
    ],
)
def test_profile_field_errors(devices: Path, old: str, new: str, message: str) -> None:
    _edit(devices / "rpi4.toml", old, new)
    with pytest.raises(FormatError) as exc:
        T.get_target("rpi4", directory=devices)
    assert str(exc.value).startswith(f"device profile {devices / 'rpi4.toml'}: ")
    assert message in str(exc.value)


def test_decode_midr() -> None:
    # Cortex-A76 r4p1 as on the Pi 5 (hand-decoded: 0x41 | 4 | f | d0b | 1).
    assert T.decode_midr("0x414fd0b1") == {
        "implementer": 0x41,
        "variant": 4,
        "architecture": 0xF,
        "part": 0xD0B,
        "revision": 1,
    }


def test_ssh_targets() -> None:
    t = T.get_target("ssh://pi@raspberrypi.local:2222?python=/usr/bin/python3.11")
    assert (t.kind, t.ssh_user, t.ssh_host, t.ssh_port, t.ssh_python, t.emulated) == (
        "ssh",
        "pi",
        "raspberrypi.local",
        2222,
        "/usr/bin/python3.11",
        False,
    )
    assert t.name == "ssh://pi@raspberrypi.local:2222?python=/usr/bin/python3.11"
    bare = T.get_target("ssh://[::1]")
    assert (bare.ssh_user, bare.ssh_host, bare.ssh_port, bare.ssh_python) == (
        None,
        "::1",
        None,
        "python3",
    )
    for bad, message in [
        ("ssh://pi@host:99999", "bad port in 'ssh://pi@host:99999'"),
        ("ssh://pi:secret@host", "contains a password"),
        ("ssh://host/path", "bad ssh target 'ssh://host/path'"),
        ("ssh://host?py=x", "unknown option 'py'"),
    ]:
        with pytest.raises(InputError, match=message):
            T.get_target(bad)


def test_cache_dir_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EDGESPARSE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert T.cache_dir() == tmp_path / "home" / ".cache" / "edgesparse"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # invalid per the XDG spec
    assert T.cache_dir() == tmp_path / "home" / ".cache" / "edgesparse"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert T.cache_dir() == tmp_path / "xdg" / "edgesparse"
    monkeypatch.setenv("EDGESPARSE_CACHE", str(tmp_path / "mine"))
    assert T.cache_dir() == tmp_path / "mine"


def test_devices_dir_override(monkeypatch: pytest.MonkeyPatch, devices: Path) -> None:
    assert T.devices_dir() == REPO_DEVICES
    (devices / "rpi3.toml").unlink()
    monkeypatch.setenv("EDGESPARSE_DEVICES", str(devices))
    assert [t.name for t in T.list_targets()] == ["host", "rpi4", "rpi5"]
    monkeypatch.setenv("EDGESPARSE_DEVICES", str(devices / "nope"))
    with pytest.raises(InputError, match="device profiles folder not found"):
        T.list_targets()


def test_status_and_launch_when_not_set_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rpi4 = T.get_target("rpi4")
    if T.qemu_binary("aarch64") is not None:
        assert T.target_status(rpi4, cache=tmp_path) == (
            False,
            "not set up: run `edgesparse devices setup rpi4`",
        )
        with pytest.raises(ToolMissingError, match=r"run `edgesparse devices setup rpi4`"):
            T.launch(rpi4, cache=tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu anywhere
    assert T.target_status(rpi4, cache=tmp_path) == (
        False,
        "qemu-aarch64-static missing: apt-get install qemu-user-static",
    )
    with pytest.raises(ToolMissingError, match="apt-get install qemu-user-static"):
        T.launch(rpi4, cache=tmp_path)
    with pytest.raises(InputError, match="ssh target"):
        T.launch(T.get_target("ssh://pi@board"), cache=tmp_path)


def test_host_launch(tmp_path: Path) -> None:
    lau = T.launch(T.get_target("host"), cache=tmp_path)
    assert lau.argv == [sys.executable] and lau.emulated is False
    assert lau.env["ORT_DISABLE_TELEMETRY"] == "1"
    assert lau.env["HOME"] == str(tmp_path / "targets" / "host" / "home")
    assert lau.env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO_DEVICES.parent)


def test_host_launch_of_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From a wheel the package sits in site-packages, which the child finds by itself: putting
    # it on PYTHONPATH would rank it above the standard library.
    import site

    monkeypatch.setattr(T, "package_parent", lambda: Path(site.getsitepackages()[0]))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    lau = T.launch(T.get_target("host"), cache=tmp_path)
    assert lau.env["PYTHONPATH"] == ""


def test_cli_devices_list_and_show(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"EDGESPARSE_CACHE": str(tmp_path)}
    result = runner.invoke(cli, ["devices", "list"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "name",
        "kind",
        "cpu",
        "cores",
        "RAM",
        "dotprod",
        "emulated",
        "status",
    ]
    rpi5 = next(line for line in lines if line.startswith("rpi5"))
    assert "Cortex-A76 (BCM2712)" in rpi5 and "8.0 GiB" in rpi5 and " yes " in rpi5
    result = runner.invoke(cli, ["devices", "show", "rpi4"], env=env)
    assert result.exit_code == 0 and "MIDR:        0x410fd083" in result.output
    result = runner.invoke(cli, ["devices", "show", "rpi9"], env=env)
    assert result.exit_code == 1
    assert "Error: unknown target 'rpi9'; known: host, rpi3, rpi4, rpi5" in result.output
