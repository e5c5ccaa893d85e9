"""The bench results schema (``results.json``, docs/BENCH.md): its names and versions, and
:func:`validate_results`, which checks a results dict field by field (one-line
:class:`FormatError` naming the field's path) before anything reads it. The writer
(:mod:`edgesparse.bench.results_build`) and the file's reader and writer
(:mod:`edgesparse.bench.results`) share the field names here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from edgesparse.errors import FormatError

__all__ = [
    "ENGINES",
    "PERCENTILES",
    "RECOMMENDER_METRICS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "SUPPORTED_SCHEMA_VERSIONS",
    "TASKS",
    "validate_results",
]

SCHEMA = "edgesparse-bench"
#: The results.json versions this edgesparse can read (docs/BENCH.md describes each).
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
#: The version the harness writes: the newest one this module reads.
SCHEMA_VERSION = SUPPORTED_SCHEMA_VERSIONS[-1]
ENGINES: tuple[str, ...] = ("esb", "onnx", "sklearn", "c", "surprise")
#: What a run measured: linear models on rows (the default when absent) or recommenders on
#: user,item pairs.
TASKS: tuple[str, ...] = ("prediction", "recommendation")
#: Optional row fields of a recommender run (docs/BENCH.md), copied from the probe's result.
RECOMMENDER_METRICS = (
    "rmse",
    "mae",
    "reference_rmse",
    "reference_mae",
    "impossible_pairs",
    "recommend_latency_us",
    "recommend_n",
    "recommend_runs",
)
STATUSES: tuple[str, ...] = ("ok", "failed", "skipped")
PERCENTILES: tuple[str, ...] = ("p50", "p90", "p99", "p999")
_FIX = "regenerate it with `edgesparse bench`"


class _Checker:
    """Type checks that raise one-line :class:`FormatError` naming the field's path."""

    def fail(self, where: str, problem: str) -> None:
        raise FormatError(f"bench results {where}: {problem}; {_FIX}")

    def key(self, d: dict[str, Any], name: str, where: str) -> Any:
        if name not in d:
            self.fail(f"{where}.{name}" if where else name, "missing")
        return d[name]

    def type_name(self, v: Any) -> str:
        return "null" if v is None else type(v).__name__

    def string(self, v: Any, where: str, *, null: bool = False, empty: bool = False) -> None:
        if v is None and null:
            return
        if not isinstance(v, str):
            self.fail(
                where, f"expected a string{' or null' if null else ''}, got {self.type_name(v)}"
            )
        if not empty and not v.strip():
            self.fail(where, "must not be empty")

    def boolean(self, v: Any, where: str, *, null: bool = False) -> None:
        if v is None and null:
            return
        if not isinstance(v, bool):
            self.fail(
                where, f"expected true/false{' or null' if null else ''}, got {self.type_name(v)}"
            )

    def integer(self, v: Any, where: str, *, null: bool = False, minimum: int = 0) -> None:
        if v is None and null:
            return
        # bool is an int in Python but never a count in the schema.
        if not isinstance(v, int) or isinstance(v, bool):
            self.fail(
                where, f"expected an integer{' or null' if null else ''}, got {self.type_name(v)}"
            )
        if v < minimum:
            self.fail(where, f"must be >= {minimum}, got {v}")

    def number(
        self,
        v: Any,
        where: str,
        *,
        null: bool = False,
        minimum: float | None = 0.0,
        maximum: float | None = None,
    ) -> None:
        if v is None and null:
            return
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            self.fail(
                where, f"expected a number{' or null' if null else ''}, got {self.type_name(v)}"
            )
        if not math.isfinite(v):
            self.fail(where, f"must be finite, got {v}")
        if minimum is not None and v < minimum:
            self.fail(where, f"must be >= {minimum:g}, got {v:g}")
        if maximum is not None and v > maximum:
            self.fail(where, f"must be <= {maximum:g}, got {v:g}")

    def choice(self, v: Any, where: str, options: Sequence[str | None]) -> None:
        if v not in options:
            shown = ", ".join("null" if o is None else repr(o) for o in options)
            self.fail(where, f"must be one of {shown}, got {v!r}")

    def obj(self, v: Any, where: str, *, null: bool = False) -> None:
        if v is None and null:
            return
        if not isinstance(v, dict):
            self.fail(
                where, f"expected an object{' or null' if null else ''}, got {self.type_name(v)}"
            )

    def array(self, v: Any, where: str, *, null: bool = False) -> None:
        if v is None and null:
            return
        if not isinstance(v, list):
            self.fail(
                where, f"expected a list{' or null' if null else ''}, got {self.type_name(v)}"
            )


def validate_results(results: dict[str, Any]) -> None:
    """Check ``results`` against the results.json schema (docs/BENCH.md) before anything reads it.

    Checks the schema name and version, every required key and its type (null only where the
    schema allows it), and consistency: each row's target and artifact are declared, its
    ``emulated`` flag and engine match the declaration, percentiles are ordered, failed and
    skipped rows carry a reason, and no (target, artifact, batch size) appears twice.

    Raises:
        FormatError: one line naming the field (``results[3].latency_us.p99``) and the problem.
    """
    c = _Checker()
    _check_header(c, results)
    artifacts = c.key(results, "artifacts", "")
    c.array(artifacts, "artifacts")
    engines = _check_artifacts(c, artifacts)
    targets = c.key(results, "targets", "")
    c.array(targets, "targets")
    emulated = _check_targets(c, targets)
    rows = c.key(results, "results", "")
    c.array(rows, "results")
    seen: dict[tuple[str, str, int], int] = {}
    for i, row in enumerate(rows):
        where = f"results[{i}]"
        c.obj(row, where)
        _check_row(c, row, where, engines=engines, emulated=emulated)
        ident = (row["target"], row["artifact"], row["batch_size"])
        if ident in seen:
            c.fail(
                where,
                f"duplicate of results[{seen[ident]}] (target {ident[0]!r}, "
                f"artifact {ident[1]!r}, batch_size {ident[2]})",
            )
        seen[ident] = i


def _check_header(c: _Checker, results: Any) -> None:
    """The schema name and version first (a wrong file says so, not "missing key"), then the
    run's own fields: created, version, command, settings, reference."""
    if not isinstance(results, dict):
        raise FormatError(
            f"bench results must be a JSON object, got {c.type_name(results)}; {_FIX}"
        )
    schema = results.get("schema")
    if schema != SCHEMA:
        raise FormatError(
            f"not an edgesparse bench results file: schema is {schema!r}, "
            f"expected {SCHEMA!r}; {_FIX}"
        )
    version = results.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        readable = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
        raise FormatError(
            f"bench results schema_version {version!r} is not supported: this edgesparse reads "
            f"schema_version {readable}; upgrade edgesparse or re-run `edgesparse bench`"
        )
    c.string(c.key(results, "created", ""), "created")
    c.string(c.key(results, "edgesparse_version", ""), "edgesparse_version")
    c.string(results.get("command"), "command", null=True)
    settings = c.key(results, "settings", "")
    c.obj(settings, "settings")
    _check_settings(c, settings)
    reference = results.get("reference")
    c.obj(reference, "reference", null=True)
    if reference is not None:
        c.choice(
            reference.get("kind"),
            "reference.kind",
            ("sklearn", "surprise", "labels", "artifact", None),
        )
        c.string(reference.get("source"), "reference.source", null=True)


def _declared_name(
    c: _Checker, d: Any, where: str, *, key: str, what: str, seen: dict[str, Any]
) -> str:
    """The name a declaration (artifact or target) is known by; unique among ``seen``."""
    c.obj(d, where)
    name = c.key(d, key, where)
    c.string(name, f"{where}.{key}")
    if name in seen:
        c.fail(f"{where}.{key}", f"duplicate {what} name {name!r}")
    return name


def _check_artifacts(c: _Checker, artifacts: list[Any]) -> dict[str, str]:
    """Each declared artifact; returns artifact name -> engine."""
    engines: dict[str, str] = {}
    for i, a in enumerate(artifacts):
        where = f"artifacts[{i}]"
        name = _declared_name(c, a, where, key="artifact", what="artifact", seen=engines)
        c.choice(c.key(a, "engine", where), f"{where}.engine", ENGINES)
        c.integer(c.key(a, "model_bytes", where), f"{where}.model_bytes")
        c.string(a.get("path"), f"{where}.path", null=True)
        c.string(a.get("sha256"), f"{where}.sha256", null=True)
        engines[name] = a["engine"]
    return engines


def _check_targets(c: _Checker, targets: list[Any]) -> dict[str, bool]:
    """Each target entry; returns target name -> emulated."""
    emulated: dict[str, bool] = {}
    for i, t in enumerate(targets):
        where = f"targets[{i}]"
        name = _declared_name(c, t, where, key="target", what="target", seen=emulated)
        c.boolean(c.key(t, "emulated", where), f"{where}.emulated")
        _check_status(c, t, where)
        for key in ("kind", "description", "arch", "cpu", "notes"):
            c.string(t.get(key), f"{where}.{key}", null=True)
        c.integer(t.get("cores"), f"{where}.cores", null=True, minimum=1)
        c.integer(t.get("ram_bytes"), f"{where}.ram_bytes", null=True)
        c.boolean(t.get("dotprod"), f"{where}.dotprod", null=True)
        env = t.get("environment")
        c.obj(env, f"{where}.environment", null=True)
        if env is not None:
            _check_environment(c, env, f"{where}.environment")
        emulated[name] = t["emulated"]
    return emulated


def _check_settings(c: _Checker, s: dict[str, Any]) -> None:
    c.integer(s.get("runs"), "settings.runs", null=True, minimum=1)
    c.integer(s.get("warmup"), "settings.warmup", null=True)
    c.integer(s.get("threads"), "settings.threads", null=True, minimum=1)
    c.number(s.get("timeout_s"), "settings.timeout_s", null=True)
    c.string(s.get("data"), "settings.data", null=True)
    c.string(s.get("labels"), "settings.labels", null=True)
    sizes = s.get("batch_sizes")
    c.array(sizes, "settings.batch_sizes", null=True)
    for j, b in enumerate(sizes or []):
        c.integer(b, f"settings.batch_sizes[{j}]", minimum=1)
    c.choice(s.get("task", "prediction"), "settings.task", TASKS)
    for key in ("pairs", "recommend_n", "recommend_runs", "documents", "records"):
        c.integer(s.get(key), f"settings.{key}", null=True, minimum=1)


def _check_environment(c: _Checker, env: dict[str, Any], where: str) -> None:
    for key in ("python", "numpy", "onnxruntime", "machine", "cpu_model", "governor", "qemu"):
        c.string(env.get(key), f"{where}.{key}", null=True, empty=True)
    c.integer(env.get("threads"), f"{where}.threads", null=True, minimum=1)
    flags = env.get("cpu_flags")
    c.array(flags, f"{where}.cpu_flags", null=True)
    for j, f in enumerate(flags or []):
        c.string(f, f"{where}.cpu_flags[{j}]")


def _check_status(c: _Checker, d: dict[str, Any], where: str) -> None:
    status = c.key(d, "status", where)
    c.choice(status, f"{where}.status", STATUSES)
    error = d.get("error")
    if status == "ok":
        if error is not None:
            c.fail(f"{where}.error", f"must be null when status is 'ok', got {error!r}")
    else:
        if error is None:
            c.fail(f"{where}.error", f"a {status} entry must say why (got null)")
        c.string(error, f"{where}.error")


def _check_row(
    c: _Checker,
    row: dict[str, Any],
    where: str,
    *,
    engines: dict[str, str],
    emulated: dict[str, bool],
) -> None:
    _check_row_identity(c, row, where, engines=engines, emulated=emulated)
    _check_status(c, row, where)
    # Metrics may be null only on failed/skipped rows, except those the schema always allows
    # to be null (memory that cannot be measured, agreement without a reference, ...).
    missing_ok = row["status"] != "ok"
    _check_latency(c, row, where, missing_ok=missing_ok)
    _check_metrics(c, row, where, missing_ok=missing_ok)


def _check_row_identity(
    c: _Checker,
    row: dict[str, Any],
    where: str,
    *,
    engines: dict[str, str],
    emulated: dict[str, bool],
) -> None:
    """Target, artifact, engine, batch size and the emulated flag, against the declarations."""
    target = c.key(row, "target", where)
    c.string(target, f"{where}.target")
    if target not in emulated:
        c.fail(f"{where}.target", f"{target!r} is not declared in targets")
    artifact = c.key(row, "artifact", where)
    c.string(artifact, f"{where}.artifact")
    if artifact not in engines:
        c.fail(f"{where}.artifact", f"{artifact!r} is not declared in artifacts")
    engine = c.key(row, "engine", where)
    c.choice(engine, f"{where}.engine", ENGINES)
    if engine != engines[artifact]:
        c.fail(
            f"{where}.engine",
            f"{engine!r} but artifact {artifact!r} is declared with engine {engines[artifact]!r}",
        )
    c.integer(c.key(row, "batch_size", where), f"{where}.batch_size", minimum=1)
    flag = c.key(row, "emulated", where)
    c.boolean(flag, f"{where}.emulated")
    if flag != emulated[target]:
        # A mismatch would print an emulated number without its label (or the reverse).
        c.fail(
            f"{where}.emulated",
            f"is {str(flag).lower()} but target {target!r} is declared with emulated "
            f"{str(emulated[target]).lower()}",
        )


def _check_latency(c: _Checker, row: dict[str, Any], where: str, *, missing_ok: bool) -> None:
    """The latency percentiles: numbers, in non-decreasing order."""
    lat = c.key(row, "latency_us", where)
    c.obj(lat, f"{where}.latency_us", null=missing_ok)
    if lat is not None:
        prev = None
        for p in PERCENTILES:
            v = c.key(lat, p, f"{where}.latency_us")
            c.number(v, f"{where}.latency_us.{p}")
            # A relative slack so float rounding of equal samples cannot trip the check.
            if prev is not None and v < prev[1] - 1e-9 * abs(prev[1]):
                c.fail(
                    f"{where}.latency_us.{p}",
                    f"{v:g} is below {prev[0]} {prev[1]:g} (percentiles must not decrease)",
                )
            prev = (p, v)
        c.number(lat.get("mean"), f"{where}.latency_us.mean", null=True)


def _check_metrics(c: _Checker, row: dict[str, Any], where: str, *, missing_ok: bool) -> None:
    """Every other figure of a row, and the C program's sizes."""
    # Throughput and cold start may be null even on an ok row: the probe reports null rather
    # than a made-up number when the clock gave nothing usable (e.g. no spawn timestamp).
    c.number(
        c.key(row, "throughput_rows_per_s", where), f"{where}.throughput_rows_per_s", null=True
    )
    c.number(c.key(row, "cold_start_ms", where), f"{where}.cold_start_ms", null=True)
    c.string(row.get("cold_start_method"), f"{where}.cold_start_method", null=True)
    c.number(row.get("startup_ms"), f"{where}.startup_ms", null=True)
    c.number(row.get("max_abs_diff"), f"{where}.max_abs_diff", null=True)
    c.integer(c.key(row, "peak_rss_bytes", where), f"{where}.peak_rss_bytes", null=True)
    c.integer(c.key(row, "model_bytes", where), f"{where}.model_bytes", null=missing_ok)
    c.number(c.key(row, "agreement", where), f"{where}.agreement", null=True, maximum=1.0)
    c.integer(row.get("runs"), f"{where}.runs", null=True, minimum=1)
    c.number(row.get("load_ms"), f"{where}.load_ms", null=True)
    # model_rss_bytes can be negative in principle (the allocator returned memory while
    # loading), so only its type is checked.
    if row.get("model_rss_bytes") is not None:
        c.integer(row["model_rss_bytes"], f"{where}.model_rss_bytes", minimum=-(2**62))
    c.string(row.get("memory_method"), f"{where}.memory_method", null=True)
    c.number(row.get("accuracy"), f"{where}.accuracy", null=True, maximum=1.0)
    c.number(row.get("r2"), f"{where}.r2", null=True, minimum=None, maximum=1.0)
    _check_recommender(c, row, where)
    program = row.get("c_program")
    c.obj(program, f"{where}.c_program", null=True)
    for key in ("file_bytes", "text", "data", "bss", "size_total", "size_plus_model_bytes"):
        c.integer((program or {}).get(key), f"{where}.c_program.{key}", null=True)


def _check_recommender(c: _Checker, row: dict[str, Any], where: str) -> None:
    """A recommender row's figures (all optional): errors, recommend latency, counts."""
    for key in ("rmse", "mae", "reference_rmse", "reference_mae"):
        c.number(row.get(key), f"{where}.{key}", null=True)
    for key in ("impossible_pairs", "recommend_n", "recommend_runs"):
        c.integer(row.get(key), f"{where}.{key}", null=True, minimum=0)
    lat = row.get("recommend_latency_us")
    c.obj(lat, f"{where}.recommend_latency_us", null=True)
    for p in (*PERCENTILES, "mean") if lat is not None else ():
        c.number(
            c.key(lat, p, f"{where}.recommend_latency_us"), f"{where}.recommend_latency_us.{p}"
        )
