"""Transports: where a bench process runs and how files reach it. With ``provision.py``, the
only code in edgesparse that starts processes.

A :class:`Transport` stages files, runs one command at a time with a timeout and brings output
files back; an engine (:mod:`edgesparse.bench.engines`) says which files and which command.

- :class:`LocalTransport`, the host and QEMU user-mode targets: files are used where they lie,
  the command is a child of this process (the target's QEMU command line in front of it).
- :class:`SshTransport`, ``ssh://[user@]host[:port][?python=/path]``: one remote temp dir
  (``mktemp -d``, honouring the board's TMPDIR) into which one ``scp`` copies the staged files;
  ``ssh`` runs each command behind a ``sh`` wrapper; ``scp`` brings outputs back; the temp dir
  is removed on :meth:`SshTransport.close`. Options always passed: ``BatchMode=yes`` (never
  prompt), ``ConnectTimeout``, the port; add more (identity file, known_hosts) with
  ``ssh_options`` or ``$EDGESPARSE_SSH_OPTS`` (shell-quoted).

Every command runs in its own session (process group); on timeout the whole group gets
SIGKILL. Output goes to files, never pipes. The process-start timestamp the probe measures cold
start against (``EDGESPARSE_PROBE_T0_NS``) is taken by the transport just before the spawn: the
host's monotonic clock locally (also seen from inside a QEMU guest), ``date +%s%N`` on a board.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

from edgesparse.bench import targets as targets_mod
from edgesparse.errors import ToolMissingError

SSH_OPTS_ENV = "EDGESPARSE_SSH_OPTS"
# The remote temp dir honours the board's TMPDIR, as mktemp itself would; the name prefix lets
# `is_remote_dir` refuse to `rm -rf` anything else.
_REMOTE_MKTEMP = 'mktemp -d "${TMPDIR:-/tmp}/edgesparse-bench.XXXXXX"'
_T0_CLOCK = "EDGESPARSE_PROBE_T0_CLOCK"
_T0_NS = "EDGESPARSE_PROBE_T0_NS"


class StepFailed(Exception):
    """A transport or build step failed; carries the one-line reason."""


@dataclasses.dataclass(frozen=True)
class Command:
    """How to start a program on a target: ``argv`` goes in front of the program's own words;
    ``env`` is the complete environment locally, the extra exports over ssh."""

    argv: list[str]
    env: dict[str, str]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One finished command: return code (None on timeout), stderr tail, local stdout file."""

    rc: int | None
    stderr: str
    out: Path

    def stdout(self) -> str:
        """The command's standard output as text (empty when the file is missing)."""
        try:
            return self.out.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


class Transport(Protocol):
    """Where an engine's processes run; see the module docstring."""

    target: Any
    #: True when staged files are copied somewhere else (then paths differ from local ones).
    remote: bool
    timeout_s: float
    #: The local folder for logs, staged texts and fetched outputs.
    workdir: Path

    def ready(self) -> str | None:
        """Why this transport cannot run here (a tool is missing), else None."""

    def open(self) -> None:
        """Set up (e.g. the remote temp dir); raises :class:`StepFailed`."""

    def stage(self, name: str, source: Path) -> str:
        """Make the file ``source`` available as ``name``; returns its path on the target."""

    def stage_text(self, name: str, text: str) -> str:
        """Write ``text`` as the file ``name``; returns its path on the target."""

    def push(self) -> None:
        """Send what was staged; raises :class:`StepFailed`."""

    def output(self, name: str) -> str:
        """The path on the target where a command should write the output file ``name``."""

    def fetch(self, name: str) -> Path:
        """Bring the output file ``name`` back; its local path. Raises :class:`StepFailed`."""

    def python(self) -> Command:
        """How to start the target's Python; raises ToolMissingError."""

    def native(self) -> Command:
        """How to start a native program of the target's architecture; raises
        ToolMissingError."""

    def facts(self) -> dict[str, Any]:
        """What the transport knows about the environment (``qemu``: its version)."""

    def run(self, argv: list[str], *, env: dict[str, str], log: str) -> RunResult:
        """Run ``argv`` (stamped with the spawn time) under the timeout."""

    def close(self) -> None:
        """Clean up (best effort)."""


def open_transport(
    target: Any, workdir: Path, *, timeout_s: float, ssh_options: list[str]
) -> Transport:
    """The transport for ``target``: ssh for ``ssh://`` targets, local for the rest."""
    if target.kind == "ssh":
        return SshTransport(target, workdir, timeout_s=timeout_s, options=ssh_options)
    return LocalTransport(target, workdir, timeout_s=timeout_s)


def env_ssh_options() -> list[str]:
    """The extra ssh/scp options from ``$EDGESPARSE_SSH_OPTS`` (shell-quoted)."""
    return shlex.split(os.environ.get(SSH_OPTS_ENV, ""))


# ---------------------------------------------------------------------------------------------
# Running processes
# ---------------------------------------------------------------------------------------------
def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` (nothing if it is gone)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def run_group(
    argv: list[str], *, env: dict[str, str] | None, cwd: Path, timeout_s: float, log: Path
) -> tuple[int | None, str]:
    """Run ``argv`` in a new session; returns (returncode or None on timeout, stderr tail).

    Output goes to ``log`` with the suffixes ``.out`` and ``.err``, not pipes: a grandchild
    that outlives a killed parent cannot then block the harness on an open pipe. The group is
    killed on timeout and, to sweep up stragglers, after a normal exit too.

    Raises:
        ToolMissingError: ``argv[0]`` cannot be started.
    """
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ToolMissingError(f"cannot run {argv[0]}: {exc.strerror}") from None
        try:
            rc: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        kill_group(proc.pid)
        if rc is None:
            proc.wait()
    tail = log.with_suffix(".err").read_bytes()[-4000:].decode("utf-8", "replace")
    return rc, tail


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, at most 300 characters."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def failure(rc: int | None, stderr: str, timeout_s: float) -> str:
    """A one-line reason for a process that left no result."""
    if rc is None:
        return f"timeout after {timeout_s:g} s (process group killed)"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        if -rc == signal.SIGKILL:
            why = "killed by SIGKILL (out of memory? the kernel's OOM killer sends it)"
            return f"{why} {last_line(stderr)}".strip()
        return f"crashed: killed by {name} {last_line(stderr)}".strip()
    if "MemoryError" in stderr:
        return "out of memory (MemoryError)"
    return f"exit code {rc}: {last_line(stderr) or 'no error output'}"


def tool_version(argv: list[str]) -> str | None:
    """The first line of ``argv --version`` (None if it cannot run)."""
    try:
        out = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def capture(argv: list[str], *, cwd: Path, timeout_s: float = 60.0) -> str:
    """Standard output of a short helper command (empty if it fails or cannot run)."""
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, cwd=cwd, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout if res.returncode == 0 else ""


def qemu_version(argv: list[str]) -> str | None:
    """The version of the QEMU binary in a command line (None if there is none)."""
    exe = next((a for a in argv if "qemu" in Path(a).name), None)
    if exe is None:
        return None
    # "qemu-aarch64 version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u12)"
    words = (tool_version([exe]) or "").split()
    return words[words.index("version") + 1] if "version" in words[:-1] else None


# ---------------------------------------------------------------------------------------------
# Local: the host and QEMU user-mode targets
# ---------------------------------------------------------------------------------------------
class LocalTransport:
    """The host and QEMU targets: children of this process; files are used in place."""

    remote = False

    def __init__(self, target: Any, workdir: Path, *, timeout_s: float) -> None:
        self.target, self.workdir, self.timeout_s = target, workdir, timeout_s
        self._launch: targets_mod.Launch | None = None
        self._facts: dict[str, Any] | None = None

    def ready(self) -> str | None:
        """Always None: a missing QEMU shows when a command is asked for."""
        return None

    def open(self) -> None:
        """Nothing to set up."""

    def stage(self, name: str, source: Path) -> str:
        """The file stays where it is."""
        return str(source)

    def stage_text(self, name: str, text: str) -> str:
        """Written into the work dir."""
        path = self.workdir / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def push(self) -> None:
        """Nothing to send."""

    def output(self, name: str) -> str:
        """A file in the work dir."""
        return str(self.workdir / name)

    def fetch(self, name: str) -> Path:
        """Already here."""
        return self.workdir / name

    def launch(self) -> targets_mod.Launch:
        """The target's launch (cached); raises ToolMissingError."""
        if self._launch is None:
            self._launch = targets_mod.launch(self.target)
        return self._launch

    def python(self) -> Command:
        """The target's Python (QEMU and the guest's interpreter when emulated)."""
        launch = self.launch()
        return Command(argv=list(launch.argv), env=dict(launch.env))

    def native(self) -> Command:
        """Nothing on the host; the target's QEMU command line without its Python when
        emulated (the profile's ``-cpu`` model and ``-L`` prefix, as for the probe)."""
        if self.target.kind == "host":
            return Command(argv=[], env=dict(os.environ))
        launch = self.launch()
        return Command(argv=list(launch.argv[:-1]), env=dict(launch.env))

    def facts(self) -> dict[str, Any]:
        """``qemu``: the emulator's version on emulated targets, else None."""
        if self._facts is None:
            emulated = bool(self.target.emulated)
            self._facts = {"qemu": qemu_version(self.launch().argv) if emulated else None}
        return self._facts

    def run(self, argv: list[str], *, env: dict[str, str], log: str) -> RunResult:
        """A child in its own session; the spawn time on the host's monotonic clock."""
        run_env = {**env, _T0_CLOCK: "monotonic"}
        # Taken just before the spawn: the probe measures cold start against this on the same
        # (host kernel's) monotonic clock, also from inside a QEMU guest.
        run_env[_T0_NS] = str(time.monotonic_ns())
        path = self.workdir / log
        rc, stderr = run_group(
            argv, env=run_env, cwd=self.workdir, timeout_s=self.timeout_s, log=path
        )
        return RunResult(rc=rc, stderr=stderr, out=path.with_suffix(".out"))

    def close(self) -> None:
        """Nothing to clean up (the runner removes its work dir)."""


# ---------------------------------------------------------------------------------------------
# SSH
# ---------------------------------------------------------------------------------------------
def is_remote_dir(path: str) -> bool:
    """Whether ``path`` (a board's ``mktemp`` output) is an absolute edgesparse-bench temp dir."""
    return path.startswith("/") and path.rsplit("/", 1)[-1].startswith("edgesparse-bench.")


def ssh_tools_missing() -> str | None:
    """Why an ssh target cannot run here (``ssh`` or ``scp`` not installed), else None."""
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed; install it with: apt-get install openssh-client"
    return None


class SshTransport:
    """A board over ssh: staged files go to ``payload/`` in a remote temp dir in one ``scp``;
    each step is logged as ``s1.out``, ``s1.err``, ... in the work dir."""

    remote = True

    def __init__(self, target: Any, workdir: Path, *, timeout_s: float, options: list[str]) -> None:
        self.target, self.workdir, self.timeout_s = target, workdir, timeout_s
        user, host = target.ssh_user, str(target.ssh_host)
        self.dest = f"{user}@{host}" if user else host
        self.base = [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, min(int(timeout_s), 30))}",
            *(["-o", f"Port={int(target.ssh_port)}"] if target.ssh_port else []),
            *options,
        ]
        self.payload = workdir / "payload"
        self._remote: str | None = None
        self._step = 0

    @property
    def root(self) -> str:
        """The staged files' folder on the board (after :meth:`open`)."""
        if self._remote is None:
            raise StepFailed(f"ssh {self.dest}: not connected")
        return f"{self._remote}/payload"

    def ready(self) -> str | None:
        """Why ssh cannot run here (``ssh`` or ``scp`` missing), else None."""
        return ssh_tools_missing()

    def open(self) -> None:
        """Make a fresh temp dir on the board; raises :class:`StepFailed` when there is none."""
        self.payload.mkdir(exist_ok=True)
        res = self._step_run(["ssh", *self.base, self.dest, _REMOTE_MKTEMP])
        made = res.stdout().strip()
        if res.rc != 0 or not is_remote_dir(made):
            raise StepFailed(f"ssh {self.dest}: {failure(res.rc, res.stderr, self.timeout_s)}")
        self._remote = made

    def stage(self, name: str, source: Path) -> str:
        """Copied into the local payload folder; its path on the board."""
        out = self.payload / name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out)
        return f"{self.root}/{name}"

    def stage_text(self, name: str, text: str) -> str:
        """Written into the local payload folder; its path on the board."""
        (self.payload / name).write_text(text, encoding="utf-8")
        return f"{self.root}/{name}"

    def push(self) -> None:
        """One ``scp -r`` of the payload folder."""
        dest = f"{self.dest}:{self._remote}/"
        self._check(["scp", "-q", "-r", *self.base, str(self.payload), dest], "scp to the board")

    def output(self, name: str) -> str:
        """A file in the board's payload folder."""
        return f"{self.root}/{name}"

    def fetch(self, name: str) -> Path:
        """``scp`` the file back into the work dir."""
        local = self.workdir / name
        self._check(["scp", "-q", *self.base, f"{self.dest}:{self.root}/{name}", str(local)], "")
        return local

    def python(self) -> Command:
        """The board's Python (``?python=`` of the URL, else ``python3``), on the payload."""
        python = self.target.ssh_python or "python3"
        return Command(argv=[python], env={"PYTHONPATH": self.root, "ORT_DISABLE_TELEMETRY": "1"})

    def native(self) -> Command:
        """Native programs run as they are."""
        return Command(argv=[], env={})

    def facts(self) -> dict[str, Any]:
        """Nothing known beforehand: the board's facts come from the probe."""
        return {}

    def run(self, argv: list[str], *, env: dict[str, str], log: str) -> RunResult:
        """``ssh`` with a ``sh`` wrapper that exports ``env``, takes the spawn timestamp and
        ``exec``s the command in the payload folder. ``log`` is unused (steps are numbered)."""
        exports = [*(f"{k}={shlex.quote(v)}" for k, v in env.items()), f"{_T0_CLOCK}=realtime"]
        wrapper = (
            f"cd {shlex.quote(self.root)} && export {' '.join(exports)} && "
            f"{_T0_NS}=$(date +%s%N) && export {_T0_NS} && exec {shlex.join(argv)}"
        )
        res = self._step_run(["ssh", *self.base, self.dest, f"sh -c {shlex.quote(wrapper)}"])
        if res.rc == 255:
            stderr = f"ssh connection failed: {last_line(res.stderr)}"
            return RunResult(rc=res.rc, stderr=stderr, out=res.out)
        return res

    def close(self) -> None:
        """Remove the remote temp dir (best effort: a leftover is not worth a failure)."""
        if self._remote is not None:
            self._step_run(["ssh", *self.base, self.dest, f"rm -rf {shlex.quote(self._remote)}"])
            self._remote = None

    def _step_run(self, argv: list[str]) -> RunResult:
        self._step += 1
        log = self.workdir / f"s{self._step}"
        rc, stderr = run_group(argv, env=None, cwd=self.workdir, timeout_s=self.timeout_s, log=log)
        return RunResult(rc=rc, stderr=stderr, out=log.with_suffix(".out"))

    def _check(self, argv: list[str], what: str) -> None:
        res = self._step_run(argv)
        if res.rc != 0:
            reason = failure(res.rc, res.stderr, self.timeout_s)
            raise StepFailed(f"{what}: {reason}" if what else reason)
