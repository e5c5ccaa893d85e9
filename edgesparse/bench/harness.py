"""The bench harness: runs the on-target probe (:mod:`edgesparse.bench.probe`) once per
artifact x target and gathers the results dict of the ``edgesparse-bench`` schema
(docs/BENCH.md). With ``provision.py``, the only code in edgesparse that starts processes.

Each probe is its own process (so RSS and cold start belong to one artifact), in its own
process group; on timeout the whole group is killed with SIGKILL. Hangs, crashes (by signal),
SIGKILL from the kernel (usually the OOM killer), ``MemoryError``, missing tools and failing
connections become rows with ``status: "failed"`` and the reason; the run goes on, unless
``strict=True``.

SSH targets (``ssh://[user@]host[:port][?python=/path]``): one remote temp dir per target
(``mktemp -d``), into which ``scp`` copies the edgesparse package (``.py`` files only), the
artifacts, the data and the probe specs; ``ssh`` runs each probe with the board's Python
behind a ``sh`` wrapper that takes the process-start timestamp (``date +%s%N``) just before
``exec``; ``scp`` brings each result back; the temp dir is removed at the end. Options always
passed: ``BatchMode=yes`` (never prompt), ``ConnectTimeout``, the port; add more (identity
file, known_hosts) with ``ssh_options`` or the environment variable ``EDGESPARSE_SSH_OPTS``
(shell-quoted, e.g. ``-i ~/.ssh/pi -o UserKnownHostsFile=~/.ssh/pi_hosts``).

Engine ``c`` (an artifact spelled ``c:model.esb``): the C runtime's driver
(``edgesparse/runtime/c/esb_main.c``, ``esb bench``) instead of the Python probe. It is built
once per run and architecture (``-O2 -std=c99 -static``, dynamic if static linking fails) with
``cc`` on the host, ``aarch64-linux-gnu-gcc`` for emulated Pi targets (then run under the
target's QEMU command line), and the board's ``cc`` over ssh; ``$EDGESPARSE_CC`` /
``$EDGESPARSE_CC_AARCH64`` override the local compilers. One driver process per batch size;
the first one also writes the predicted labels, from which agreement is computed here.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench.results import SCHEMA, SCHEMA_VERSION
from edgesparse.errors import (
    EdgesparseError,
    InputError,
    ModelFileError,
    TargetError,
    ToolMissingError,
)

ENGINE_BY_SUFFIX = {
    ".esb": "esb",
    ".onnx": "onnx",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".joblib": "sklearn",
    ".skops": "sklearn",
}
#: ``ENGINE:PATH`` artifact prefixes that pick an engine other than the suffix's, and the
#: suffixes each accepts: ``c:model.esb`` times the C runtime on the same blob.
ENGINE_PREFIXES = {"c": (".esb",)}
SSH_OPTS_ENV = "EDGESPARSE_SSH_OPTS"
# Extra seconds a probe's own SIGALRM backstop waits beyond the harness's timeout.
_ALARM_GRACE_S = 30
_PROBE_MODULE = "edgesparse.bench.probe"
# The remote temp dir honours the board's TMPDIR, as mktemp itself would; the name prefix lets
# `_is_remote_dir` refuse to `rm -rf` anything else.
_REMOTE_MKTEMP = 'mktemp -d "${TMPDIR:-/tmp}/edgesparse-bench.XXXXXX"'

Progress = Callable[[str, int, int], None]

__all__ = ["ENGINE_BY_SUFFIX", "ENGINE_PREFIXES", "SCHEMA", "SCHEMA_VERSION", "run_bench"]


@dataclasses.dataclass(frozen=True)
class _Artifact:
    name: str
    path: Path
    engine: str
    model_bytes: int
    sha256: str

    def declaration(self) -> dict[str, Any]:
        return {
            "artifact": self.name,
            "path": str(self.path),
            "engine": self.engine,
            "model_bytes": self.model_bytes,
            "sha256": self.sha256,
        }


@dataclasses.dataclass
class _Outcome:
    """What one probe run gave: the probe's result dict, or why there is none."""

    result: dict[str, Any] | None = None
    error: str | None = None
    status: str = "failed"


class _Tracker:
    """Counts finished probes for the ``progress(message, done, total)`` callback."""

    def __init__(self, progress: Progress | None, *, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def report(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message, self.done, self.total)

    def advance(self) -> None:
        self.done += 1


class _StepFailed(Exception):
    """An ssh/scp step failed; carries the one-line reason."""


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def run_bench(
    *,
    artifacts: Sequence[str | os.PathLike[str]],
    targets: Sequence[Any],
    data: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    batch_sizes: Sequence[int] = (1,),
    runs: int = 1000,
    warmup: int = 100,
    threads: int = 1,
    timeout_s: float = 600.0,
    strict: bool = False,
    progress: Progress | None = None,
    ssh_options: Sequence[str] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Benchmark every artifact on every target and return the results dict (schema
    ``edgesparse-bench`` version 1).

    Args:
        artifacts: ``.esb``, ``.onnx`` and scikit-learn model files (``.pkl``/``.joblib``/
            ``.skops``; these run on the host only, as the baseline); ``c:model.esb`` times
            the C runtime on that blob (artifact name ``c:model.esb``).
        targets: target specs (``"host"``, ``"rpi4"``, ``"ssh://pi@board"``) or ``Target``s.
        data: ``.npy``/``.npz`` input rows (``y`` in an ``.npz`` serves as labels).
        labels: optional ``.npy`` of true labels (or targets, for regressors).
        batch_sizes: rows per timed call; one result row per batch size.
        runs: timed calls per batch size; warmup: untimed calls before them.
        threads: onnxruntime intra-op threads.
        timeout_s: seconds one probe may take before its process group is killed.
        strict: raise on the first failed target/artifact instead of recording it.
        progress: called as ``progress(message, done, total)`` before each step (the
            reference, each artifact x target probe, builds and ssh set-up; ``done`` probes
            have finished of ``total``) and as ``("done", total, total)`` at the end.
        ssh_options: extra ``ssh``/``scp`` options (else ``$EDGESPARSE_SSH_OPTS``).
        command: the command line to record in the results (or None).

    Raises:
        InputError: bad arguments (unknown suffix, duplicate names, bad counts).
        ModelFileError: a missing artifact or data file.
        TargetError: with ``strict=True``, the first failure.
    """
    from edgesparse import __version__
    from edgesparse.bench.targets import get_target
    from edgesparse.data import load_dataset

    _check_counts(batch_sizes=batch_sizes, runs=runs, warmup=warmup, threads=threads)
    if timeout_s <= 0:
        raise InputError(f"timeout must be positive, got {timeout_s}")
    arts = _artifacts(artifacts)
    tgts = [t if not isinstance(t, str) else get_target(t) for t in targets]
    if not tgts:
        raise InputError("give at least one target (e.g. --target host)")
    names = [t.name for t in tgts]
    if len(set(names)) != len(names):
        raise InputError(f"each target may be given once; got {', '.join(names)}")

    tracker = _Tracker(progress, total=len(tgts) * len(arts))
    tracker.report(f"loading {Path(data).name} and the reference predictions")
    data_path = Path(data).resolve()
    dataset = load_dataset(data_path)
    y = _labels(labels, dataset)
    ref_kind, ref_source, ref_pred, task = _reference(arts, dataset.X, y)

    opts = list(ssh_options) if ssh_options is not None else _env_ssh_options()
    rows: list[dict[str, Any]] = []
    target_entries: list[dict[str, Any]] = []
    c_ctx: _CContext | None = None
    workdir = Path(tempfile.mkdtemp(prefix="edgesparse-bench-"))
    try:
        ref_path, labels_path = workdir / "reference.npy", workdir / "labels.npy"
        if ref_pred is not None:
            np.save(ref_path, ref_pred, allow_pickle=False)
        if y is not None:
            np.save(labels_path, y, allow_pickle=False)
        common = {
            "data": str(data_path),
            "reference": str(ref_path) if ref_pred is not None else None,
            "labels": str(labels_path) if y is not None else None,
            "task": task,
            "batch_sizes": [int(b) for b in batch_sizes],
            "runs": int(runs),
            "warmup": int(warmup),
            "threads": int(threads),
            "deadline_s": float(timeout_s) + _ALARM_GRACE_S,
        }
        for target in tgts:
            tdir = workdir / f"target-{len(target_entries)}"
            tdir.mkdir()
            jobs: list[tuple[_Artifact, dict[str, Any]]] = []
            c_jobs: list[_Artifact] = []
            outcomes: dict[str, _Outcome] = {}
            for art in arts:
                if art.engine == "sklearn" and target.kind != "host":
                    outcomes[art.name] = _Outcome(
                        status="skipped",
                        error="scikit-learn models run on the host only (the baseline)",
                    )
                    tracker.advance()
                    continue
                if art.engine == "c":
                    c_jobs.append(art)
                    continue
                spec = {
                    **common,
                    "artifact": str(art.path),
                    "engine": art.engine,
                    "memory": "guest-heap" if target.emulated else "proc",
                }
                jobs.append((art, spec))
            if target.kind == "ssh":
                run_outcomes = _run_ssh_target(
                    target, jobs, tdir, timeout_s=timeout_s, options=opts, tracker=tracker
                )
            else:
                run_outcomes = (
                    _run_local_target(target, jobs, tdir, timeout_s, tracker) if jobs else {}
                )
            outcomes.update(run_outcomes)
            if c_jobs:
                if c_ctx is None:
                    c_ctx = _c_context(workdir, arts, dataset.X, ref_pred, y, task, common)
                outcomes.update(
                    _run_c_target(
                        target,
                        c_jobs,
                        tdir,
                        c_ctx,
                        timeout_s=timeout_s,
                        options=opts,
                        tracker=tracker,
                    )
                )
            for art in arts:
                outcome = outcomes[art.name]
                if strict and outcome.status == "failed":
                    raise TargetError(
                        f"{target.name}: {art.name}: {outcome.error} (--strict stops here; "
                        "drop --strict to record failures and go on)"
                    )
                rows.extend(_rows(target, art, outcome, batch_sizes))
            target_entries.append(_target_entry(target, [outcomes[a.name] for a in arts]))
        tracker.report("done")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "edgesparse_version": __version__,
        "command": command,
        "settings": {
            "runs": int(runs),
            "warmup": int(warmup),
            "batch_sizes": [int(b) for b in batch_sizes],
            "threads": int(threads),
            "data": str(data),
            # Labels given with --labels, or the y stored in the --data .npz.
            "labels": (
                str(labels) if labels is not None else (f"{data} (y)" if y is not None else None)
            ),
            "timeout_s": float(timeout_s),
        },
        "artifacts": [a.declaration() for a in arts],
        "targets": target_entries,
        "reference": {"kind": ref_kind, "source": ref_source},
        "results": rows,
    }


# ---------------------------------------------------------------------------------------------
# Inputs and the reference
# ---------------------------------------------------------------------------------------------
def _check_counts(*, batch_sizes: Sequence[int], runs: int, warmup: int, threads: int) -> None:
    if not batch_sizes:
        raise InputError("give at least one batch size (e.g. --batch 1)")
    if any(int(b) < 1 for b in batch_sizes) or len(set(batch_sizes)) != len(batch_sizes):
        raise InputError(f"batch sizes must be distinct and >= 1, got {list(batch_sizes)}")
    if runs < 1:
        raise InputError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise InputError(f"warmup must be >= 0, got {warmup}")
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")


def _artifacts(paths: Iterable[str | os.PathLike[str]]) -> list[_Artifact]:
    from edgesparse.formats import esb_knn

    out: list[_Artifact] = []
    for raw in paths:
        forced, p = _split_engine(raw)
        engine = forced or ENGINE_BY_SUFFIX.get(p.suffix.lower())
        if engine is None:
            raise InputError(
                f"cannot benchmark {p.name!r}: unknown artifact type {p.suffix or '(none)'!r}; "
                f"use one of: {', '.join(ENGINE_BY_SUFFIX)}"
            )
        if not p.is_file():
            raise ModelFileError(f"artifact not found: {p} (check the path)")
        blob = p.read_bytes()
        name = f"{forced}:{p.name}" if forced else p.name
        if engine in ("esb", "c") and esb_knn.is_knn_blob(blob):
            raise InputError(
                f"cannot benchmark {name}: it is a k-NN recommender blob, and the bench times "
                "linear models; time it in Python with edgesparse.load(path).predict_many(pairs)"
            )
        if any(a.name == name for a in out):
            raise InputError(f"two artifacts are named {name!r}; rename one (names label rows)")
        out.append(
            _Artifact(
                name=name,
                path=p.resolve(),
                engine=engine,
                model_bytes=len(blob),
                sha256=hashlib.sha256(blob).hexdigest(),
            )
        )
    if not out:
        raise InputError("give at least one artifact to benchmark")
    return out


def _split_engine(raw: str | os.PathLike[str]) -> tuple[str | None, Path]:
    """``"c:m.esb"`` -> ("c", Path("m.esb")); anything else -> (None, Path(raw))."""
    text = os.fspath(raw)
    prefix, sep, rest = text.partition(":")
    if not sep or prefix not in ENGINE_PREFIXES:
        return None, Path(text)
    p = Path(rest)
    if p.suffix.lower() not in ENGINE_PREFIXES[prefix]:
        raise InputError(
            f"engine {prefix!r} runs {', '.join(ENGINE_PREFIXES[prefix])} files, not {p.name!r}; "
            f"compress the model first (edgesparse compress MODEL -o m.esb) and pass {prefix}:m.esb"
        )
    return prefix, p


def _labels(labels: str | os.PathLike[str] | None, dataset: Any) -> np.ndarray | None:
    if labels is None:
        return dataset.y
    p = Path(labels)
    if not p.is_file():
        raise ModelFileError(f"labels file not found: {p} (check the path)")
    from edgesparse.sniff import NPY_MAGIC, sniff

    with open(p, "rb") as fh:
        is_npy = fh.read(len(NPY_MAGIC)) == NPY_MAGIC
    if not is_npy:
        kind = sniff(p)
        raise InputError(
            f"{p} is {kind.what if kind else 'not a .npy array'}; --labels reads a .npy array "
            "(numpy.save('y.npy', y)), or give --data an .npz with X and y"
        )
    try:
        y = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{p} is not a plain .npy array ({exc})") from None
    if not isinstance(y, np.ndarray) or y.ndim == 0 or y.shape[0] != dataset.X.shape[0]:
        shape = getattr(y, "shape", None)
        raise InputError(
            f"{p}: labels have shape {shape} but the data has {dataset.X.shape[0]} rows"
        )
    return y


def _reference(
    arts: list[_Artifact], X: Any, y: np.ndarray | None
) -> tuple[str | None, str | None, np.ndarray | None, str]:
    """(kind, source, predictions, task): what each probe's ``agreement`` compares with,
    computed here on the host. scikit-learn's own predictions when a scikit-learn model is
    among the artifacts; else the labels; else the first artifact's host predictions (kind
    "artifact": a cross-target consistency check, not an external reference)."""
    from edgesparse.bench.probe import _load, _prepare_input

    first = next(
        (a for a in arts if a.engine == "sklearn"),
        next((a for a in arts if a.engine != "c"), arts[0]),
    )
    # A C artifact's blob is read with the numpy runtime (same file, same predictions).
    model = _load("esb" if first.engine == "c" else first.engine, str(first.path), 1)
    task = "classification" if hasattr(model, "classes_") else "regression"
    if first.engine == "sklearn":
        pred = np.asarray(model.predict(_prepare_input("sklearn", X)))
        return "sklearn", first.name, _savable(pred), task
    if y is not None:
        return "labels", "labels", _savable(y), task
    pred = np.asarray(model.predict(X))
    how = " (numpy runtime)" if first.engine == "c" else ""
    return "artifact", f"{first.name} on the host{how}", _savable(pred), task


def _savable(a: np.ndarray) -> np.ndarray:
    # Object arrays (string labels from some estimators) cannot be saved without pickle.
    return a.astype(str) if a.dtype.kind == "O" else a


def _env_ssh_options() -> list[str]:
    return shlex.split(os.environ.get(SSH_OPTS_ENV, ""))


# ---------------------------------------------------------------------------------------------
# Running processes
# ---------------------------------------------------------------------------------------------
def _is_remote_dir(path: str) -> bool:
    """Whether ``path`` (a board's ``mktemp`` output) is an absolute edgesparse-bench temp dir."""
    return path.startswith("/") and path.rsplit("/", 1)[-1].startswith("edgesparse-bench.")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def _run_group(
    argv: list[str], *, env: dict[str, str] | None, cwd: Path, timeout_s: float, log: Path
) -> tuple[int | None, str]:
    """Run ``argv`` in a new session; returns (returncode or None on timeout, stderr tail).

    Output goes to files, not pipes: a grandchild that outlives a killed parent cannot then
    block the harness on an open pipe. The group is killed on timeout and, to sweep up
    stragglers, after a normal exit too.
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
        _kill_group(proc.pid)
        if rc is None:
            proc.wait()
    tail = log.with_suffix(".err").read_bytes()[-4000:].decode("utf-8", "replace")
    return rc, tail


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _failure(rc: int | None, stderr: str, timeout_s: float) -> str:
    """A one-line reason for a probe process that left no result."""
    if rc is None:
        return f"timeout after {timeout_s:g} s (process group killed)"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        if -rc == signal.SIGKILL:
            why = "killed by SIGKILL (out of memory? the kernel's OOM killer sends it)"
            return f"{why} {_last_line(stderr)}".strip()
        return f"crashed: killed by {name} {_last_line(stderr)}".strip()
    if "MemoryError" in stderr:
        return "out of memory (MemoryError)"
    return f"exit code {rc}: {_last_line(stderr) or 'no error output'}"


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def _outcome(rc: int | None, stderr: str, result_path: Path, timeout_s: float) -> _Outcome:
    result = _read_result(result_path) if rc is not None else None
    if result is not None and result.get("status") == "ok" and rc == 0:
        return _Outcome(result=result, status="ok")
    if result is not None and result.get("error"):
        return _Outcome(error=str(result["error"]))
    return _Outcome(error=_failure(rc, stderr, timeout_s))


def _run_local_target(
    target: Any,
    jobs: list[tuple[_Artifact, dict[str, Any]]],
    tdir: Path,
    timeout_s: float,
    tracker: _Tracker,
) -> dict[str, _Outcome]:
    """Host and QEMU targets: the probe runs as a child of this process."""
    from edgesparse.bench import targets as targets_mod

    outcomes: dict[str, _Outcome] = {}
    try:
        launch = targets_mod.launch(target)
    except ToolMissingError as exc:
        for _ in jobs:
            tracker.advance()
        return {art.name: _Outcome(error=str(exc)) for art, _ in jobs}
    qemu = _qemu_version(launch.argv) if target.emulated else None
    for i, (art, spec) in enumerate(jobs):
        tracker.report(f"{target.name}: {art.name}")
        result_path = tdir / f"result-{i}.json"
        spec_path = tdir / f"spec-{i}.json"
        spec_path.write_text(json.dumps({**spec, "result": str(result_path)}), encoding="utf-8")
        env = dict(launch.env)
        env["EDGESPARSE_PROBE_T0_CLOCK"] = "monotonic"
        argv = [*launch.argv, "-m", _PROBE_MODULE, str(spec_path)]
        # Taken just before the spawn: the probe measures cold start against this on the same
        # (host kernel's) monotonic clock, also from inside a QEMU guest.
        env["EDGESPARSE_PROBE_T0_NS"] = str(time.monotonic_ns())
        rc, stderr = _run_group(argv, env=env, cwd=tdir, timeout_s=timeout_s, log=tdir / f"p{i}")
        outcome = _outcome(rc, stderr, result_path, timeout_s)
        if outcome.result is not None:
            outcome.result.setdefault("environment", {})["qemu"] = qemu
        outcomes[art.name] = outcome
        tracker.advance()
    return outcomes


def _qemu_version(argv: list[str]) -> str | None:
    exe = next((a for a in argv if "qemu" in Path(a).name), None)
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    # "qemu-aarch64 version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u12)"
    words = out.split()
    return words[words.index("version") + 1] if "version" in words[:-1] else None


# ---------------------------------------------------------------------------------------------
# SSH targets
# ---------------------------------------------------------------------------------------------
def _package_dir() -> Path:
    import edgesparse

    return Path(edgesparse.__file__).resolve().parent


def _stage_package(dest: Path) -> None:
    """Copy the edgesparse package's ``.py`` files (no caches, no data) to ``dest``."""
    src = _package_dir()
    for path in sorted(src.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        out = dest / "edgesparse" / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)


def _ssh_tools_missing() -> str | None:
    """Why an ssh target cannot run here (``ssh`` or ``scp`` not installed), else None."""
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed; install it with: apt-get install openssh-client"
    return None


@dataclasses.dataclass
class _SshSession:
    """ssh/scp calls to one board: ``user@host``, the options every call passes, and a
    numbered log (``s1.out``, ``s1.err``, ...) of each step in ``logdir``."""

    dest: str
    base: list[str]
    logdir: Path
    timeout_s: float
    step: int = 0

    @classmethod
    def open(
        cls, target: Any, logdir: Path, *, timeout_s: float, options: list[str]
    ) -> _SshSession:
        dest = f"{target.ssh_user}@{target.ssh_host}" if target.ssh_user else str(target.ssh_host)
        base = [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, min(int(timeout_s), 30))}",
            *(["-o", f"Port={int(target.ssh_port)}"] if target.ssh_port else []),
            *options,
        ]
        return cls(dest=dest, base=base, logdir=logdir, timeout_s=timeout_s)

    def run(self, argv: list[str]) -> tuple[int | None, str, Path]:
        """Run one step; (returncode or None on timeout, stderr tail, its ``.out`` file)."""
        self.step += 1
        log = self.logdir / f"s{self.step}"
        rc, stderr = _run_group(argv, env=None, cwd=self.logdir, timeout_s=self.timeout_s, log=log)
        return rc, stderr, log.with_suffix(".out")

    def ssh(self, remote_cmd: str) -> tuple[int | None, str, Path]:
        return self.run(["ssh", *self.base, self.dest, remote_cmd])

    def make_remote_dir(self) -> str:
        """A fresh temp dir on the board; raises :class:`_StepFailed` when there is none."""
        rc, stderr, out = self.ssh(_REMOTE_MKTEMP)
        made = out.read_text(encoding="utf-8", errors="replace").strip()
        if rc != 0 or not _is_remote_dir(made):
            raise _StepFailed(f"ssh {self.dest}: {_failure(rc, stderr, self.timeout_s)}")
        return made

    def remove_remote_dir(self, remote: str) -> None:
        # Best effort: a leftover temp dir on the board is not worth failing the report.
        self.ssh(f"rm -rf {shlex.quote(remote)}")


def _run_ssh_target(
    target: Any,
    jobs: list[tuple[_Artifact, dict[str, Any]]],
    tdir: Path,
    *,
    timeout_s: float,
    options: list[str],
    tracker: _Tracker,
) -> dict[str, _Outcome]:
    """Copy package, data and artifacts to the board, run each probe there, fetch results."""
    missing = _ssh_tools_missing()
    if missing:
        for _ in jobs:
            tracker.advance()
        return {art.name: _Outcome(error=missing) for art, _ in jobs}
    if not jobs:
        return {}
    board = _SshSession.open(target, tdir, timeout_s=timeout_s, options=options)
    dest, base = board.dest, board.base
    python = target.ssh_python or "python3"

    def run(argv: list[str], what: str) -> None:
        rc, stderr, _ = board.run(argv)
        if rc != 0:
            raise _StepFailed(f"{what}: {_failure(rc, stderr, timeout_s)}")

    def ssh(remote_cmd: str, what: str) -> None:
        run(["ssh", *base, dest, remote_cmd], what)

    outcomes: dict[str, _Outcome] = {}
    remote: str | None = None
    try:
        tracker.report(f"{target.name}: connecting")
        remote = board.make_remote_dir()
        root = f"{remote}/payload"
        payload = tdir / "payload"
        payload.mkdir()
        _stage_package(payload)
        shutil.copyfile(jobs[0][1]["data"], payload / ("data" + Path(jobs[0][1]["data"]).suffix))
        data_name = "data" + Path(jobs[0][1]["data"]).suffix
        for name in ("reference", "labels"):
            if jobs[0][1].get(name):
                shutil.copyfile(jobs[0][1][name], payload / f"{name}.npy")
        for i, (art, spec) in enumerate(jobs):
            art_name = f"artifact-{i}{art.path.suffix}"
            shutil.copyfile(art.path, payload / art_name)
            remote_spec = {
                **spec,
                "artifact": f"{root}/{art_name}",
                "data": f"{root}/{data_name}",
                "reference": f"{root}/reference.npy" if spec.get("reference") else None,
                "labels": f"{root}/labels.npy" if spec.get("labels") else None,
                "result": f"{root}/result-{i}.json",
            }
            (payload / f"spec-{i}.json").write_text(json.dumps(remote_spec), encoding="utf-8")
        tracker.report(f"{target.name}: copying package, data and artifacts")
        run(["scp", "-q", "-r", *base, str(payload), f"{dest}:{remote}/"], "scp to the board")
        # Compile once up front, so that no artifact's cold start pays for byte-compiling.
        ssh(
            f"{shlex.quote(python)} -m compileall -q {shlex.quote(root)}/edgesparse",
            f"{python} on the board",
        )
        for i, (art, _spec) in enumerate(jobs):
            tracker.report(f"{target.name}: {art.name}")
            wrapper = (
                f"cd {shlex.quote(root)} && "
                f"export PYTHONPATH={shlex.quote(root)} ORT_DISABLE_TELEMETRY=1 "
                "EDGESPARSE_PROBE_T0_CLOCK=realtime && "
                "EDGESPARSE_PROBE_T0_NS=$(date +%s%N) && export EDGESPARSE_PROBE_T0_NS && "
                f"exec {shlex.quote(python)} -m {_PROBE_MODULE} spec-{i}.json"
            )
            rc, stderr, _ = board.ssh(f"sh -c {shlex.quote(wrapper)}")
            local = tdir / f"result-{i}.json"
            if rc is not None and rc in (0, 1):
                # The probe writes a result (ok or its own failure) in both cases.
                try:
                    run(["scp", "-q", *base, f"{dest}:{root}/result-{i}.json", str(local)], "scp")
                except _StepFailed:
                    pass
            if rc == 255:
                stderr = f"ssh connection failed: {_last_line(stderr)}"
            outcomes[art.name] = _outcome(rc, stderr, local, timeout_s)
            tracker.advance()
    except _StepFailed as exc:
        for art, _ in jobs:
            if art.name not in outcomes:
                outcomes[art.name] = _Outcome(error=str(exc))
                tracker.advance()
    finally:
        if remote is not None:
            board.remove_remote_dir(remote)
    return outcomes


# ---------------------------------------------------------------------------------------------
# Engine c: the C runtime's driver (esb_main.c)
# ---------------------------------------------------------------------------------------------
C_CFLAGS = ("-O2", "-std=c99")
_C_SOURCES = ("esb.h", "esb.c", "esb_main.c")
# arch -> (default compiler, override variable, binutils `size`, Debian packages to install)
_C_TOOLCHAINS = {
    "host": ("cc", "EDGESPARSE_CC", "size", "gcc"),
    "aarch64": (
        "aarch64-linux-gnu-gcc",
        "EDGESPARSE_CC_AARCH64",
        "aarch64-linux-gnu-size",
        "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    ),
}
C_MEMORY_EXACT = "C driver: blob + workspace bytes (exact; QEMU's RSS is not the guest's)"


@dataclasses.dataclass
class _CContext:
    """What every C run of one bench shares: the rows file, the reference, the builds."""

    workdir: Path
    rows: Path
    n_rows: int
    classes: dict[str, np.ndarray | None]  # artifact name -> class labels (None: regressor)
    ref: np.ndarray | None
    y: np.ndarray | None
    task: str
    runs: int
    warmup: int
    batch_sizes: list[int]
    builds: dict[str, tuple[Path | None, dict[str, Any], str | None]] = dataclasses.field(
        default_factory=dict
    )


def _c_context(
    workdir: Path,
    arts: list[_Artifact],
    X: Any,
    ref: np.ndarray | None,
    y: np.ndarray | None,
    task: str,
    common: dict[str, Any],
) -> _CContext:
    from edgesparse.export_c import write_rows
    from edgesparse.runtime import load

    rows = workdir / "rows.bin"
    write_rows(rows, X)
    classes = {}
    for art in arts:
        if art.engine == "c":
            try:
                model = load(art.path)
            except EdgesparseError:
                continue  # the driver's esb_open rejects the blob too, with its own message
            classes[art.name] = np.asarray(model.classes_) if hasattr(model, "classes_") else None
    return _CContext(
        workdir=workdir,
        rows=rows,
        n_rows=int(X.shape[0]),
        classes=classes,
        ref=ref,
        y=y,
        task=task,
        runs=int(common["runs"]),
        warmup=int(common["warmup"]),
        batch_sizes=list(common["batch_sizes"]),
    )


def _run_c_target(
    target: Any,
    arts: list[_Artifact],
    tdir: Path,
    ctx: _CContext,
    *,
    timeout_s: float,
    options: list[str],
    tracker: _Tracker,
) -> dict[str, _Outcome]:
    if target.kind == "ssh":
        return _run_c_ssh(
            target, arts, tdir, ctx, timeout_s=timeout_s, options=options, tracker=tracker
        )
    return _run_c_local(target, arts, tdir, ctx, timeout_s=timeout_s, tracker=tracker)


def _c_build_local(
    arch: str, ctx: _CContext, timeout_s: float
) -> tuple[Path | None, dict, str | None]:
    """Build the driver for ``arch`` ("host" or "aarch64") once per bench run:
    (executable or None, program facts, error)."""
    if arch in ctx.builds:
        return ctx.builds[arch]
    from edgesparse.export_c import c_runtime_dir

    default_cc, env_var, size_tool, package = _C_TOOLCHAINS[arch]
    cc = shlex.split(os.environ.get(env_var, "")) or [default_cc]
    out = ctx.workdir / f"c-{arch}"
    out.mkdir(exist_ok=True)
    result: tuple[Path | None, dict, str | None]
    if shutil.which(cc[0]) is None:
        where = f" (from ${env_var})" if os.environ.get(env_var) else ""
        result = (
            None,
            {},
            f"C compiler {cc[0]}{where} not found; install it with: apt-get install {package}",
        )
        ctx.builds[arch] = result
        return result
    src = c_runtime_dir()
    exe = out / "esb"
    sources = [str(src / "esb.c"), str(src / "esb_main.c")]
    err = ""
    for linkage, extra in (("static", ["-static"]), ("dynamic", [])):
        flags = [*C_CFLAGS, *extra]
        rc, err = _run_group(
            [*cc, *flags, f"-I{src}", *sources, "-lm", "-o", str(exe)],
            env=None,
            cwd=out,
            timeout_s=min(timeout_s, 300.0),
            log=out / f"build-{linkage}",
        )
        if rc == 0:
            facts = {
                "compiler": _tool_version(cc),
                "cflags": " ".join(flags),
                "linkage": linkage,
                "file_bytes": exe.stat().st_size,
                **_size_of([size_tool if shutil.which(size_tool) else "size", str(exe)], out),
            }
            result = (exe, facts, None)
            break
    else:
        result = (None, {}, f"building the C driver with {cc[0]} failed: {_last_line(err)}")
    ctx.builds[arch] = result
    return result


def _tool_version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def _size_of(argv: list[str], cwd: Path) -> dict[str, int | None]:
    """text/data/bss and their sum from Berkeley-format ``size`` (nulls if it fails)."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)
        return _parse_size(res.stdout if res.returncode == 0 else "")
    except (OSError, subprocess.TimeoutExpired):
        return _parse_size("")


def _parse_size(text: str) -> dict[str, int | None]:
    lines = text.strip().splitlines()
    try:
        text_b, data_b, bss_b = (int(v) for v in lines[1].split()[:3])
    except (IndexError, ValueError):
        return {"text": None, "data": None, "bss": None, "size_total": None}
    return {"text": text_b, "data": data_b, "bss": bss_b, "size_total": text_b + data_b + bss_b}


def _c_argv(
    exe: str, blob: str, rows: str, ctx: _CContext, batch: int, pred: str | None
) -> list[str]:
    argv = [exe, "bench", blob, rows, str(ctx.runs), str(ctx.warmup), "--batch", str(batch)]
    return argv + (["--predictions", pred] if pred else [])


def _run_c_local(
    target: Any,
    arts: list[_Artifact],
    tdir: Path,
    ctx: _CContext,
    *,
    timeout_s: float,
    tracker: _Tracker,
) -> dict[str, _Outcome]:
    """Host and QEMU targets: the driver runs as a child, under the target's QEMU command."""
    from edgesparse.bench import targets as targets_mod

    def fail_all(reason: str) -> dict[str, _Outcome]:
        for _ in arts:
            tracker.advance()
        return {art.name: _Outcome(error=reason) for art in arts}

    if target.kind == "host":
        arch, prefix, env = "host", [], dict(os.environ)
    else:
        arch = target.arch
        if arch not in _C_TOOLCHAINS:
            return fail_all(f"engine c has no cross compiler set up for {arch}")
        try:
            launch = targets_mod.launch(target)
        except ToolMissingError as exc:
            return fail_all(str(exc))
        # The target's command line without its last word (the guest's Python): QEMU with the
        # profile's -cpu model and -L prefix, as for the Python probe.
        prefix, env = launch.argv[:-1], dict(launch.env)
    if arch not in ctx.builds:
        tracker.report(f"{target.name}: building the C driver")
    exe, facts, error = _c_build_local(arch, ctx, timeout_s)
    if exe is None:
        return fail_all(f"engine c: {error}")
    qemu = _qemu_version(prefix) if target.emulated else None
    environment = {
        "machine": target.arch or None,
        "threads": 1,
        "qemu": qemu,
        "c_compiler": facts.get("compiler"),
    }
    outcomes: dict[str, _Outcome] = {}
    for i, art in enumerate(arts):
        tracker.report(f"{target.name}: {art.name}")
        runs: list[dict[str, Any]] = []
        error = None
        pred_path = tdir / f"c-pred-{i}.txt"
        for j, batch in enumerate(ctx.batch_sizes):
            pred = str(pred_path) if j == 0 else None
            run_env = {**env, "EDGESPARSE_PROBE_T0_CLOCK": "monotonic"}
            argv = [*prefix, *_c_argv(str(exe), str(art.path), str(ctx.rows), ctx, batch, pred)]
            run_env["EDGESPARSE_PROBE_T0_NS"] = str(time.monotonic_ns())
            log = tdir / f"c{i}-{j}"
            rc, stderr = _run_group(argv, env=run_env, cwd=tdir, timeout_s=timeout_s, log=log)
            parsed = _c_json(log.with_suffix(".out")) if rc == 0 else None
            if parsed is None:
                error = _failure(rc, stderr, timeout_s) if rc != 0 else "no JSON from esb bench"
                break
            runs.append(parsed)
        if error is None:
            try:
                text = pred_path.read_text(encoding="utf-8")
            except OSError as exc:
                error = f"esb bench wrote no predictions ({exc.strerror})"
        if error is not None:
            outcomes[art.name] = _Outcome(error=f"engine c: {error}")
        else:
            outcomes[art.name] = _c_outcome(target, art, ctx, runs, text, facts, environment)
        tracker.advance()
    return outcomes


def _c_json(path: Path) -> dict[str, Any] | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        parsed = json.loads(lines[-1])
    except (OSError, ValueError, IndexError):
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("engine") == "c" else None


def _c_predictions(text: str, ctx: _CContext, art: _Artifact) -> np.ndarray:
    lines = text.splitlines()
    if len(lines) != ctx.n_rows:
        raise ValueError(f"{len(lines)} predictions for {ctx.n_rows} rows")
    if art.name not in ctx.classes:
        raise ValueError("the numpy runtime could not read this blob to label them")
    classes = ctx.classes[art.name]
    if classes is not None:
        return classes[np.array([int(v) for v in lines], dtype=np.int64)]
    values = np.array([[float(v) for v in ln.split()] for ln in lines], dtype=np.float64)
    return values.reshape(-1) if values.shape[1] == 1 else values


def _c_outcome(
    target: Any,
    art: _Artifact,
    ctx: _CContext,
    runs: list[dict[str, Any]],
    predictions: str,
    facts: dict[str, Any],
    environment: dict[str, Any],
) -> _Outcome:
    """The C driver's JSON lines (one per batch size) and labels -> a probe-like result."""
    from edgesparse.bench.probe import MEMORY_PROC, agreement, r2_score

    try:
        pred = _c_predictions(predictions, ctx, art)
    except (ValueError, IndexError) as exc:
        return _Outcome(error=f"engine c: unreadable predictions ({exc})")
    quality: dict[str, Any] = {"agreement": None, "accuracy": None, "r2": None}
    if ctx.task == "classification":
        if ctx.ref is not None:
            quality["agreement"] = agreement(pred, ctx.ref)
        if ctx.y is not None:
            quality["accuracy"] = agreement(pred, ctx.y)
    else:
        if ctx.ref is not None:
            diff = np.abs(pred.reshape(-1) - ctx.ref.astype(np.float64).reshape(-1))
            quality["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
        if ctx.y is not None:
            r2 = r2_score(ctx.y, pred)
            quality["r2"] = r2 if np.isfinite(r2) else None
    first = runs[0]
    if target.emulated:
        memory = {
            "memory_method": C_MEMORY_EXACT,
            "peak_rss_bytes": None,
            "model_rss_bytes": int(first["model_bytes"]) + int(first["workspace_bytes"]),
        }
    else:
        memory = {
            "memory_method": MEMORY_PROC,
            "peak_rss_bytes": max(int(r["peak_rss_bytes"]) for r in runs),
            "model_rss_bytes": first.get("model_rss_bytes"),
        }
    rows = []
    for r in runs:
        batch = int(r["batch"])
        lat = {p: float(r[f"{p}_ns"]) / 1000.0 for p in ("p50", "p90", "p99", "p999")}
        lat["mean"] = float(r["mean_ns"]) / 1000.0
        mean_s = float(r["mean_ns"]) / 1e9
        rows.append(
            {
                "batch_size": int(batch),
                "latency_us": lat,
                "throughput_rows_per_s": batch / mean_s if mean_s > 0 else None,
                "runs": int(r["runs"]),
            }
        )
    cold = first.get("cold_start_ns")
    program = {
        **facts,
        "mode": first.get("mode"),
        "workspace_bytes": first.get("workspace_bytes"),
        "size_plus_model_bytes": facts["size_total"] + art.model_bytes
        if facts.get("size_total") is not None
        else None,
    }
    return _Outcome(
        status="ok",
        result={
            "status": "ok",
            "error": None,
            "engine": "c",
            "n_rows": ctx.n_rows,
            "task": ctx.task,
            "load_ms": float(first["load_ns"]) / 1e6,
            "cold_start_ms": float(cold) / 1e6 if cold is not None else None,
            "cold_start_method": "spawn timestamp" if cold is not None else None,
            "startup_ms": None,
            **quality,
            **memory,
            "rows": rows,
            "c_program": program,
            "environment": environment,
        },
    )


def _run_c_ssh(
    target: Any,
    arts: list[_Artifact],
    tdir: Path,
    ctx: _CContext,
    *,
    timeout_s: float,
    options: list[str],
    tracker: _Tracker,
) -> dict[str, _Outcome]:
    """Copy the C sources, rows and blobs to the board, build there with its ``cc``, run."""
    from edgesparse.export_c import c_runtime_dir

    outcomes: dict[str, _Outcome] = {}

    def fail_rest(reason: str) -> dict[str, _Outcome]:
        for art in arts:
            if art.name not in outcomes:
                outcomes[art.name] = _Outcome(error=f"engine c: {reason}")
                tracker.advance()
        return outcomes

    missing = _ssh_tools_missing()
    if missing:
        return fail_rest(missing)
    cdir = tdir / "c-ssh"
    cdir.mkdir()
    board = _SshSession.open(target, cdir, timeout_s=timeout_s, options=options)
    dest, base = board.dest, board.base

    def run(argv: list[str]) -> tuple[int | None, str, str]:
        rc, stderr, out = board.run(argv)
        return rc, stderr, out.read_text(encoding="utf-8", errors="replace")

    tracker.report(f"{target.name}: building the C driver")
    try:
        remote = board.make_remote_dir()
    except _StepFailed as exc:
        return fail_rest(str(exc))
    try:
        payload = cdir / "payload"
        payload.mkdir()
        for name in _C_SOURCES:
            shutil.copyfile(c_runtime_dir() / name, payload / name)
        shutil.copyfile(ctx.rows, payload / "rows.bin")
        for i, art in enumerate(arts):
            shutil.copyfile(art.path, payload / f"model-{i}.esb")
        root = f"{remote}/payload"
        rc, stderr, _ = run(["scp", "-q", "-r", *base, str(payload), f"{dest}:{remote}/"])
        if rc != 0:
            return fail_rest(f"scp to the board: {_failure(rc, stderr, timeout_s)}")
        flags = " ".join(C_CFLAGS)
        build = (
            f"cd {shlex.quote(root)} && "
            "if ! command -v cc >/dev/null 2>&1; then echo 'NO-CC'; exit 3; fi; "
            f"if cc {flags} -static esb.c esb_main.c -lm -o esb 2>build.err; "
            "then echo 'LINKAGE static'; "
            f"elif cc {flags} esb.c esb_main.c -lm -o esb 2>build.err; "
            "then echo 'LINKAGE dynamic'; "
            "else tail -n 3 build.err >&2; exit 4; fi; "
            'echo "CC $(cc --version 2>/dev/null | head -n 1)"; '
            'echo "BYTES $(wc -c < esb)"; echo "MACHINE $(uname -m)"; '
            "size esb 2>/dev/null || true"
        )
        rc, stderr, out = run(["ssh", *base, dest, f"sh -c {shlex.quote(build)}"])
        if "NO-CC" in out:
            return fail_rest(
                "no C compiler (cc) on the board; install one there: apt-get install gcc"
            )
        if rc != 0:
            return fail_rest(f"building on the board failed: {_failure(rc, stderr, timeout_s)}")
        facts = _remote_build_facts(out, flags)
        environment = {
            "machine": facts.pop("machine"),
            "threads": 1,
            "qemu": None,
            "c_compiler": facts["compiler"],
        }
        for i, art in enumerate(arts):
            tracker.report(f"{target.name}: {art.name}")
            runs: list[dict[str, Any]] = []
            error = None
            for j, batch in enumerate(ctx.batch_sizes):
                pred = f"pred-{i}.txt" if j == 0 else None
                cmd = shlex.join(_c_argv("./esb", f"model-{i}.esb", "rows.bin", ctx, batch, pred))
                wrapper = (
                    f"cd {shlex.quote(root)} && export EDGESPARSE_PROBE_T0_CLOCK=realtime && "
                    "EDGESPARSE_PROBE_T0_NS=$(date +%s%N) && export EDGESPARSE_PROBE_T0_NS && "
                    f"exec {cmd}"
                )
                rc, stderr, out_file = board.ssh(f"sh -c {shlex.quote(wrapper)}")
                parsed = _c_json(out_file) if rc == 0 else None
                if parsed is None:
                    error = _failure(rc, stderr, timeout_s) if rc != 0 else "no JSON from esb bench"
                    break
                runs.append(parsed)
            text = ""
            if error is None:
                rc, stderr, text = run(
                    ["ssh", *base, dest, f"cat {shlex.quote(root)}/pred-{i}.txt"]
                )
                if rc != 0:
                    error = f"fetching predictions: {_failure(rc, stderr, timeout_s)}"
            if error is not None:
                outcomes[art.name] = _Outcome(error=f"engine c: {error}")
            else:
                outcomes[art.name] = _c_outcome(target, art, ctx, runs, text, facts, environment)
            tracker.advance()
        return outcomes
    finally:
        board.remove_remote_dir(remote)


def _remote_build_facts(out: str, flags: str) -> dict[str, Any]:
    lines = out.splitlines()
    value = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] if " " in ln else "" for ln in lines}
    linkage = value.get("LINKAGE")
    size_at = next((k for k, ln in enumerate(lines) if ln.split()[:1] == ["text"]), None)
    sizes = _parse_size("\n".join(lines[size_at : size_at + 2]) if size_at is not None else "")
    nbytes = value.get("BYTES", "").strip()
    return {
        "machine": value.get("MACHINE", "").strip() or None,
        "compiler": value.get("CC", "").strip() or None,
        "cflags": f"{flags} -static" if linkage == "static" else flags,
        "linkage": linkage,
        "file_bytes": int(nbytes) if nbytes.isdigit() else None,
        **sizes,
    }


# ---------------------------------------------------------------------------------------------
# Assembling rows
# ---------------------------------------------------------------------------------------------
_ROW_METRICS = (
    "cold_start_ms",
    "cold_start_method",
    "startup_ms",
    "load_ms",
    "peak_rss_bytes",
    "model_rss_bytes",
    "memory_method",
    "agreement",
    "accuracy",
    "r2",
)


def _rows(
    target: Any, art: _Artifact, outcome: _Outcome, batch_sizes: Sequence[int]
) -> list[dict[str, Any]]:
    head = {
        "target": target.name,
        "engine": art.engine,
        "artifact": art.name,
        "emulated": bool(target.emulated),
    }
    result = outcome.result
    if result is None:
        return [
            {
                **head,
                "batch_size": int(b),
                "status": outcome.status,
                "error": outcome.error,
                "latency_us": None,
                "throughput_rows_per_s": None,
                "runs": None,
                **dict.fromkeys(_ROW_METRICS),
                "model_bytes": art.model_bytes,
            }
            for b in batch_sizes
        ]
    extra = {k: result[k] for k in ("memory_detail", "max_abs_diff", "c_program") if k in result}
    return [
        {
            **head,
            "batch_size": r["batch_size"],
            "status": "ok",
            "error": None,
            "latency_us": r["latency_us"],
            "throughput_rows_per_s": r["throughput_rows_per_s"],
            "runs": r["runs"],
            **{k: result.get(k) for k in _ROW_METRICS},
            "model_bytes": art.model_bytes,
            **extra,
        }
        for r in result["rows"]
    ]


def _target_entry(target: Any, outcomes: list[_Outcome]) -> dict[str, Any]:
    ok = [o for o in outcomes if o.status == "ok"]
    failed = [o for o in outcomes if o.status == "failed"]
    if ok:
        status, error = "ok", None
    elif failed:
        status, error = "failed", failed[0].error
    else:
        status, error = "skipped", outcomes[0].error if outcomes else "nothing to run"
    # The Python probe's environment says more (versions) than the C driver's: prefer it.
    ok = sorted(ok, key=lambda o: bool(o.result and o.result.get("engine") == "c"))
    environment = ok[0].result.get("environment") if ok and ok[0].result else None
    env = environment or {}
    # A board reached over ssh is only known once probed: its facts come from the probe.
    probed = target.kind == "ssh"
    return {
        "target": target.name,
        "kind": target.kind,
        "description": getattr(target, "description", None),
        "emulated": bool(target.emulated),
        "arch": (env.get("machine") if probed else None) or target.arch or None,
        "cpu": (env.get("cpu_model") if probed else None) or target.cpu or None,
        "cores": (env.get("cpu_count") if probed else None) or target.cores,
        "ram_bytes": (env.get("mem_total_bytes") if probed else None) or target.ram_bytes,
        "dotprod": target.dotprod,
        "notes": target.notes,
        "status": status,
        "error": error,
        "environment": environment,
    }
