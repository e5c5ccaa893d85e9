"""What a benchmark target is (:class:`Target`) and how a device profile in ``devices/*.toml``
becomes one: data, not code, validated when loaded, every problem naming the file and the field.

The MIDR written into an emulated ``/proc/cpuinfo`` must name the CPU that ``qemu_cpu`` emulates:
onnxruntime picks its kernels from the MIDR, and a Cortex-A76 MIDR on a Cortex-A72 (no dot
product) makes it execute ``udot`` and die with SIGILL.

Standard library only; nothing here starts a process (:mod:`edgesparse.bench.targets` finds
targets and launches them).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgesparse.errors import FormatError, InputError, ToolMissingError

KINDS = ("host", "qemu", "ssh")

# QEMU CPU model -> (MIDR implementer, MIDR part number) of the CPU it emulates. `max` is left
# out on purpose: under qemu 7.2 it enables SME and onnxruntime's int8 MatMul gives wrong results.
QEMU_CPU_PARTS: dict[str, tuple[int, int]] = {
    "cortex-a35": (0x41, 0xD04),
    "cortex-a53": (0x41, 0xD03),
    "cortex-a55": (0x41, 0xD05),
    "cortex-a57": (0x41, 0xD07),
    "cortex-a72": (0x41, 0xD08),
    "cortex-a76": (0x41, 0xD0B),
    "cortex-a710": (0x41, 0xD47),
    "neoverse-n1": (0x41, 0xD0C),
    "neoverse-n2": (0x41, 0xD49),
    "neoverse-v1": (0x41, 0xD40),
    "a64fx": (0x46, 0x001),
}

# Debian architecture name of each emulated machine (for the sysroot packages).
_DEBIAN_ARCH = {"aarch64": "arm64"}

# What a profile (and a target) may be called.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_MIDR_RE = re.compile(r"^0x[0-9a-fA-F]{8}$")


@dataclass(frozen=True)
class CacheLevel:
    """One CPU cache as the board's ``/sys/devices/system/cpu/cpuN/cache/indexK`` shows it."""

    level: int
    type: str  # "Data" | "Instruction" | "Unified"
    size_kib: int
    ways: int
    line: int
    shared: bool  # one cache for all cores (else one per core)


@dataclass(frozen=True)
class GuestSpec:
    """What an emulated target's userland is made of (fetched by ``devices setup``)."""

    python: str  # "3.11": the Debian package python3.11-minimal and cp311 wheels
    debian_suite: str
    debian_arch: str
    debian_packages: tuple[str, ...]
    wheels: tuple[str, ...]  # pinned requirements, e.g. "numpy==2.4.6"
    wheel_platforms: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """A place to benchmark on. All fields come from the TOML profile (``host`` fills its
    hardware fields from the running system); ssh targets are made from a URL."""

    name: str  # "host", "rpi4", or "ssh://user@host:port"
    kind: str  # "host" | "qemu" | "ssh"
    description: str
    arch: str  # "x86_64", "aarch64", ... ("" when unknown until probed)
    cpu: str  # human CPU model, e.g. "Cortex-A72 (BCM2711)"
    cores: int | None
    ram_bytes: int | None
    emulated: bool  # True for qemu targets
    dotprod: bool | None  # ARMv8.2 dot product (udot/sdot); None when not applicable/unknown
    qemu_cpu: str | None
    midr: str | None
    notes: str  # e.g. which int8 ONNX path is fast/slow here
    ssh_user: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    ssh_python: str | None = None
    # Additions beyond the agreed interface (all optional):
    board: str | None = None  # "Raspberry Pi 4 Model B Rev 1.4" (the cpuinfo "Model" line)
    clock_mhz: int | None = None
    min_clock_mhz: int | None = None
    features: str | None = None  # the cpuinfo "Features" line of the emulated board
    bogomips: str | None = None
    governor: str | None = None
    caches: tuple[CacheLevel, ...] = ()
    guest: GuestSpec | None = None
    source: str | None = None  # the TOML file the profile came from
    profile_sha256: str | None = None  # of the parsed profile; setup stamps are keyed on it


def decode_midr(midr: str) -> dict[str, int]:
    """Split a MIDR_EL1 value (``"0x410fd083"``) into the fields ``/proc/cpuinfo`` shows."""
    value = int(midr, 16)
    return {
        "implementer": (value >> 24) & 0xFF,
        "variant": (value >> 20) & 0xF,
        "architecture": (value >> 16) & 0xF,
        "part": (value >> 4) & 0xFFF,
        "revision": value & 0xF,
    }


class _Fields:
    """Typed access to one TOML table; every error names the file and the dotted field."""

    def __init__(self, table: dict[str, Any], *, where: str, prefix: str = "") -> None:
        self.table = table
        self.where = where
        self.prefix = prefix
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> FormatError:
        return FormatError(f"device profile {self.where}: field '{self.prefix}{key}' {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required:
                raise self.fail(key, "is missing; add it")
            return None
        value = self.table[key]
        # bool is an int in Python; a count given as `true` is a mistake.
        if kind is int and isinstance(value, bool):
            value = None
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"must be a {_toml_type(names)}, not {value!r}")
        return value

    def positive(self, key: str, *, required: bool = True) -> int | None:
        value = self.get(key, int, required=required)
        if value is not None and value <= 0:
            raise self.fail(key, f"must be a positive integer, not {value}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, list)
        if not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "must be a non-empty list of strings")
        return tuple(value)

    def table_of(self, key: str, *, required: bool = True) -> _Fields | None:
        value = self.get(key, dict, required=required)
        if value is None:
            return None
        return _Fields(value, where=self.where, prefix=f"{self.prefix}{key}.")

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise self.fail(unknown[0], f"is not a known field (known here: {known}); remove it")


def _toml_type(names: str) -> str:
    return {"str": "string", "int": "integer", "bool": "boolean (true/false)", "dict": "table"}.get(
        names, names
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ToolMissingError(
                "reading device profiles needs Python >= 3.11 or tomli: pip install tomli"
            ) from None
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read device profile {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"device profile {path}: not valid TOML ({exc}); fix the file") from None


def load_profile(path: Path) -> Target:
    """Read and validate one ``devices/*.toml`` file."""
    path = Path(path)
    data = _read_toml(path)
    where = str(path)
    f = _Fields(data, where=where)
    name = f.get("name", str)
    if not NAME_RE.match(name):
        raise f.fail("name", f"{name!r} must be lower-case letters, digits, '-', '_' or '.'")
    if name != path.stem:
        raise f.fail("name", f"is {name!r} but the file is {path.name}; make them the same")
    kind = f.get("kind", str)
    if kind not in ("host", "qemu"):
        raise f.fail("kind", f"is {kind!r}; use 'host' or 'qemu' (ssh targets are URLs)")
    description = f.get("description", str)
    notes = f.get("notes", str, required=False) or ""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    if kind == "host":
        f.done()
        return _host_target(name, description=description, notes=notes, source=where, sha=digest)
    return _qemu_target(
        f, name=name, description=description, notes=notes, source=where, sha=digest
    )


@dataclass(frozen=True)
class _Emulation:
    """The validated ``[emulation]`` table of a qemu profile."""

    qemu_cpu: str
    midr: str
    features: str
    bogomips: str
    governor: str
    caches: tuple[CacheLevel, ...]


def _qemu_target(
    f: _Fields, *, name: str, description: str, notes: str, source: str, sha: str
) -> Target:
    # The board's own fields first, then [emulation], then [guest]: the order errors come in.
    arch = f.get("arch", str)
    if arch not in _DEBIAN_ARCH:
        raise f.fail("arch", f"is {arch!r}; emulated targets support: {', '.join(_DEBIAN_ARCH)}")
    cpu = f.get("cpu", str)
    board = f.get("board", str, required=False)
    cores = f.positive("cores")
    ram_mib = f.positive("ram_mib")
    clock = f.positive("clock_mhz")
    min_clock = f.positive("min_clock_mhz", required=False) or clock
    dotprod = f.get("dotprod", bool)
    emu = _emulation(f, dotprod=dotprod)
    guest = _guest_spec(f, arch=arch)
    f.done()
    return Target(
        name=name,
        kind="qemu",
        description=description,
        arch=arch,
        cpu=cpu,
        cores=cores,
        ram_bytes=ram_mib * 2**20,
        emulated=True,
        dotprod=dotprod,
        qemu_cpu=emu.qemu_cpu,
        midr=emu.midr.lower(),
        notes=notes,
        board=board,
        clock_mhz=clock,
        min_clock_mhz=min_clock,
        features=emu.features,
        bogomips=emu.bogomips,
        governor=emu.governor,
        caches=emu.caches,
        guest=guest,
        source=source,
        profile_sha256=sha,
    )


def _emulation(f: _Fields, *, dotprod: bool) -> _Emulation:
    emu = f.table_of("emulation")
    assert emu is not None
    qemu_cpu = emu.get("qemu_cpu", str)
    midr = emu.get("midr", str)
    features = emu.get("features", str)
    bogomips = emu.get("bogomips", str, required=False) or "0.00"
    governor = emu.get("governor", str, required=False) or "ondemand"
    caches = _caches(emu)
    emu.done()
    _check_midr(emu, qemu_cpu=qemu_cpu, midr=midr)
    has_dp = "asimddp" in features.split()
    if has_dp != dotprod:
        raise f.fail(
            "dotprod",
            f"is {str(dotprod).lower()} but emulation.features "
            f"{'lists' if has_dp else 'does not list'} asimddp; make them agree",
        )
    return _Emulation(qemu_cpu, midr, features, bogomips, governor, caches)


def _check_midr(emu: _Fields, *, qemu_cpu: str, midr: str) -> None:
    """The MIDR must name the CPU qemu emulates (see the module docstring for why)."""
    if qemu_cpu not in QEMU_CPU_PARTS:
        why = " (it gives wrong int8 results in onnxruntime)" if qemu_cpu.startswith("max") else ""
        raise emu.fail(
            "qemu_cpu",
            f"is {qemu_cpu!r}{why}; use one of: {', '.join(sorted(QEMU_CPU_PARTS))}",
        )
    if not _MIDR_RE.match(midr):
        raise emu.fail("midr", f"is {midr!r}; write it as 8 hex digits, e.g. '0x410fd083'")
    fields = decode_midr(midr)
    want_impl, want_part = QEMU_CPU_PARTS[qemu_cpu]
    if (fields["implementer"], fields["part"]) != (want_impl, want_part):
        named = [
            m for m, ip in QEMU_CPU_PARTS.items() if ip == (fields["implementer"], fields["part"])
        ]
        raise emu.fail(
            "midr",
            f"= {midr} names part {fields['part']:#05x} ({named[0] if named else 'unknown CPU'}) "
            f"but emulation.qemu_cpu is {qemu_cpu} (part {want_part:#05x}); make them the same CPU "
            "(onnxruntime picks kernels from the MIDR and dies with SIGILL on a mismatch)",
        )


def _guest_spec(f: _Fields, *, arch: str) -> GuestSpec:
    g = f.table_of("guest")
    assert g is not None
    python = g.get("python", str)
    if not re.match(r"^3\.\d+$", python):
        raise g.fail("python", f"is {python!r}; write major.minor, e.g. '3.11'")
    guest = GuestSpec(
        python=python,
        debian_suite=g.get("debian_suite", str),
        debian_arch=g.get("debian_arch", str),
        debian_packages=g.strings("debian_packages"),
        wheels=g.strings("wheels"),
        wheel_platforms=g.strings("wheel_platforms"),
    )
    g.done()
    if guest.debian_arch != _DEBIAN_ARCH[arch]:
        raise g.fail("debian_arch", f"is {guest.debian_arch!r} but arch {arch} needs 'arm64'")
    return guest


def _caches(emu: _Fields) -> tuple[CacheLevel, ...]:
    items = emu.get("caches", list)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise emu.fail(f"caches[{i}]", "must be a table ([[emulation.caches]])")
        c = _Fields(item, where=emu.where, prefix=f"{emu.prefix}caches[{i}].")
        level = CacheLevel(
            level=c.positive("level"),
            type=c.get("type", str),
            size_kib=c.positive("size_kib"),
            ways=c.positive("ways"),
            line=c.positive("line"),
            shared=c.get("shared", bool),
        )
        c.done()
        if level.type not in ("Data", "Instruction", "Unified"):
            raise c.fail("type", f"is {level.type!r}; use Data, Instruction or Unified")
        if (level.size_kib * 1024) % (level.ways * level.line):
            raise c.fail("size_kib", "is not a whole number of sets (size / (ways * line))")
        out.append(level)
    return tuple(out)


def _host_target(name: str, *, description: str, notes: str, source: str, sha: str) -> Target:
    arch = platform.machine() or "unknown"
    cpuinfo = _read_text("/proc/cpuinfo")
    cpu = _cpuinfo_value(cpuinfo, "model name") or _cpuinfo_value(cpuinfo, "Model")
    features = _cpuinfo_value(cpuinfo, "Features")
    dotprod = ("asimddp" in features.split()) if (features and arch == "aarch64") else None
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = None
    return Target(
        name=name,
        kind="host",
        description=description,
        arch=arch,
        cpu=cpu or platform.processor() or "unknown",
        cores=os.cpu_count(),
        ram_bytes=ram,
        emulated=False,
        dotprod=dotprod,
        qemu_cpu=None,
        midr=None,
        notes=notes,
        source=source,
        profile_sha256=sha,
    )


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _cpuinfo_value(text: str, key: str) -> str | None:
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() == key:
            return v.strip()
    return None
