"""Engine ``c``: the C runtime's driver (``edgesparse/runtime/c/esb_main.c``, ``esb bench``:
esb_bench_main.c) instead of the Python probe, on an artifact spelled ``c:model.esb``.

The driver is built once per run and architecture (``-O2 -std=c99 -static``, dynamic if static
linking fails): on the host with ``cc`` for the host, ``aarch64-linux-gnu-gcc`` for emulated
Pi targets (then run under the target's QEMU command line); on a board reached over ssh with
the board's ``cc``. ``$EDGESPARSE_CC`` / ``$EDGESPARSE_CC_AARCH64`` override the local
compilers. One driver process per batch size; the first one also writes the predicted labels,
from which agreement is computed here. A batch of rows is one call of the runtime's batch API
(``esb_predict_batch`` and friends for dense rows, ``esb_predict_csr_batch`` and friends for
CSR rows, esb.h); ``c_program.api`` says so ("batch"; "one-row" for the driver's --one-row
loop). Documents and records have no batch call: each is one call, featurization (and for
records the split of its raw CSV text) included, "one-row". Every failure reads
``engine c: <reason>``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench.engines import Artifact, Tracker
from edgesparse.bench.probe import MEMORY_PROC, agreement, r2_score
from edgesparse.bench.results_build import Outcome
from edgesparse.bench.transports import (
    Command,
    StepFailed,
    Transport,
    capture,
    failure,
    last_line,
    run_group,
    tool_version,
)
from edgesparse.errors import EdgesparseError
from edgesparse.export_c import RUNTIME_FILES, c_runtime_dir, write_rows
from edgesparse.fileio import atomic_write_bytes
from edgesparse.records import TableRecords
from edgesparse.runtime import load

C_CFLAGS = ("-O2", "-std=c99")
# Every file is shipped to a board that builds the driver: esb.c and esb_main.c include the
# rest (esb_bench_main.c, esb_rec_main.c, ...; one build line for both).
C_SOURCES = RUNTIME_FILES
# arch -> (default compiler, override variable, binutils `size`, Debian packages to install)
C_TOOLCHAINS = {
    "host": ("cc", "EDGESPARSE_CC", "size", "gcc"),
    "aarch64": (
        "aarch64-linux-gnu-gcc",
        "EDGESPARSE_CC_AARCH64",
        "aarch64-linux-gnu-size",
        "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    ),
}
C_MEMORY_EXACT = "C driver: blob + workspace bytes (exact; QEMU's RSS is not the guest's)"
#: The board-side build: links statically if it can, reports what it built on stdout.
_REMOTE_BUILD = (
    "if ! command -v cc >/dev/null 2>&1; then echo 'NO-CC'; exit 3; fi; "
    "if cc {flags} -static esb.c esb_main.c -lm -o esb 2>build.err; "
    "then echo 'LINKAGE static'; "
    "elif cc {flags} esb.c esb_main.c -lm -o esb 2>build.err; "
    "then echo 'LINKAGE dynamic'; "
    "else tail -n 3 build.err >&2; exit 4; fi; "
    'echo "CC $(cc --version 2>/dev/null | head -n 1)"; '
    'echo "BYTES $(wc -c < esb)"; echo "MACHINE $(uname -m)"; '
    "size esb 2>/dev/null || true"
)

Build = tuple[Path | None, dict[str, Any], str | None]


#: The name each kind of driver input is staged under: rows (``ESBROWS1``), documents (one
#: per line), records (a CSV with a header) or k-NN pairs (``user,item`` CSV).
INPUT_NAMES = {
    "rows": "rows.bin",
    "text": "documents.txt",
    "records": "records.csv",
    "pairs": "pairs.csv",
}
#: What one line of the driver's predictions stands for, by input kind.
_UNIT = {"text": "documents", "records": "records"}


@dataclasses.dataclass
class DriverContext:
    """What every C run of one bench shares: the input file (``input`` says which kind, see
    :data:`INPUT_NAMES`; ``rows`` is its path whatever the kind), the reference, the host
    builds. A pairs run also has ``users`` (one pair per user, for ``--op recommend``) and
    ``refusal``, why the driver cannot read these ids (or None)."""

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
    builds: dict[str, Build] = dataclasses.field(default_factory=dict)
    input: str = "rows"
    users: Path | None = None
    refusal: str | None = None


def driver_context(
    *,
    workdir: Path,
    arts: list[Artifact],
    X: Any,
    ref: np.ndarray | None,
    y: np.ndarray | None,
    task: str,
    common: dict[str, Any],
) -> DriverContext:
    """Write the rows file once and read each C artifact's classes with the numpy runtime."""
    rows = workdir / "rows.bin"
    write_rows(rows, X)
    return _context(rows, int(X.shape[0]), "rows", arts, ref, y, task, common)


def _context(
    path: Path,
    n_rows: int,
    kind: str,
    arts: list[Artifact],
    ref: np.ndarray | None,
    y: np.ndarray | None,
    task: str,
    common: dict[str, Any],
) -> DriverContext:
    """The context every input kind shares: the staged input file, the artifacts' classes
    (read with the numpy runtime) and the run settings."""
    return DriverContext(
        workdir=path.parent,
        rows=path,
        n_rows=n_rows,
        classes=artifact_classes(arts),
        ref=ref,
        y=y,
        task=task,
        runs=int(common["runs"]),
        warmup=int(common["warmup"]),
        batch_sizes=list(common["batch_sizes"]),
        input=kind,
    )


def text_context(
    *,
    workdir: Path,
    arts: list[Artifact],
    documents: list[str],
    ref: np.ndarray | None,
    y: np.ndarray | None,
    task: str,
    common: dict[str, Any],
) -> DriverContext:
    """The context of a text run: the documents written one per line, as ``esb bench`` reads
    them (a document holds no line break: :func:`edgesparse.data.read_documents` split them)."""
    path = workdir / INPUT_NAMES["text"]
    atomic_write_bytes(path, "".join(d + "\n" for d in documents).encode("utf-8"))
    return _context(path, len(documents), "text", arts, ref, y, task, common)


def records_context(
    *,
    workdir: Path,
    arts: list[Artifact],
    records: Callable[[], TableRecords],
    ref: np.ndarray | None,
    y: np.ndarray | None,
    task: str,
    common: dict[str, Any],
) -> DriverContext:
    """The context of a tabular run: the records (``records()`` reads them, so that they are
    held only while this context is made) written back as a CSV under their header (the
    cells as :func:`edgesparse.data.read_records` read them, quoted where they must be),
    which ``esb bench`` splits record by record inside its timed calls."""
    rows = records()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(rows.names)
    writer.writerows(rows)
    path = workdir / INPUT_NAMES["records"]
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return _context(path, len(rows), "records", arts, ref, y, task, common)


def artifact_classes(arts: list[Artifact]) -> dict[str, np.ndarray | None]:
    """Each C artifact's class labels (None: a regressor), read with the numpy runtime; a
    blob it cannot read is left out (the driver's esb_open rejects it too, with its message)."""
    classes: dict[str, np.ndarray | None] = {}
    for art in arts:
        if art.engine == "c":
            try:
                model = load(art.path)
            except EdgesparseError:
                continue
            classes[art.name] = np.asarray(model.classes_) if hasattr(model, "classes_") else None
    return classes


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------
def build_local(arch: str, ctx: DriverContext, *, timeout_s: float) -> Build:
    """Build the driver on the host for ``arch`` ("host" or "aarch64") once per bench run:
    (executable or None, program facts, error)."""
    if arch not in ctx.builds:
        ctx.builds[arch] = _compile_local(arch, ctx.workdir / f"c-{arch}", timeout_s=timeout_s)
    return ctx.builds[arch]


def _compile_local(arch: str, out: Path, *, timeout_s: float) -> Build:
    default_cc, env_var, size_tool, package = C_TOOLCHAINS[arch]
    cc = shlex.split(os.environ.get(env_var, "")) or [default_cc]
    out.mkdir(exist_ok=True)
    if shutil.which(cc[0]) is None:
        where = f" (from ${env_var})" if os.environ.get(env_var) else ""
        why = f"C compiler {cc[0]}{where} not found; install it with: apt-get install {package}"
        return None, {}, why
    src = c_runtime_dir()
    exe = out / "esb"
    sources = [str(src / "esb.c"), str(src / "esb_main.c")]
    err = ""
    for linkage, extra in (("static", ["-static"]), ("dynamic", [])):
        flags = [*C_CFLAGS, *extra]
        rc, err = run_group(
            [*cc, *flags, f"-I{src}", *sources, "-lm", "-o", str(exe)],
            env=None,
            cwd=out,
            timeout_s=min(timeout_s, 300.0),
            log=out / f"build-{linkage}",
        )
        if rc == 0:
            size = size_tool if shutil.which(size_tool) else "size"
            facts = {
                "compiler": tool_version(cc),
                "cflags": " ".join(flags),
                "linkage": linkage,
                "file_bytes": exe.stat().st_size,
                **parse_size(capture([size, str(exe)], cwd=out)),
            }
            return exe, facts, None
    return None, {}, f"building the C driver with {cc[0]} failed: {last_line(err)}"


def parse_size(text: str) -> dict[str, int | None]:
    """text/data/bss and their sum from Berkeley-format ``size`` output (nulls if absent)."""
    lines = text.strip().splitlines()
    try:
        text_b, data_b, bss_b = (int(v) for v in lines[1].split()[:3])
    except (IndexError, ValueError):
        return {"text": None, "data": None, "bss": None, "size_total": None}
    return {"text": text_b, "data": data_b, "bss": bss_b, "size_total": text_b + data_b + bss_b}


def remote_build_facts(out: str, flags: str) -> dict[str, Any]:
    """The board-side build's report (``LINKAGE``, ``CC``, ``BYTES``, ``MACHINE``, ``size``)
    as program facts, with ``machine``."""
    lines = out.splitlines()
    value = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] if " " in ln else "" for ln in lines}
    linkage = value.get("LINKAGE")
    size_at = next((k for k, ln in enumerate(lines) if ln.split()[:1] == ["text"]), None)
    sizes = parse_size("\n".join(lines[size_at : size_at + 2]) if size_at is not None else "")
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
# The engine
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class DriverEngine:
    """The C driver. ``context`` is made on first use (only runs with ``c:`` artifacts pay
    for the rows file)."""

    make_context: Callable[[], DriverContext]
    _context: DriverContext | None = dataclasses.field(default=None, init=False, repr=False)

    def context(self) -> DriverContext:
        """The run's shared context (made once)."""
        if self._context is None:
            self._context = self.make_context()
        return self._context

    def failure(self, reason: str) -> str:
        """``engine c: <reason>``."""
        return f"engine c: {reason}"

    def prepare(
        self, transport: Transport, arts: list[Artifact], *, tracker: Tracker
    ) -> DriverSession:
        """Build the driver on the host (or stage its sources for a board that builds it),
        stage rows and blobs, send them, build on the board."""
        ctx, target = self.context(), transport.target
        exe, facts, machine = "", {}, target.arch or None
        if transport.remote:
            tracker.report(f"{target.name}: building the C driver")
            transport.open()
            for name in C_SOURCES:
                transport.stage(name, c_runtime_dir() / name)
        else:
            local_exe, facts = self._build_here(transport, ctx, tracker=tracker)
            transport.open()
            exe = transport.stage("esb", local_exe)
        blobs = [transport.stage(f"model-{i}.esb", art.path) for i, art in enumerate(arts)]
        rows = transport.stage(INPUT_NAMES[ctx.input], ctx.rows)
        users = transport.stage("users.csv", ctx.users) if ctx.users is not None else None
        transport.push()
        if transport.remote:
            facts = self._build_there(transport)
            exe, machine = transport.output("esb"), facts.pop("machine")
        environment = {
            "machine": machine,
            "threads": 1,
            "qemu": transport.facts().get("qemu"),
            "c_compiler": facts.get("compiler"),
        }
        return DriverSession(
            engine=self,
            transport=transport,
            native=transport.native(),
            exe=exe,
            blobs=blobs,
            rows=rows,
            facts=facts,
            environment=environment,
            users=users,
        )

    def _build_here(
        self, transport: Transport, ctx: DriverContext, *, tracker: Tracker
    ) -> tuple[Path, dict[str, Any]]:
        target = transport.target
        arch = "host" if target.kind == "host" else target.arch
        if arch not in C_TOOLCHAINS:
            raise StepFailed(f"no cross compiler set up for {arch}")
        transport.native()  # a missing QEMU fails here, before the build
        if arch not in ctx.builds:
            tracker.report(f"{target.name}: building the C driver")
        exe, facts, error = build_local(arch, ctx, timeout_s=transport.timeout_s)
        if exe is None:
            raise StepFailed(str(error))
        return exe, facts

    def _build_there(self, transport: Transport) -> dict[str, Any]:
        flags = " ".join(C_CFLAGS)
        # The transport runs it in the staged folder, where the sources are.
        res = transport.run(["sh", "-c", _REMOTE_BUILD.format(flags=flags)], env={}, log="build")
        out = res.stdout()
        if "NO-CC" in out:
            raise StepFailed(
                "no C compiler (cc) on the board; install one there: apt-get install gcc"
            )
        if res.rc != 0:
            reason = failure(res.rc, res.stderr, transport.timeout_s)
            raise StepFailed(f"building on the board failed: {reason}")
        return remote_build_facts(out, flags)


@dataclasses.dataclass
class DriverSession:
    """The driver built and staged on one transport: one process per batch size."""

    engine: DriverEngine
    transport: Transport
    native: Command
    exe: str
    blobs: list[str]
    rows: str
    facts: dict[str, Any]
    environment: dict[str, Any]
    users: str | None = None

    def bench(self, index: int, args: list[str], *, log: str) -> dict[str, Any] | str:
        """One ``esb bench`` of the ``index``-th blob on the staged input with ``args`` after
        the blob and input: its JSON line, or why there is none (``engine c: ...``)."""
        t = self.transport
        argv = [self.exe, "bench", self.blobs[index], *args]
        res = t.run([*self.native.argv, *argv], env=self.native.env, log=log)
        parsed = driver_json(res.out) if res.rc == 0 else None
        if parsed is None:
            why = failure(res.rc, res.stderr, t.timeout_s) if res.rc != 0 else None
            return self.engine.failure(why or "no JSON from esb bench")
        return parsed

    def measure(self, index: int, art: Artifact) -> Outcome:
        """Run ``esb bench`` per batch size, then read the predictions of the first run (a
        pairs run: :func:`edgesparse.bench.engine_c_knn.measure`)."""
        ctx, t = self.engine.context(), self.transport
        if ctx.input == "pairs":
            from edgesparse.bench.engine_c_knn import measure

            return measure(self, index, art)
        runs: list[dict[str, Any]] = []
        pred_name = f"c-pred-{index}.txt"
        for j, batch in enumerate(ctx.batch_sizes):
            args = [self.rows, str(ctx.runs), str(ctx.warmup), "--batch", str(batch)]
            if j == 0:
                args += ["--predictions", t.output(pred_name)]
            parsed = self.bench(index, args, log=f"c{index}-{j}")
            if isinstance(parsed, str):
                return Outcome(error=parsed)
            runs.append(parsed)
        try:
            text = t.fetch(pred_name).read_text(encoding="utf-8")
        except StepFailed as exc:
            return Outcome(error=self.engine.failure(f"fetching predictions: {exc}"))
        except OSError as exc:
            why = f"esb bench wrote no predictions ({exc.strerror})"
            return Outcome(error=self.engine.failure(why))
        try:
            pred = driver_predictions(text, ctx, art)
        except (ValueError, IndexError) as exc:
            return Outcome(error=self.engine.failure(f"unreadable predictions ({exc})"))
        return driver_outcome(
            t.target, art, ctx, runs, pred, facts=self.facts, environment=self.environment
        )


# ---------------------------------------------------------------------------------------------
# Reading the driver's output
# ---------------------------------------------------------------------------------------------
def driver_json(path: Path) -> dict[str, Any] | None:
    """The last stdout line of ``esb bench`` as a dict (None unless it is the C engine's)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        parsed = json.loads(lines[-1])
    except (OSError, ValueError, IndexError):
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("engine") == "c" else None


def driver_predictions(text: str, ctx: DriverContext, art: Artifact) -> np.ndarray:
    """The predictions file (a class index, or the values, per line) as labels/values.

    Raises:
        ValueError: a wrong line count, or an artifact the numpy runtime could not read.
    """
    lines = text.splitlines()
    if len(lines) != ctx.n_rows:
        what = _UNIT.get(ctx.input, "rows")
        raise ValueError(f"{len(lines)} predictions for {ctx.n_rows} {what}")
    if art.name not in ctx.classes:
        raise ValueError("the numpy runtime could not read this blob to label them")
    classes = ctx.classes[art.name]
    if classes is not None:
        return classes[np.array([int(v) for v in lines], dtype=np.int64)]
    values = np.array([[float(v) for v in ln.split()] for ln in lines], dtype=np.float64)
    return values.reshape(-1) if values.shape[1] == 1 else values


def _quality(pred: np.ndarray, ctx: DriverContext) -> dict[str, Any]:
    quality: dict[str, Any] = {"agreement": None, "accuracy": None, "r2": None}
    if ctx.task == "classification":
        if ctx.ref is not None:
            quality["agreement"] = agreement(pred, ctx.ref)
        if ctx.y is not None:
            quality["accuracy"] = agreement(pred, ctx.y)
        return quality
    if ctx.ref is not None:
        diff = np.abs(pred.reshape(-1) - ctx.ref.astype(np.float64).reshape(-1))
        quality["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    if ctx.y is not None:
        r2 = r2_score(ctx.y, pred)
        quality["r2"] = r2 if np.isfinite(r2) else None
    return quality


def driver_memory(target: Any, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The memory fields of a result from the driver's JSON lines (exact blob + workspace
    bytes under QEMU, whose RSS is its own; VmHWM/VmRSS elsewhere)."""
    first = runs[0]
    if target.emulated:
        return {
            "memory_method": C_MEMORY_EXACT,
            "peak_rss_bytes": None,
            "model_rss_bytes": int(first["model_bytes"]) + int(first["workspace_bytes"]),
        }
    return {
        "memory_method": MEMORY_PROC,
        "peak_rss_bytes": max(int(r["peak_rss_bytes"]) for r in runs),
        "model_rss_bytes": first.get("model_rss_bytes"),
    }


def latency_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The result's ``rows`` (one per batch size) from the driver's JSON lines."""
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
    return rows


def driver_outcome(
    target: Any,
    art: Artifact,
    ctx: DriverContext,
    runs: list[dict[str, Any]],
    pred: np.ndarray,
    *,
    facts: dict[str, Any],
    environment: dict[str, Any],
) -> Outcome:
    """The driver's JSON lines (one per batch size) and predictions -> a probe-like result."""
    result = driver_result(target, art, ctx, runs, facts=facts, environment=environment)
    result.update(_quality(pred, ctx))
    return Outcome(status="ok", result=result)


def driver_result(
    target: Any,
    art: Artifact,
    ctx: DriverContext,
    runs: list[dict[str, Any]],
    *,
    facts: dict[str, Any],
    environment: dict[str, Any],
) -> dict[str, Any]:
    """A probe-like result from the driver's JSON lines (one per batch size): timings, cold
    start, memory and the program, without the quality figures."""
    first = runs[0]
    cold = first.get("cold_start_ns")
    program = {
        **facts,
        "mode": first.get("mode"),
        "api": first.get("api"),
        "workspace_bytes": first.get("workspace_bytes"),
        "size_plus_model_bytes": facts["size_total"] + art.model_bytes
        if facts.get("size_total") is not None
        else None,
    }
    return {
        "status": "ok",
        "error": None,
        "engine": "c",
        "n_rows": ctx.n_rows,
        "task": ctx.task,
        "load_ms": float(first["load_ns"]) / 1e6,
        "cold_start_ms": float(cold) / 1e6 if cold is not None else None,
        "cold_start_method": "spawn timestamp" if cold is not None else None,
        "startup_ms": None,
        **driver_memory(target, runs),
        "rows": latency_rows(runs),
        "c_program": program,
        "environment": environment,
    }
