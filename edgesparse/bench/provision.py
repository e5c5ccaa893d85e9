"""``edgesparse devices setup``: build what an emulated target needs, in the cache.

Layout under :func:`~edgesparse.bench.targets.cache_dir` (shared pieces are keyed by a hash of
what they are made of, so rpi3/rpi4/rpi5 share one sysroot and one wheel folder)::

    apt/<suite>-<arch>/            private apt state: sources, package lists (no root needed)
    sysroots/debian-<suite>-<arch>-py<ver>-<hash>/   Debian's arm64 packages, unpacked
    sites/cp<ver>-<arch>-<hash>/   numpy + onnxruntime aarch64 wheels, unzipped
    targets/<name>/prefix/         qemu's -L folder: etc, lib, usr -> sysroot; a fake
                                   /proc/cpuinfo and /sys/devices/system/cpu for the board
    targets/<name>/pythonpath/     edgesparse -> the package this code runs from
    targets/<name>/home/           scratch HOME for the guest
    targets/<name>/stamp.json      written last: the target is ready iff it exists and matches

Why apt-get (with a private config and state folder) rather than downloading .debs by hand:
apt already knows the host's mirror, proxy and keyring configuration and verifies the signed
package lists and every .deb's checksum; ``apt-get download`` + ``dpkg-deb -x`` need no root.
The sources are the host's own Debian entries for the profile's suite (or the file named by
``$EDGESPARSE_APT_SOURCES``), so the mirror is whatever this machine already uses.

Every piece is built in a temporary folder inside the cache and renamed into place at the end;
an interrupted setup leaves nothing that looks ready (leftovers are removed by the next run).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path

from edgesparse.bench.debian import host_debian_sources
from edgesparse.bench.targets import (
    STAMP_NAME,
    Target,
    cache_dir,
    decode_midr,
    link_package,
    qemu_binary,
    qemu_launch,
    read_stamp,
    target_dir,
)
from edgesparse.errors import InputError, ToolMissingError
from edgesparse.formats import onnx as onnx_format
from edgesparse.ir import from_dense

Progress = Callable[[str, int, int], None]

# Bump when the layout or contents of a piece change, so old caches are rebuilt, not trusted.
LAYOUT_VERSION = 1

_VERIFY_TIMEOUT_S = 300


def provision(
    target: Target,
    *,
    cache: Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> Path:
    """Set up ``target`` so :func:`~edgesparse.bench.targets.launch` can start it; return its
    folder in the cache. Instant when already set up (unless ``force``).

    ``progress(message, done, total)`` is called as work advances.
    """
    report = progress or (lambda message, done, total: None)
    cache = (cache if cache is not None else cache_dir()).absolute()
    if target.kind == "ssh":
        raise InputError(f"{target.name} is a real board: nothing to set up here")
    final = target_dir(target.name, cache=cache)
    if target.kind == "host":
        (final / "home").mkdir(parents=True, exist_ok=True)
        report("host runs natively: nothing to set up", 1, 1)
        return final
    assert target.guest is not None
    qemu = qemu_binary(target.arch)
    if qemu is None:
        raise ToolMissingError(
            f"qemu-{target.arch}-static is missing: apt-get install qemu-user-static"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".setup.lock"):
        stamp = read_stamp(target, cache=cache)
        if not force and stamp is not None and _stamp_ok(stamp, target):
            report("already set up", 1, 1)
            return final
        tmp_root = cache / "tmp"
        # Leftovers of an interrupted setup (we hold the lock, so nobody else is using them).
        shutil.rmtree(tmp_root, ignore_errors=True)
        tmp_root.mkdir(parents=True)
        try:
            steps = _Steps(report, total=len(target.guest.debian_packages) + 6)
            sysroot = _sysroot(target, cache=cache, steps=steps, force=force)
            site = _site(target, cache=cache, steps=steps, force=force)
            steps.advance(f"building the {target.name} prefix (fake cpuinfo, sysfs)")
            build = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=tmp_root))
            build.chmod(0o755)  # mkdtemp makes it private; the cache is not secret
            _build_target_dir(target, build, sysroot=sysroot)
            steps.advance(f"checking the {target.name} guest Python (numpy, onnxruntime)")
            started = time.monotonic()
            versions = _verify(target, build, qemu=qemu, site=site, final=final)
            stamp = {
                "profile_sha256": target.profile_sha256,
                "layout": LAYOUT_VERSION,
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "prefix": str(final / "prefix"),
                "pythonpath": str(final / "pythonpath"),
                "sysroot": str(sysroot),
                "site": str(site),
                "qemu": qemu,
                "qemu_cpu": target.qemu_cpu,
                "versions": versions,
                "verify_seconds": round(time.monotonic() - started, 2),
            }
            (build / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
            _replace_dir(build, final, tmp_root)
            steps.finish(f"{target.name} is ready")
        finally:
            shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def _stamp_ok(stamp: dict, target: Target) -> bool:
    return (
        stamp.get("profile_sha256") == target.profile_sha256
        and stamp.get("layout") == LAYOUT_VERSION
        and all(Path(stamp.get(k, "")).is_dir() for k in ("prefix", "sysroot", "site"))
    )


class _Steps:
    """Counts work units for the progress callback (skipped pieces count as done at once)."""

    def __init__(self, report: Progress, *, total: int) -> None:
        self.report = report
        self.total = total
        self.done = 0

    def advance(self, message: str, units: int = 1) -> None:
        self.report(message, min(self.done, self.total), self.total)
        self.done += units

    def finish(self, message: str) -> None:
        self.done = self.total
        self.report(message, self.total, self.total)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One setup at a time per cache (apt's lists and the tmp folder are shared)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _digest(*parts: object) -> str:
    return sha256(json.dumps([LAYOUT_VERSION, *parts]).encode()).hexdigest()[:12]


def _replace_dir(new: Path, final: Path, tmp_root: Path) -> None:
    """Move a finished folder into place; an old one is moved aside first, then deleted."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix="old-", dir=tmp_root))
        os.rename(final, old / "x")
    os.rename(new, final)


# ----------------------------------------------------------------------------------------------
# Shared piece 1: the Debian sysroot


def _sysroot(target: Target, *, cache: Path, steps: _Steps, force: bool) -> Path:
    g = target.guest
    assert g is not None
    key = _digest(g.debian_suite, g.debian_arch, sorted(g.debian_packages))
    final = cache / "sysroots" / f"debian-{g.debian_suite}-{g.debian_arch}-py{g.python}-{key}"
    n = len(g.debian_packages)
    if final.is_dir() and not force:
        steps.advance(f"Debian {g.debian_arch} sysroot already in the cache", n + 2)
        return final
    apt = _Apt(cache / "apt" / f"{g.debian_suite}-{g.debian_arch}", g.debian_suite, g.debian_arch)
    steps.advance(f"apt-get update (Debian {g.debian_suite} {g.debian_arch} package lists)")
    apt.update()
    work = Path(tempfile.mkdtemp(prefix="sysroot-", dir=cache / "tmp"))
    debs = work / "debs"
    debs.mkdir()
    steps.advance(f"apt-get download: {n} Debian {g.debian_arch} packages")
    apt.download(g.debian_packages, into=debs)
    root = work / "root"
    root.mkdir()
    manifest = {}
    for deb in sorted(debs.glob("*.deb")):
        steps.advance(f"unpacking {deb.name}")
        _run(["dpkg-deb", "-x", str(deb), str(root)], what=f"dpkg-deb -x {deb.name}")
        package, version, _ = deb.name.split("_", 2)
        manifest[package] = version.replace("%3a", ":")
    _relativize_symlinks(root)
    python = root / "usr" / "bin" / f"python{g.python}"
    if not python.is_file():
        raise ToolMissingError(
            f"the Debian packages gave no usr/bin/python{g.python}; check guest.debian_packages "
            f"in {target.source}"
        )
    (root / ".edgesparse-packages.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _replace_dir(root, final, cache / "tmp")
    return final


def _relativize_symlinks(root: Path) -> None:
    """Point absolute symlinks inside the sysroot at the sysroot, not at the host's files
    (e.g. /usr/lib/python3.11/sitecustomize.py -> /etc/python3.11/...)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            link = Path(dirpath, name)
            if link.is_symlink():
                dest = os.readlink(link)
                if dest.startswith("/"):
                    link.unlink()
                    link.symlink_to(os.path.relpath(root / dest.lstrip("/"), link.parent))


class _Apt:
    """apt-get with a private configuration and state folder: works without root and never
    touches the host's package state."""

    def __init__(self, home: Path, suite: str, arch: str) -> None:
        self.home = home
        self.suite = suite
        self.arch = arch

    def options(self) -> list[str]:
        h = self.home
        user = getpass.getuser()
        opts = {
            "Dir::State": h / "state",
            "Dir::State::status": h / "status",
            "Dir::Cache": h / "cache",
            "Dir::Etc::SourceList": h / "sources.list",
            "Dir::Etc::SourceParts": h / "sources.list.d",
            "Dir::Etc::Preferences": h / "preferences",
            "Dir::Etc::PreferencesParts": h / "preferences.d",
            "APT::Architecture": self.arch,
            "APT::Architectures": self.arch,
            "Acquire::Languages": "none",
            # As root, apt would hand downloads to the _apt user, who cannot write our cache.
            "APT::Sandbox::User": user,
        }
        return [x for k, v in opts.items() for x in ("-o", f"{k}={v}")]

    def update(self) -> None:
        h = self.home
        for sub in ("state/lists/partial", "cache/archives/partial", "preferences.d"):
            (h / sub).mkdir(parents=True, exist_ok=True)
        (h / "sources.list.d").mkdir(exist_ok=True)
        (h / "status").touch()
        (h / "sources.list").write_text(self.sources(), encoding="utf-8")
        _run(["apt-get", *self.options(), "-q", "update"], what="apt-get update")

    def download(self, packages: tuple[str, ...], *, into: Path) -> None:
        _run(
            ["apt-get", *self.options(), "-q", "download", *packages],
            what="apt-get download",
            cwd=into,
        )

    def sources(self) -> str:
        """The host's Debian sources for our suite, restricted to our architecture."""
        override = os.environ.get("EDGESPARSE_APT_SOURCES")
        if override:
            try:
                return Path(override).read_text(encoding="utf-8")
            except OSError as exc:
                raise InputError(f"EDGESPARSE_APT_SOURCES={override}: {exc.strerror}") from None
        text = host_debian_sources(self.suite, arch=self.arch)
        if not text:
            raise ToolMissingError(
                f"no Debian '{self.suite}' entry in the host's apt sources "
                "(/etc/apt/sources.list, /etc/apt/sources.list.d); add one or set "
                "EDGESPARSE_APT_SOURCES to a sources.list file"
            )
        return text


# ----------------------------------------------------------------------------------------------
# Shared piece 2: the aarch64 wheels


def _site(target: Target, *, cache: Path, steps: _Steps, force: bool) -> Path:
    g = target.guest
    assert g is not None
    tag = "cp" + g.python.replace(".", "")
    key = _digest(tag, sorted(g.wheels), list(g.wheel_platforms))
    final = cache / "sites" / f"{tag}-{target.arch}-{key}"
    if final.is_dir() and not force:
        steps.advance(f"{target.arch} wheels already in the cache", 2)
        return final
    work = Path(tempfile.mkdtemp(prefix="site-", dir=cache / "tmp"))
    wheels = work / "wheels"
    steps.advance(f"pip download: {', '.join(g.wheels)}")
    platforms = [x for p in g.wheel_platforms for x in ("--platform", p)]
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--python-version",
            g.python,
            "--implementation",
            "cp",
            "--abi",
            tag,
            *platforms,
            "-d",
            str(wheels),
            *g.wheels,
        ],
        what="pip download",
    )
    site = work / "site"
    site.mkdir()
    steps.advance("unpacking the wheels")
    found = sorted(wheels.glob("*.whl"))
    if len(found) != len(g.wheels):
        raise ToolMissingError(f"pip download gave {len(found)} wheels for {len(g.wheels)} pins")
    for wheel in found:
        _unpack_wheel(wheel, site)
    _replace_dir(site, final, cache / "tmp")
    return final


def _unpack_wheel(wheel: Path, site: Path) -> None:
    """Install a wheel the simple way: unzip it, and move ``*.data/{purelib,platlib}`` up."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.startswith("/") or ".." in Path(name).parts:
                raise ToolMissingError(f"{wheel.name} has an unsafe path {name!r}")
            parts = Path(name).parts
            if parts and parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers: not needed to import
                parts = parts[2:]
            dest = site.joinpath(*parts)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = info.external_attr >> 16
            if mode & 0o111:
                dest.chmod(0o755)


# ----------------------------------------------------------------------------------------------
# The per-target folder: the -L prefix with the board's CPU description


def render_cpuinfo(target: Target) -> str:
    """``/proc/cpuinfo`` as the board's 64-bit Linux kernel writes it (MIDR fields decoded)."""
    assert target.midr and target.cores and target.features is not None
    m = decode_midr(target.midr)
    block = (
        "BogoMIPS\t: {bogomips}\n"
        "Features\t: {features}\n"
        "CPU implementer\t: {implementer:#04x}\n"
        "CPU architecture: 8\n"
        "CPU variant\t: {variant:#x}\n"
        "CPU part\t: {part:#05x}\n"
        "CPU revision\t: {revision}\n"
    ).format(bogomips=target.bogomips or "0.00", features=target.features, **m)
    out = "".join(f"processor\t: {i}\n{block}\n" for i in range(target.cores))
    if target.board:
        out += f"Model\t\t: {target.board}\n"
    return out


def cpu_sysfs(target: Target) -> dict[str, str]:
    """The files of ``/sys/devices/system/cpu`` for the board, relative path -> content."""
    assert target.cores and target.midr and target.clock_mhz
    n = target.cores
    every = _cpu_list(range(n))
    mask_all = f"{(1 << n) - 1:x}"
    files = {"possible": every, "present": every, "online": every, "kernel_max": f"{n - 1}"}
    khz_max = target.clock_mhz * 1000
    khz_min = (target.min_clock_mhz or target.clock_mhz) * 1000
    for cpu in range(n):
        d = f"cpu{cpu}"
        own, own_mask = f"{cpu}", f"{1 << cpu:x}"
        files[f"{d}/online"] = "1"
        files[f"{d}/regs/identification/midr_el1"] = f"0x{int(target.midr, 16):016x}"
        files[f"{d}/regs/identification/revidr_el1"] = f"0x{0:016x}"
        freq = {
            "cpuinfo_max_freq": khz_max,
            "cpuinfo_min_freq": khz_min,
            "scaling_max_freq": khz_max,
            "scaling_min_freq": khz_min,
            "scaling_cur_freq": khz_max,
            "scaling_governor": target.governor or "ondemand",
            "scaling_driver": "cpufreq-dt",
            "related_cpus": " ".join(str(i) for i in range(n)),  # one clock for all cores
            "affected_cpus": " ".join(str(i) for i in range(n)),
        }
        files.update({f"{d}/cpufreq/{k}": str(v) for k, v in freq.items()})
        topology = {
            "core_id": own,
            "cluster_id": "0",
            "physical_package_id": "0",
            "thread_siblings": own_mask,
            "thread_siblings_list": own,
            "core_cpus": own_mask,
            "core_cpus_list": own,
            "core_siblings": mask_all,
            "core_siblings_list": every,
            "cluster_cpus": mask_all,
            "cluster_cpus_list": every,
            "package_cpus": mask_all,
            "package_cpus_list": every,
        }
        files.update({f"{d}/topology/{k}": v for k, v in topology.items()})
        for index, c in enumerate(target.caches):
            sets = c.size_kib * 1024 // (c.ways * c.line)
            cache = {
                "level": c.level,
                "type": c.type,
                "size": f"{c.size_kib}K",
                "ways_of_associativity": c.ways,
                "coherency_line_size": c.line,
                "number_of_sets": sets,
                "shared_cpu_map": mask_all if c.shared else own_mask,
                "shared_cpu_list": every if c.shared else own,
            }
            files.update({f"{d}/cache/index{index}/{k}": str(v) for k, v in cache.items()})
    return {path: f"{text}\n" for path, text in files.items()}


def _cpu_list(cpus: range) -> str:
    return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else f"{cpus[0]}"


def _build_target_dir(target: Target, build: Path, *, sysroot: Path) -> None:
    prefix = build / "prefix"
    prefix.mkdir()
    # qemu -L looks every absolute path up as PREFIX/path first: the guest's /usr, /lib, /etc
    # come from the sysroot, its /proc/cpuinfo and CPU sysfs from the files below; everything
    # else (the cache, the repo, /tmp) falls through to the host.
    for top in ("etc", "lib", "usr"):
        if (sysroot / top).exists():
            (prefix / top).symlink_to(sysroot / top, target_is_directory=True)
    (prefix / "proc").mkdir()
    (prefix / "proc" / "cpuinfo").write_text(render_cpuinfo(target), encoding="utf-8")
    sysfs = prefix / "sys" / "devices" / "system" / "cpu"
    for rel, text in cpu_sysfs(target).items():
        path = sysfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (build / "home").mkdir()
    link_package(build / "pythonpath")


# ----------------------------------------------------------------------------------------------
# Verification: one run of the guest Python


_VERIFY_SCRIPT = r"""
import json, os, platform, sys
import numpy as np
import onnxruntime as ort
try:
    from numpy._core._multiarray_umath import __cpu_features__ as feats
except ImportError:
    from numpy.core._multiarray_umath import __cpu_features__ as feats
x = np.arange(6, dtype=np.float32).reshape(2, 3)
so = ort.SessionOptions()
so.intra_op_num_threads = 1
sess = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
y = sess.run(None, {"X": x})[0]
print(json.dumps({
    "machine": platform.machine(), "cpu_count": os.cpu_count(),
    "python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__,
    "y": y.tolist(), "asimddp": bool(feats.get("ASIMDDP")),
}))
"""

# y = x @ W with x = arange(6).reshape(2, 3): small integers, so float32 results are exact.
_VERIFY_W = ((1.0, -2.0), (0.5, 3.0), (-1.0, 4.0))


def verify_model(weights: tuple[tuple[float, ...], ...]) -> bytes:
    """The guest check's ONNX model: ``Y = X @ W + 0`` (X: float32 [N, k]), first output Y.

    Built by ``formats/onnx.py`` like every edgesparse ONNX file (a float identity-head model),
    so the guest runs the same kind of graph the bench measures.
    """
    w = [list(row) for row in weights]
    columns = [[w[k][j] for k in range(len(w))] for j in range(len(w[0]))]
    ir = from_dense(columns, bias=[0.0] * len(columns), head="identity", squeeze=False)
    return onnx_format.encode(ir)


def _verify(target: Target, build: Path, *, qemu: str, site: Path, final: Path) -> dict[str, str]:
    """Run the guest Python once: numpy and onnxruntime import, one inference is right, the
    guest sees the board's architecture, core count and dot-product support."""
    model = build / "home" / "verify.onnx"
    model.write_bytes(verify_model(_VERIFY_W))
    # Paths of the folder being built; the final names only exist after the rename.
    lau = qemu_launch(
        target,
        qemu=qemu,
        prefix=build / "prefix",
        site=site,
        pythonpath=build / "pythonpath",
        home=build / "home",
    )
    argv = [*lau.argv, "-c", _VERIFY_SCRIPT, str(model)]
    try:
        done = subprocess.run(
            argv, env=lau.env, capture_output=True, text=True, timeout=_VERIFY_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise ToolMissingError(
            f"the {target.name} guest Python did not finish in {_VERIFY_TIMEOUT_S} s"
        ) from None
    finally:
        model.unlink(missing_ok=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise ToolMissingError(
            f"the {target.name} guest Python failed its check (exit {done.returncode}): {tail}"
        )
    info = json.loads(done.stdout.strip().splitlines()[-1])
    x = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    expected = [[sum(r[k] * _VERIFY_W[k][j] for k in range(3)) for j in range(2)] for r in x]
    problems = []
    if info["machine"] != target.arch:
        problems.append(f"platform.machine() is {info['machine']}, not {target.arch}")
    if info["cpu_count"] != target.cores:
        problems.append(f"os.cpu_count() is {info['cpu_count']}, not {target.cores}")
    if info["y"] != expected:
        problems.append(f"MatMul gave {info['y']}, not {expected}")
    if info["asimddp"] != target.dotprod:
        problems.append(f"numpy sees ASIMDDP={info['asimddp']}, profile says {target.dotprod}")
    if problems:
        raise ToolMissingError(f"the {target.name} guest failed its check: {'; '.join(problems)}")
    return {k: info[k] for k in ("python", "numpy", "onnxruntime")}


def _run(argv: list[str], *, what: str, cwd: Path | None = None) -> None:
    if shutil.which(argv[0]) is None and not os.path.isabs(argv[0]):
        package = {"apt-get": "apt", "dpkg-deb": "dpkg"}.get(argv[0], argv[0])
        raise ToolMissingError(f"{argv[0]} not found: setup needs Debian's {package} package")
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR"))] or lines
        tail = errors[-1] if errors else f"exit code {done.returncode}"
        raise ToolMissingError(f"{what} failed: {tail.strip()}")
