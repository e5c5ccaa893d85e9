"""Benchmark targets: finding them (the device profiles in ``devices/*.toml``, read by
:mod:`edgesparse.bench.profiles`, and ``ssh://`` URLs), their setup state, and how to start
each target's Python.

Three kinds of target:

* ``host``  this machine, natively (``sys.executable``);
* ``qemu``  an emulated board: Debian's aarch64 Python with PyPI's aarch64 numpy/onnxruntime
  wheels run under QEMU user-mode emulation with the board's CPU model (see
  :mod:`edgesparse.bench.provision`, which builds what :func:`launch` starts);
* ``ssh``   a real board reached over SSH (the harness copies and runs the probe itself).

Standard library only; nothing here starts a process.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edgesparse.bench.profiles import (
    KINDS,
    NAME_RE,
    QEMU_CPU_PARTS,
    CacheLevel,
    GuestSpec,
    Target,
    decode_midr,
    load_profile,
)
from edgesparse.errors import InputError, ToolMissingError

# Re-exported: callers name targets' types and profile checks through this module.
__all__ = [
    "KINDS",
    "QEMU_CPU_PARTS",
    "STAMP_NAME",
    "CacheLevel",
    "GuestSpec",
    "Launch",
    "Target",
    "cache_dir",
    "decode_midr",
    "devices_dir",
    "get_target",
    "launch",
    "link_package",
    "list_targets",
    "load_profile",
    "package_parent",
    "qemu_binary",
    "qemu_launch",
    "read_stamp",
    "ssh_target",
    "target_dir",
    "target_status",
]

STAMP_NAME = "stamp.json"


@dataclass(frozen=True)
class Launch:
    """How to start a target's Python: ``argv + ["-m", "edgesparse.bench.probe", ...]``."""

    argv: list[str]  # prefix that starts the target's Python
    env: dict[str, str]  # the complete environment for the child
    emulated: bool


# ----------------------------------------------------------------------------------------------
# Locations


def devices_dir() -> Path:
    """The folder of device profiles: ``$EDGESPARSE_DEVICES``, else the installed package data
    ``edgesparse.devices`` (the repository's top-level ``devices/``, mapped there by the build;
    an editable install reads the checkout's folder itself)."""
    override = os.environ.get("EDGESPARSE_DEVICES")
    if override:
        return Path(override).expanduser()
    try:
        folder = resources.files("edgesparse.devices")
    except ModuleNotFoundError:
        # A source tree on sys.path that was never installed: its top-level devices/.
        return Path(__file__).resolve().parents[2] / "devices"
    return folder if isinstance(folder, Path) else Path(str(folder))


def cache_dir() -> Path:
    """Where provisioned targets live: ``$EDGESPARSE_CACHE``, else ``$XDG_CACHE_HOME/edgesparse``,
    else ``~/.cache/edgesparse``. Never the repository (it holds ~150 MB of downloads)."""
    override = os.environ.get("EDGESPARSE_CACHE")
    if override:
        return Path(override).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "edgesparse"
    return Path.home() / ".cache" / "edgesparse"


def target_dir(name: str, *, cache: Path | None = None) -> Path:
    """The per-target folder inside the cache (prefix, scratch HOME, setup stamp)."""
    return (cache if cache is not None else cache_dir()) / "targets" / name


def package_parent() -> Path:
    """The folder that contains the ``edgesparse`` package (what a child's PYTHONPATH needs)."""
    return Path(__file__).resolve().parents[2]


def list_targets(*, directory: Path | None = None) -> list[Target]:
    """Every profile in the devices folder, ``host`` first, then by name."""
    folder = directory if directory is not None else devices_dir()
    if not folder.is_dir():
        raise InputError(
            f"device profiles folder not found: {folder}; set EDGESPARSE_DEVICES to a folder "
            "of *.toml profiles (an installed edgesparse ships its own in edgesparse/devices)"
        )
    targets = [load_profile(p) for p in sorted(folder.glob("*.toml"))]
    return sorted(targets, key=lambda t: (t.name != "host", t.name))


def get_target(spec: str, *, directory: Path | None = None) -> Target:
    """A target by profile name (``"rpi4"``), profile file (``"my/board.toml"``) or URL
    (``"ssh://[user@]host[:port][?python=/usr/bin/python3]"``)."""
    if spec.startswith("ssh://"):
        return ssh_target(spec)
    if spec.endswith(".toml") and os.sep in spec:
        return load_profile(Path(spec))
    folder = directory if directory is not None else devices_dir()
    if NAME_RE.match(spec) and (folder / f"{spec}.toml").is_file():
        return load_profile(folder / f"{spec}.toml")
    known = ", ".join(t.name for t in list_targets(directory=folder))
    raise InputError(
        f"unknown target {spec!r}; known: {known}, or ssh://[user@]host[:port] for a real board"
    )


def ssh_target(url: str) -> Target:
    """A real board reached over SSH: ``ssh://[user@]host[:port][?python=PATH]``."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise InputError(f"bad port in {url!r}; use ssh://[user@]host[:port]") from None
    host = parts.hostname
    if parts.scheme != "ssh" or not host or parts.path not in ("", "/") or parts.fragment:
        raise InputError(f"bad ssh target {url!r}; use ssh://[user@]host[:port][?python=PATH]")
    if parts.password is not None:
        raise InputError(f"{url!r} contains a password; use an ssh key or ssh-agent instead")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"python"})
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r} in {url!r}; only ?python=PATH is known")
    python = query.get("python", ["python3"])[-1] or "python3"
    return Target(
        name=url,
        kind="ssh",
        description=f"real board over SSH ({host})",
        arch="",
        cpu="unknown (probed on the board)",
        cores=None,
        ram_bytes=None,
        emulated=False,
        dotprod=None,
        qemu_cpu=None,
        midr=None,
        notes="Real device timings, measured by the board's own Python.",
        ssh_user=parts.username,
        ssh_host=host,
        ssh_port=port,
        ssh_python=python,
    )


# ----------------------------------------------------------------------------------------------
# Readiness and launching


def qemu_binary(arch: str) -> str | None:
    """Path of the user-mode emulator for ``arch`` on PATH (the static build first)."""
    return shutil.which(f"qemu-{arch}-static") or shutil.which(f"qemu-{arch}")


def read_stamp(target: Target, *, cache: Path | None = None) -> dict[str, Any] | None:
    """The setup stamp of an emulated target, or None when it is not (completely) set up."""
    path = target_dir(target.name, cache=cache) / STAMP_NAME
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _setup_hint(target: Target) -> str:
    return f"run `edgesparse devices setup {target.name}`"


def target_status(target: Target, *, cache: Path | None = None) -> tuple[bool, str]:
    """``(ready, reason)``: can this target run here right now, and if not, what to do."""
    if target.kind == "host":
        return True, f"ready (native, Python {platform.python_version()})"
    if target.kind == "ssh":
        return True, "real board: reached over ssh when benchmarking"
    if qemu_binary(target.arch) is None:
        return False, f"qemu-{target.arch}-static missing: apt-get install qemu-user-static"
    stamp = read_stamp(target, cache=cache)
    if stamp is None:
        return False, f"not set up: {_setup_hint(target)}"
    if stamp.get("profile_sha256") != target.profile_sha256:
        return False, f"profile changed since setup: {_setup_hint(target)}"
    missing = [k for k in ("prefix", "site", "sysroot") if not Path(stamp.get(k, "")).is_dir()]
    if missing:
        return False, f"cache incomplete ({missing[0]} is gone): {_setup_hint(target)} --force"
    return True, f"ready (set up {stamp.get('created', '?')})"


def launch(target: Target, *, cache: Path | None = None) -> Launch:
    """How to start the target's Python; append e.g. ``["-m", "edgesparse.bench.probe", ...]``.

    Raises ToolMissingError naming the Debian package or the setup command when the target
    cannot run here; ssh targets raise InputError (the harness runs them itself).
    """
    if target.kind == "ssh":
        raise InputError(f"{target.name} is an ssh target; the harness runs it over ssh")
    home = target_dir(target.name, cache=cache) / "home"
    if target.kind == "host":
        home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # A checkout needs its folder on the path; an installed package is found from
        # site-packages anyway, and site-packages on PYTHONPATH would go before the stdlib.
        parent = package_parent()
        pythonpath = [] if _is_site_packages(parent) else [str(parent)]
        if env.get("PYTHONPATH"):
            pythonpath.append(env["PYTHONPATH"])
        env.update(
            PYTHONPATH=os.pathsep.join(pythonpath),
            HOME=str(home),
            ORT_DISABLE_TELEMETRY="1",
        )
        return Launch(argv=[sys.executable], env=env, emulated=False)
    qemu = qemu_binary(target.arch)
    if qemu is None:
        raise ToolMissingError(
            f"qemu-{target.arch}-static is missing (needed for {target.name}): "
            "apt-get install qemu-user-static"
        )
    ready, why = target_status(target, cache=cache)
    if not ready:
        raise ToolMissingError(f"{target.name} cannot run: {why}")
    stamp = read_stamp(target, cache=cache)
    assert stamp is not None
    # Cheap, and keeps a cache working after the checkout moved.
    link_package(Path(stamp["pythonpath"]))
    return qemu_launch(
        target,
        qemu=qemu,
        prefix=Path(stamp["prefix"]),
        site=Path(stamp["site"]),
        pythonpath=Path(stamp["pythonpath"]),
        home=home,
    )


def _is_site_packages(folder: Path) -> bool:
    """True when ``folder`` is one of this Python's site-packages folders."""
    import site

    found = [*site.getsitepackages(), site.getusersitepackages()]
    return any(Path(d).resolve() == folder.resolve() for d in found)


def link_package(folder: Path) -> None:
    """Make ``folder/edgesparse`` point at this package, so the guest's PYTHONPATH holds the
    package and nothing else of the host's (no x86 numpy next to it)."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "edgesparse"
    want = package_parent() / "edgesparse"
    if link.is_symlink() and Path(os.readlink(link)) == want:
        return
    tmp = folder / ".edgesparse.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(want, target_is_directory=True)
    os.replace(tmp, link)


def qemu_launch(
    target: Target, *, qemu: str, prefix: Path, site: Path, pythonpath: Path, home: Path
) -> Launch:
    """The :class:`Launch` for an emulated target from explicit paths (provisioning uses it to
    verify a target before its stamp exists)."""
    assert target.guest is not None and target.qemu_cpu is not None
    # A small, explicit environment: the host's LD_PRELOAD, PYTHONHOME or OPENBLAS_CORETYPE
    # (an x86 core name) would break or mislead the aarch64 guest.
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "PYTHONPATH": f"{site}{os.pathsep}{pythonpath}",
        "PYTHONNOUSERSITE": "1",
        "ORT_DISABLE_TELEMETRY": "1",
    }
    for key in ("TZ", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    python = prefix / "usr" / "bin" / f"python{target.guest.python}"
    argv = [qemu, "-cpu", target.qemu_cpu, "-L", str(prefix), str(python)]
    return Launch(argv=argv, env=env, emulated=True)
