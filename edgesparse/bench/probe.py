"""The on-target benchmark program: one process, standard library + numpy (+ onnxruntime for
``.onnx``), no subprocesses (a QEMU user-mode guest cannot start programs).

Run as ``python -m edgesparse.bench.probe SPEC.json``. The spec (written by
:mod:`edgesparse.bench.harness`) names the artifact, its engine, the data, the reference
predictions and the measurement settings; the probe writes one JSON result file (path in the
spec) and exits 0, or writes ``{"status": "failed", "error": ...}`` and exits 1. With
``"input": "text"`` in the spec, ``data`` is a JSON file of documents (``{"documents": [...]}``,
written by :mod:`edgesparse.bench.textbench`) and each timed call is ``predict`` on a batch of
raw documents, featurization included; ``"input": "records"`` does the same with the records of
a CSV (:mod:`edgesparse.bench.tabbench`).

What is measured, per batch size: ``warmup`` untimed calls, then ``runs`` calls each timed with
``time.perf_counter_ns``; percentiles use linear interpolation between order statistics
(numpy's default, Hyndman & Fan type 7). Cold start is *process start -> model loaded -> first
prediction returned*: the process start is a timestamp taken by whoever starts the interpreter
and passed in ``EDGESPARSE_PROBE_T0_NS`` (clock named by ``EDGESPARSE_PROBE_T0_CLOCK``:
``monotonic`` when the harness spawns the process on this machine, host or QEMU, which share
the kernel's clock; ``realtime`` on an SSH board, where a ``sh`` wrapper runs
``date +%s%N`` just before ``exec``-ing Python). Memory, method ``"VmHWM/VmRSS"``: the VmRSS
growth across the model load and the process's VmHWM at the end (from ``/proc/self/status``).
Under QEMU those describe the emulator, not the guest, so method
``"guest heap (mallinfo2 + tracemalloc)"`` reports instead the glibc heap growth across the
timed load (``mallinfo2``: bytes in use plus mmapped chunks) plus the small Python objects
(<= 512 bytes, which CPython keeps in its own mmapped arenas that ``mallinfo2`` cannot see)
held by a second, untimed load traced with ``tracemalloc``; ``peak_rss_bytes`` is then null.
"""

from __future__ import annotations

import time

# Taken as early as this module runs (after the interpreter, numpy and edgesparse's own
# imports): "startup_ms" in the result is the process start -> here part of the cold start.
_STARTED_NS = {"monotonic": time.monotonic_ns(), "realtime": time.time_ns()}

import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

PROBE_VERSION = 1
MEMORY_PROC = "VmHWM/VmRSS"
MEMORY_GUEST_HEAP = "guest heap (mallinfo2 + tracemalloc)"
# CPython's small-object allocator serves requests up to this size from its own arenas.
_PYMALLOC_MAX_BYTES = 512

__all__ = [
    "MEMORY_GUEST_HEAP",
    "MEMORY_PROC",
    "agreement",
    "cold_start_since",
    "environment",
    "guest_heap_memory",
    "main",
    "percentiles",
    "proc_memory",
    "process_age_ns",
    "run_probe",
    "started_ns",
]


def started_ns(clock: str) -> int:
    """When this module started running, on ``clock`` (``monotonic`` or ``realtime``).

    Raises:
        ValueError: an unknown clock name.
    """
    if clock not in _STARTED_NS:
        raise ValueError(f"unknown clock {clock!r} (monotonic or realtime)")
    return _STARTED_NS[clock]


# ---------------------------------------------------------------------------------------------
# Pure helpers (tested on their own)
# ---------------------------------------------------------------------------------------------
def percentiles(samples_ns: Any) -> dict[str, float]:
    """p50/p90/p99/p999 and the mean of per-call times, in microseconds.

    Linear interpolation between the sorted samples at rank ``q * (n - 1)`` (numpy's default
    ``method="linear"``), written out so the same arithmetic runs on every target.
    """
    x = np.sort(np.asarray(samples_ns, dtype=np.float64))
    if x.size == 0:
        raise ValueError("no samples")
    out: dict[str, float] = {}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)):
        rank = q * (x.size - 1)
        lo = int(np.floor(rank))
        hi = min(lo + 1, x.size - 1)
        value = x[lo] + (rank - lo) * (x[hi] - x[lo])
        out[name] = float(value) / 1000.0
    out["mean"] = float(x.mean()) / 1000.0
    return out


def agreement(pred: Any, ref: Any) -> float:
    """Fraction of rows whose predicted label equals the reference label."""
    a, b = np.asarray(pred), np.asarray(ref)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{a.shape[0]} predictions but {b.shape[0]} reference labels")
    if a.dtype.kind in "USO" or b.dtype.kind in "USO":
        # String class labels: compare their text, whatever the array dtype.
        a, b = a.astype(str), b.astype(str)
    return float(np.mean(a.reshape(a.shape[0], -1) == b.reshape(b.shape[0], -1)))


def r2_score(y: Any, pred: Any) -> float:
    """scikit-learn's ``r2_score``: per output, then the plain mean over outputs."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64).reshape(p.shape)
    ss_res = np.sum((t - p) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(1.0 - ss_res / ss_tot))


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes ({} where /proc is not readable)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return {}
    return out


def mallinfo2_in_use() -> int | None:
    """Bytes the C heap has handed out (glibc ``mallinfo2``: uordblks + hblkhd), or None."""
    import ctypes

    class _MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None  # not glibc, or glibc < 2.33
    fn.restype = _MallInfo2
    info = fn()
    return int(info.uordblks + info.hblkhd)


def _pymalloc_bytes(snapshot: Any) -> int:
    import tracemalloc

    small = snapshot.filter_traces([tracemalloc.DomainFilter(inclusive=True, domain=0)])
    return sum(t.size for t in small.traces if t.size <= _PYMALLOC_MAX_BYTES)


def process_age_ns() -> int | None:
    """Time since this process started according to the kernel (``/proc/self/stat`` start
    time against ``/proc/uptime``: clock-tick resolution, usually 10 ms), or None."""
    stat, uptime = _read_text("/proc/self/stat"), _read_text("/proc/uptime")
    if not stat or not uptime:
        return None
    try:
        # Fields after the ")" that closes the command name start at field 3 (state);
        # starttime is field 22.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        up_s = float(uptime.split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None
    return int((up_s - start_ticks / ticks) * 1e9)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _dist_version(name: str) -> str | None:
    # Read from the installed metadata: importing onnxruntime just for its version would add
    # seconds under emulation and megabytes to the numbers of a .esb run.
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment(*, threads: int, emulated: bool = False) -> dict[str, Any]:
    """What this process runs on: versions, machine, CPU model and flags, governor, RAM
    (``mem_total_bytes``; None under emulation, where /proc/meminfo is the host's)."""
    cpu_model = None
    flags: list[str] | None = None
    info = _read_text("/proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    # x86 says "model name"/"flags"; ARM kernels say "Features" and name the core by its
    # implementer/part numbers ("model name" is often absent, "Model" is the board).
    cpu_model = fields.get("model name") or fields.get("Model") or fields.get("Processor")
    if cpu_model is None and "CPU part" in fields:
        cpu_model = f"CPU implementer {fields.get('CPU implementer')} part {fields['CPU part']}"
    raw_flags = fields.get("flags") or fields.get("Features")
    if raw_flags:
        flags = raw_flags.split()
    governor = _read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    mem_total = None
    for line in ("" if emulated else _read_text("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:") and line.split()[1].isdigit():
            mem_total = int(line.split()[1]) * 1024  # reported in kB
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": _dist_version("onnxruntime"),
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "cpu_flags": flags,
        "governor": governor.strip() if governor else None,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "mem_total_bytes": mem_total,
    }


# ---------------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------------
def load_artifact(engine: str, path: str, threads: int) -> Any:
    """Load an artifact for ``engine`` (``esb``, ``onnx``, ``sklearn`` or ``surprise``: the
    algorithm of a Surprise pickle, host only); the runtime and the
    loader are imported here, so that the load time includes them."""
    if engine == "esb":
        from edgesparse.runtime import load

        return load(path)
    if engine == "onnx":
        from edgesparse.runtime import load

        return load(path, threads=threads)
    if engine == "sklearn":
        from edgesparse.loader import load_model

        return load_model(path)
    if engine == "surprise":
        from edgesparse.frontends.surprise import unwrap
        from edgesparse.loader import load_model

        return unwrap(load_model(path))  # a surprise.dump file holds the algorithm in a dict
    raise ValueError(f"unknown engine {engine!r} (esb, onnx, sklearn or surprise)")


def prepare_input(engine: str, X: Any) -> Any:
    """The input rows as ``engine`` takes them (scipy CSR for scikit-learn)."""
    if engine == "sklearn":
        from edgesparse.data import for_sklearn

        return for_sklearn(X)  # scikit-learn wants scipy CSR, not the numpy-only stand-in
    return X


def _row_slice(X: Any, start: int, stop: int) -> Any:
    if hasattr(X, "indptr") and not hasattr(X, "__getitem__"):
        from edgesparse.data import CSRArrays

        a, b = int(X.indptr[start]), int(X.indptr[stop])
        return CSRArrays(
            data=X.data[a:b],
            indices=X.indices[a:b],
            indptr=X.indptr[start : stop + 1] - X.indptr[start],
            shape=(stop - start, X.shape[1]),
        )
    return X[start:stop]


def _batches(X: Any, batch_size: int, count: int) -> list[Any]:
    """Up to ``count`` distinct consecutive batches of ``batch_size`` rows, built before timing
    (rows wrap around; data smaller than one batch is tiled)."""
    n = int(X.shape[0])
    if batch_size > n:
        if hasattr(X, "indptr"):
            raise ValueError(f"batch size {batch_size} exceeds the {n} rows of sparse data")
        if not isinstance(X, np.ndarray):  # records, or a DataFrame of them
            from edgesparse.bench.tabbench import tile_rows

            return [tile_rows(X, batch_size)]
        reps = -(-batch_size // n)
        return [np.concatenate([X] * reps)[:batch_size]]
    starts = list(range(0, n - batch_size + 1, batch_size))[: max(count, 1)]
    return [_row_slice(X, s, s + batch_size) for s in starts]


# ---------------------------------------------------------------------------------------------
# The measurement
# ---------------------------------------------------------------------------------------------
def run_probe(spec: dict[str, Any], *, t0_ns: int | None, t0_clock: str) -> dict[str, Any]:
    """Measure one artifact as ``spec`` says; returns the result dict written as JSON.

    ``t0_ns`` is the process-start timestamp on clock ``t0_clock`` (``"monotonic"`` or
    ``"realtime"``), or None when nobody took one (cold start is then null).
    """
    from edgesparse.data import load_dataset

    engine = spec["engine"]
    threads = int(spec.get("threads", 1))
    runs, warmup = int(spec["runs"]), int(spec["warmup"])
    guest_heap = spec.get("memory") == "guest-heap"
    if t0_clock not in _STARTED_NS:
        raise ValueError(f"unknown clock {t0_clock!r} (monotonic or realtime)")
    clock = time.time_ns if t0_clock == "realtime" else time.monotonic_ns

    if spec.get("input") == "text":
        # Documents (JSON, written by the harness): each timed call featurizes its batch.
        docs = json.loads(Path(spec["data"]).read_text(encoding="utf-8"))["documents"]
        X = np.array(docs, dtype=object)
    elif spec.get("input") == "records":
        # Records (JSON, written by the harness): the runtime types and featurizes the text
        # cells in each timed call; scikit-learn takes them typed, as pandas.read_csv would.
        from edgesparse.bench.tabbench import read_records_json, sklearn_input

        X = read_records_json(spec["data"])
        X = sklearn_input(X) if engine == "sklearn" else X
    else:
        X = prepare_input(engine, load_dataset(spec["data"]).X)
    ref = np.load(spec["reference"], allow_pickle=False) if spec.get("reference") else None
    labels = np.load(spec["labels"], allow_pickle=False) if spec.get("labels") else None

    # -- load (timed, plus the memory it adds) --------------------------------------------------
    loaded = timed_load(engine, spec["artifact"], threads, guest_heap=guest_heap)
    model, load_ns = loaded.model, loaded.load_ns
    cold_start_ms, cold_method = _cold_start(model, X, clock, t0_ns, guest_heap)

    # -- predictions on all of X: agreement and accuracy ---------------------------------------
    pred = np.asarray(model.predict(X))
    task = spec.get("task") or ("classification" if hasattr(model, "classes_") else "regression")
    quality = _quality(task, pred, ref, labels)

    rows = _latency_rows(model, X, spec["batch_sizes"], runs, warmup)

    memory = loaded.memory(spec, threads)
    return {
        "probe_version": PROBE_VERSION,
        "status": "ok",
        "error": None,
        "engine": engine,
        "n_rows": int(X.shape[0]),
        "task": task,
        "load_ms": load_ns / 1e6,
        "cold_start_ms": cold_start_ms,
        "cold_start_method": cold_method,
        "startup_ms": (started_ns(t0_clock) - t0_ns) / 1e6
        if cold_method == "spawn timestamp" and t0_ns is not None
        else None,
        **quality,
        **memory,
        "rows": rows,
        "environment": environment(threads=threads, emulated=guest_heap),
    }


def _cold_start(
    model: Any, X: Any, clock: Callable[[], int], t0_ns: int | None, guest_heap: bool
) -> tuple[float | None, str | None]:
    """Predict the first row; cold start (process start to that answer) in ms and its method.

    (None, None) when neither the launcher's timestamp nor /proc gives a usable figure.
    """
    model.predict(_row_slice(X, 0, 1))
    return cold_start_since(clock(), t0_ns, guest_heap)


def cold_start_since(
    first_done: int, t0_ns: int | None, guest_heap: bool
) -> tuple[float | None, str | None]:
    """Cold start in ms from the launcher's timestamp ``t0_ns`` (same clock as
    ``first_done``, the time the first prediction returned) and its method; without a usable
    timestamp, the kernel's start time of this process (not under QEMU). (None, None) when
    neither gives a figure."""
    cold_start_ms, cold_method = None, None
    if t0_ns is not None:
        elapsed = first_done - t0_ns
        # A clock mismatch (or a wrapper whose `date` lacks %N) gives nonsense: drop it.
        if 0 < elapsed < 3_600 * 10**9:
            cold_start_ms, cold_method = elapsed / 1e6, "spawn timestamp"
    if cold_start_ms is None and not guest_heap:
        # No usable timestamp from the launcher: the kernel's own start time of this process
        # (not under QEMU, whose /proc/self/stat is synthesized).
        age = process_age_ns()
        if age is not None and age > 0:
            cold_start_ms, cold_method = age / 1e6, "/proc start time (10 ms resolution)"
    return cold_start_ms, cold_method


def _quality(task: str, pred: Any, ref: Any, labels: Any) -> dict[str, Any]:
    """Agreement with the reference and accuracy (or max diff and R^2) on all rows."""
    quality: dict[str, Any] = {"agreement": None, "accuracy": None, "r2": None}
    if task == "classification":
        if ref is not None:
            quality["agreement"] = agreement(pred, ref)
        if labels is not None:
            quality["accuracy"] = agreement(pred, labels)
    else:
        if ref is not None:
            diff = np.abs(pred.astype(np.float64).reshape(-1) - ref.astype(np.float64).reshape(-1))
            quality["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
        if labels is not None:
            r2 = r2_score(labels, pred)
            quality["r2"] = r2 if np.isfinite(r2) else None  # constant targets: undefined
    return quality


def _latency_rows(
    model: Any, X: Any, batch_sizes: Any, runs: int, warmup: int
) -> list[dict[str, Any]]:
    """Latency percentiles and throughput per batch size (warm-up calls untimed)."""
    rows: list[dict[str, Any]] = []
    timer = time.perf_counter_ns
    for batch_size in batch_sizes:
        batches = _batches(X, int(batch_size), runs + warmup)
        nb = len(batches)
        predict = model.predict
        for i in range(warmup):
            predict(batches[i % nb])
        samples = [0] * runs
        for i in range(runs):
            b = batches[i % nb]
            t = timer()
            predict(b)
            samples[i] = timer() - t
        lat = percentiles(samples)
        total_s = sum(samples) / 1e9
        rows.append(
            {
                "batch_size": int(batch_size),
                "latency_us": lat,
                "throughput_rows_per_s": (batch_size * runs / total_s) if total_s > 0 else None,
                "runs": runs,
            }
        )
    return rows


@dataclasses.dataclass(frozen=True)
class TimedLoad:
    """An artifact loaded under the clock, with the process state around the load."""

    model: Any
    load_ns: int
    guest_heap: bool
    before: dict[str, int]
    after: dict[str, int]
    heap_before: int | None
    heap_after: int | None

    def memory(self, spec: dict[str, Any], threads: int) -> dict[str, Any]:
        """The result's memory fields, measured now (after the timed calls): the glibc heap
        under QEMU, else /proc/self/status."""
        if self.guest_heap:
            return guest_heap_memory(spec, threads, self.heap_before, self.heap_after)
        return proc_memory(self.before, self.after, proc_status())


def timed_load(engine: str, artifact: str, threads: int, *, guest_heap: bool) -> TimedLoad:
    """Load ``artifact`` for ``engine``, timing the load and noting the memory around it."""
    before = proc_status()
    heap_before = mallinfo2_in_use() if guest_heap else None
    t_load = time.perf_counter_ns()
    model = load_artifact(engine, artifact, threads)
    load_ns = time.perf_counter_ns() - t_load
    heap_after = mallinfo2_in_use() if guest_heap else None
    after = proc_status()
    return TimedLoad(model, load_ns, guest_heap, before, after, heap_before, heap_after)


def proc_memory(
    before: dict[str, int], after: dict[str, int], end: dict[str, int]
) -> dict[str, Any]:
    """Peak RSS and what loading the model added, from /proc/self/status."""
    rss = after.get("VmRSS", 0) - before.get("VmRSS", 0) if before and after else None
    return {
        "memory_method": MEMORY_PROC,
        "peak_rss_bytes": end.get("VmHWM"),
        "model_rss_bytes": rss,
    }


def guest_heap_memory(
    spec: dict[str, Any], threads: int, heap_before: int | None, heap_after: int | None
) -> dict[str, Any]:
    """The model memory under QEMU: the glibc heap growth across the timed load plus the small
    Python objects a second, untimed load of the artifact holds (``tracemalloc``)."""
    import tracemalloc

    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    second = load_artifact(spec["engine"], spec["artifact"], threads)
    snap1 = tracemalloc.take_snapshot()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del second
    pymalloc = max(_pymalloc_bytes(snap1) - _pymalloc_bytes(snap0), 0)
    malloc = None if heap_before is None or heap_after is None else heap_after - heap_before
    return {
        "memory_method": MEMORY_GUEST_HEAP,
        "peak_rss_bytes": None,
        "model_rss_bytes": None if malloc is None else malloc + pymalloc,
        "memory_detail": {
            "malloc_bytes": malloc,
            "pymalloc_bytes": pymalloc,
            "tracemalloc_bytes": traced,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m edgesparse.bench.probe SPEC.json``; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m edgesparse.bench.probe SPEC.json\n")
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    result_path = spec["result"]
    if spec.get("deadline_s"):
        import signal

        # Backstop for boards: if the harness's ssh connection dies, nobody could kill us;
        # SIGALRM's default action ends the process even inside a hung C call.
        signal.alarm(int(spec["deadline_s"]) + 1)
    t0_raw = os.environ.get("EDGESPARSE_PROBE_T0_NS", "")
    t0 = int(t0_raw) if t0_raw.isdigit() else None
    t0_clock = os.environ.get("EDGESPARSE_PROBE_T0_CLOCK", "monotonic")
    try:
        if spec.get("task") == "recommendation":
            from edgesparse.bench.probe_knn import run_knn_probe

            result = run_knn_probe(spec, t0_ns=t0, t0_clock=t0_clock)
        else:
            result = run_probe(spec, t0_ns=t0, t0_clock=t0_clock)
        code = 0
    except MemoryError as exc:
        result = {"status": "failed", "error": f"out of memory (MemoryError: {exc})"}
        code = 1
    except Exception as exc:  # any failure becomes a row with its reason, not a traceback
        message = " ".join(str(exc).split()) or type(exc).__name__
        result = {"status": "failed", "error": f"{type(exc).__name__}: {message}"}
        code = 1
    # Written last (atomic_write_bytes imports tempfile -> hashlib: measured memory stays clean).
    from edgesparse.fileio import atomic_write_bytes

    atomic_write_bytes(result_path, json.dumps(result, indent=1).encode("utf-8"))
    return code


if __name__ == "__main__":
    sys.exit(main())
