"""Render bench results (the ``results.json`` schema in docs/BENCH.md) as Markdown, HTML and PNG
plots.

Pure: data in, text/bytes out (:func:`write_report` and :func:`read_results` are the only file
I/O, and nothing here starts a process). The renderer enforces the honesty rules of the bench
report: every emulated number carries an "(emulated)" label, comparisons are ratios within one
target and batch size, failed and skipped rows are listed with their reason, and a "What these
numbers mean" section explains emulated timings and the int8 ONNX kernel paths per target.

One document builder (:func:`_build`) writes both Markdown and HTML through a small "dialect"
object, so the two reports always say the same thing. matplotlib is imported inside
:func:`render_plots` only, so importing this module stays light.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgesparse.errors import FormatError, ModelFileError
from edgesparse.fileio import atomic_write_bytes, read_bytes

SCHEMA = "edgesparse-bench"
#: The results.json versions this edgesparse can read (docs/BENCH.md describes each).
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
ENGINES: tuple[str, ...] = ("esb", "onnx", "sklearn", "c")
STATUSES: tuple[str, ...] = ("ok", "failed", "skipped")
PERCENTILES: tuple[str, ...] = ("p50", "p90", "p99", "p999")
#: PNG files :func:`render_plots` writes, by key.
PLOT_FILES: dict[str, str] = {
    "latency": "latency.png",
    "size": "size.png",
    "memory": "memory.png",
}
EMULATED = "(emulated)"

_FIX = "regenerate it with `edgesparse bench`"


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


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
        c.choice(reference.get("kind"), "reference.kind", ("sklearn", "labels", "artifact", None))
        c.string(reference.get("source"), "reference.source", null=True)

    artifacts = c.key(results, "artifacts", "")
    c.array(artifacts, "artifacts")
    engines: dict[str, str] = {}
    for i, a in enumerate(artifacts):
        where = f"artifacts[{i}]"
        c.obj(a, where)
        name = c.key(a, "artifact", where)
        c.string(name, f"{where}.artifact")
        if name in engines:
            c.fail(f"{where}.artifact", f"duplicate artifact name {name!r}")
        c.choice(c.key(a, "engine", where), f"{where}.engine", ENGINES)
        c.integer(c.key(a, "model_bytes", where), f"{where}.model_bytes")
        c.string(a.get("path"), f"{where}.path", null=True)
        c.string(a.get("sha256"), f"{where}.sha256", null=True)
        engines[name] = a["engine"]

    targets = c.key(results, "targets", "")
    c.array(targets, "targets")
    emulated: dict[str, bool] = {}
    for i, t in enumerate(targets):
        where = f"targets[{i}]"
        c.obj(t, where)
        name = c.key(t, "target", where)
        c.string(name, f"{where}.target")
        if name in emulated:
            c.fail(f"{where}.target", f"duplicate target name {name!r}")
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
    _check_status(c, row, where)
    # Metrics may be null only on failed/skipped rows, except those the schema always allows
    # to be null (memory that cannot be measured, agreement without a reference, ...).
    missing_ok = row["status"] != "ok"

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
    program = row.get("c_program")
    c.obj(program, f"{where}.c_program", null=True)
    for key in ("file_bytes", "text", "data", "bss", "size_total", "size_plus_model_bytes"):
        c.integer((program or {}).get(key), f"{where}.c_program.{key}", null=True)


def read_results(path: str | Path) -> dict[str, Any]:
    """Read and validate a results.json file written by ``edgesparse bench``.

    Raises:
        ModelFileError: the file is missing or unreadable.
        FormatError: not JSON, not a bench results file, an unknown schema version, or a field
            that breaks the schema (the message names the file and the field).
    """
    p = Path(path)
    raw = read_bytes(p, what="results file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise FormatError(
            f"{p}: not UTF-8 text; point at the results.json `edgesparse bench` wrote"
        ) from None
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"{p}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"point at the results.json `edgesparse bench` wrote"
        ) from None
    try:
        validate_results(data)
    except FormatError as exc:
        raise FormatError(f"{p}: {exc}") from None
    return data


# --------------------------------------------------------------------------------------------
# Derived figures (shared with the CLI's summary table)
# --------------------------------------------------------------------------------------------


def rows_per_s_at_p50(row: dict[str, Any]) -> float | None:
    """Rows per second of a typical call: batch size / p50 latency (None without a p50).

    It agrees with the p50 column, unlike ``throughput_rows_per_s`` (rows over all the timed
    time, batch size / mean latency), which a few slow calls on a loaded machine pull down.
    """
    p50 = (row.get("latency_us") or {}).get("p50")
    return row["batch_size"] * 1e6 / p50 if p50 else None


def reference_label(results: dict[str, Any]) -> str | None:
    """What the ``agreement`` figures compare with, in a few words for a column header:
    ``"sklearn"``, ``"labels"``, ``"<artifact> on host"`` (the first artifact's host
    predictions: a cross-target check), or None when the results name no reference."""
    ref = results.get("reference") or {}
    kind, source = ref.get("kind"), ref.get("source") or ""
    if kind == "artifact":
        return source.split(" on the host")[0] + " on host" if source else "first artifact"
    return kind


def reference_sentence(results: dict[str, Any]) -> str:
    """One plain-text sentence saying what ``agreement`` (and ``accuracy``/R²) compare with."""
    ref = results.get("reference") or {}
    kind, source = ref.get("kind"), ref.get("source")
    labels = (results.get("settings") or {}).get("labels")
    if kind == "sklearn":
        text = (
            f"agreement is the share of predicted labels equal to scikit-learn's ({source}) "
            "on the same rows (regressors: the largest absolute difference from it)"
        )
    elif kind == "labels":
        text = (
            "agreement is against the true labels"
            + (f" ({labels})" if labels else "")
            + ", so for a classifier it is the accuracy: no scikit-learn model was given"
        )
    elif kind == "artifact":
        text = (
            f"agreement is against {source}, a cross-target consistency check: no "
            "scikit-learn model and no labels were given"
        )
    else:
        text = "there is no reference for agreement in this run"
    if labels and kind != "labels":
        text += f"; accuracy (R² for regressors) is against the labels ({labels})"
    return text[0].upper() + text[1:] + "."


# --------------------------------------------------------------------------------------------
# Number formatting (shared by Markdown and HTML)
# --------------------------------------------------------------------------------------------

_DASH = "-"


def _fmt_us(v: float | None) -> str:
    if v is None:
        return _DASH
    if v < 10:
        return f"{v:.2f}"
    if v < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def _fmt_ratio(v: float | None) -> str:
    return _DASH if v is None else f"{v:.2f}x"


def _fmt_rate(v: float | None) -> str:
    if v is None:
        return _DASH
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _fmt_ms(v: float | None) -> str:
    return _DASH if v is None else f"{v:,.1f}"


def _fmt_exact_bytes(v: int | None) -> str:
    return _DASH if v is None else f"{v:,} B"


def _fmt_mem(v: int | None) -> str:
    if v is None:
        return _DASH
    sign = "-" if v < 0 else ""
    a = abs(v)
    if a < 1024:
        return f"{sign}{a} B"
    if a < 1024 * 1024:
        return f"{sign}{a / 1024:.1f} KiB"
    if a < 1024**3:
        return f"{sign}{a / 1024**2:.1f} MiB"
    return f"{sign}{a / 1024**3:.2f} GiB"


def _fmt_pct(v: float | None) -> str:
    return _DASH if v is None else f"{v:.2%}"


# --------------------------------------------------------------------------------------------
# Dialects: the one place that knows Markdown or HTML syntax
# --------------------------------------------------------------------------------------------

#: A list item: text, or text with nested sub-items (already escaped for the dialect).
_Item = str | tuple[str, Sequence[str]]

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&#~])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


class _Markdown:
    """GitHub-flavoured Markdown. ``esc`` makes data text literal (no markup, no raw HTML)."""

    def esc(self, s: object) -> str:
        text = " ".join(str(s).split())  # newlines would break tables and list items
        return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)

    def code(self, s: object) -> str:
        text = " ".join(str(s).split())
        fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
        # Inside a table a raw | ends the cell even in a code span; GFM accepts \| there.
        text = text.replace("|", "\\|")
        # CommonMark strips one space on each side; needed only next to a backtick.
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        return f"{fence}{pad}{text}{pad}{fence}"

    def strong(self, s: str) -> str:
        return f"**{s}**"

    def heading(self, level: int, s: str) -> str:
        return f"{'#' * level} {s}"

    def para(self, s: str) -> str:
        return s

    def items(self, items: Sequence[_Item]) -> str:
        lines = []
        for item in items:
            text, sub = (item, ()) if isinstance(item, str) else item
            lines.append(f"- {text}")
            lines.extend(f"  - {s}" for s in sub)
        return "\n".join(lines)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
        rule = ["---:" if j in right else "---" for j in range(len(headers))]
        lines = [headers, rule, *rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)

    def image(self, src: str, alt: str) -> str:
        return f"![{self.esc(alt)}]({src.replace(' ', '%20').replace(')', '%29')})"

    def document(self, title: str, blocks: Sequence[str]) -> str:
        return "\n\n".join(blocks) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto;
       max-width: 80em; padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 0.92em; }
th, td { border: 1px solid #c8c8c8; padding: 0.25em 0.55em; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 0.2em; border-radius: 3px; }
img { max-width: 100%; border: 1px solid #e0e0e0; }
.emulated { color: #8a4b00; font-weight: 600; }
"""


class _Html:
    """A self-contained HTML page. ``esc`` escapes every character HTML gives meaning to."""

    def esc(self, s: object) -> str:
        return html.escape(str(s), quote=True)

    def code(self, s: object) -> str:
        return f"<code>{self.esc(s)}</code>"

    def strong(self, s: str) -> str:
        return f"<strong>{s}</strong>"

    def heading(self, level: int, s: str) -> str:
        return f"<h{level}>{self._mark(s)}</h{level}>"

    def _mark(self, s: str) -> str:
        # Colour the emulated label where it names a target or a column (safe on escaped
        # text: the label has no character HTML escapes).
        return s.replace(EMULATED, f'<span class="emulated">{EMULATED}</span>')

    def para(self, s: str) -> str:
        return f"<p>{s}</p>"

    def items(self, items: Sequence[_Item]) -> str:
        lines = []
        for item in items:
            text, sub = (item, ()) if isinstance(item, str) else item
            nested = "".join(f"<li>{s}</li>" for s in sub)
            lines.append(f"<li>{text}<ul>{nested}</ul></li>" if sub else f"<li>{text}</li>")
        return "<ul>\n" + "\n".join(lines) + "\n</ul>"

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
        head = "".join(f"<th>{self._mark(h)}</th>" for h in headers)
        body = "\n".join(
            "<tr>"
            + "".join(
                f'<td class="num">{cell}</td>' if j in right else f"<td>{cell}</td>"
                for j, cell in enumerate(cells)
            )
            + "</tr>"
            for cells in rows
        )
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"

    def image(self, src: str, alt: str) -> str:
        return f'<figure><img src="{self.esc(src)}" alt="{self.esc(alt)}"></figure>'

    def document(self, title: str, blocks: Sequence[str]) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{self.esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(blocks)
            + "\n</body>\n</html>\n"
        )


_Dialect = _Markdown | _Html


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------


def _target_label(t: dict[str, Any]) -> str:
    return f"{t['target']} {EMULATED}" if t["emulated"] else t["target"]


def _ok_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in results["results"] if r["status"] == "ok"]


def _within_target_ratios(
    results: dict[str, Any],
) -> dict[int, tuple[float | None, float | None]]:
    """Row index -> (p50 / fastest p50, sklearn p50 / p50), both on the row's own target and
    batch size only: never across targets."""
    fastest: dict[tuple[str, int], float] = {}
    sklearn: dict[tuple[str, int], float] = {}
    for r in _ok_rows(results):
        key = (r["target"], r["batch_size"])
        p50 = r["latency_us"]["p50"]
        fastest[key] = min(fastest.get(key, math.inf), p50)
        if r["engine"] == "sklearn":
            sklearn[key] = min(sklearn.get(key, math.inf), p50)
    out: dict[int, tuple[float | None, float | None]] = {}
    for i, r in enumerate(results["results"]):
        if r["status"] != "ok":
            out[i] = (None, None)
            continue
        key = (r["target"], r["batch_size"])
        p50 = r["latency_us"]["p50"]
        vs_fastest = p50 / fastest[key] if fastest[key] > 0 else None
        base = sklearn.get(key)
        vs_sklearn = base / p50 if base is not None and p50 > 0 else None
        out[i] = (vs_fastest, vs_sklearn)
    return out


def _dotprod(t: dict[str, Any]) -> tuple[bool | None, str]:
    """Whether the target's CPU has the Armv8.2 dot-product extension, and where that came from.
    The profile's ``dotprod`` wins; otherwise ``asimddp`` in an aarch64 CPU's flags. An x86
    CPU has no Arm extension to report: None."""
    if _arch(t) and not _is_arm(t):
        return None, ""
    if t.get("dotprod") is not None:
        return t["dotprod"], "device profile"
    env = t.get("environment") or {}
    flags = env.get("cpu_flags")
    if _is_arm(t) and flags is not None:
        return "asimddp" in flags, "CPU flags"
    return None, ""


def _arch(t: dict[str, Any]) -> str:
    env = t.get("environment") or {}
    return (t.get("arch") or env.get("machine") or "").lower()


def _is_arm(t: dict[str, Any]) -> bool:
    arch = _arch(t)
    return arch in ("aarch64", "arm64") or arch.startswith("armv8")


def _int8_note(d: _Dialect, t: dict[str, Any], onnx_names: str) -> str:
    label = d.strong(d.esc(_target_label(t)))
    cpu = f" ({d.esc(t['cpu'])})" if t.get("cpu") else ""
    has, source = _dotprod(t)
    dq = "DequantizeLinear→MatMul"
    if has is True:
        return (
            f"{label}{cpu}: has the dot-product extension ({source}). Both int8 ONNX forms use "
            f"{d.code('udot')}: {dq} is the fastest int8 variant and MatMulInteger is fast "
            f"too; int8 ONNX artifacts ({onnx_names}) are expected to be fast here."
        )
    if has is False:
        return (
            f"{label}{cpu}: no dot-product extension ({source}). An int8 graph in {dq} form "
            "runs as plain NEON code about 4x slower than the fp32 MatMul (about 12x slower "
            "than MatMulInteger); MatMulInteger uses NEON widening multiplies. Int8 ONNX "
            f"artifacts ({onnx_names}) in {dq} form are expected to be slow here: prefer "
            "MatMulInteger or fp32 on this CPU, and measure."
        )
    if _is_arm(t) or not _arch(t):
        return (
            f"{label}{cpu}: dot-product support unknown (not in the profile or CPU flags), so "
            f"int8 ONNX artifacts ({onnx_names}) may take either path described above."
        )
    return (
        f"{label}{cpu}: not an Arm CPU; the Arm dot-product note does not apply "
        "(onnxruntime uses its x86 int8 kernels here)."
    )


def _meaning(d: _Dialect, results: dict[str, Any]) -> list[_Item]:
    targets = results["targets"]
    emulated = [t for t in targets if t["emulated"]]
    has_sklearn = any(r["engine"] == "sklearn" for r in _ok_rows(results))
    items: list[_Item] = [
        "Latency is per call (one batch of rows), in microseconds; rows/s at p50 is the "
        "batch size divided by the p50 latency, so it agrees with the p50 column "
        f"(results.json's {d.code('throughput_rows_per_s')} is rows over all the timed time, "
        "batch size / mean latency, which a few slow calls pull down). Compare artifacts "
        "within one target: "
        f"{d.strong('p50 / fastest')} divides each p50 by the fastest p50 on the same target "
        "and batch size"
        + (
            f", and {d.strong('speed-up vs sklearn')} divides the scikit-learn baseline's "
            "p50 by the artifact's p50 on the same target and batch size (higher is faster)"
            if has_sklearn
            else ""
        )
        + ". Absolute numbers from different targets are not a ranking.",
    ]
    if emulated:
        names = ", ".join(d.esc(t["target"]) for t in emulated)
        items.append(
            f"{d.strong('Emulated timings are not device latency.')} The targets marked "
            f"{EMULATED}, here {names}, ran the real aarch64 builds under QEMU user-mode "
            "emulation, and qemu-user has no timing model: an emulated Pi 3 and Pi 4 give "
            "the same times while real boards differ 2-3x, and emulated/host ratios range "
            "from 14x to 950x depending on the kernel. Run to run they are stable, so they "
            "show that an artifact runs and agrees on the target's instruction set, which "
            "kernel path it takes, and how artifacts compare within that one target. Cold "
            "start there includes QEMU's translation of the code."
        )
    methods = sorted(
        {r["cold_start_method"] for r in _ok_rows(results) if r.get("cold_start_method")}
    )
    items.append(
        "Cold start is process start to model loaded to first prediction (one per artifact "
        "and target, repeated on each batch size's row)"
        + ("; measured by " + "; ".join(d.esc(m) for m in methods) + "." if methods else ".")
        + " A dash means it could not be measured, not zero."
    )
    items.append(
        "Memory: peak RSS is the VmHWM of the benchmark process; model RSS is what loading "
        "the model added (the method column says how it was measured). Under QEMU the "
        "process RSS is QEMU's, not the guest's, so emulated targets report no peak RSS and "
        "their model memory is the guest's own figure: heap growth (mallinfo2 + tracemalloc) "
        "for the Python engines, the exact blob + workspace bytes for the C driver."
    )
    if any(a["engine"] == "c" for a in results["artifacts"]):
        items.append(
            f"Engine {d.code('c')} ({d.code('c:model.esb')}) is the C runtime: its driver "
            f"program ({d.code('esb bench')}, statically linked where possible) times each call "
            "in C; a batch is a loop of one-row calls. Its peak RSS is the whole driver "
            "process (program, libc, blob, input rows, timings); under QEMU it reports the "
            "exact bytes of blob + index workspace instead. Program sizes are under "
            f"{d.strong('C programs')}."
        )
    onnx = [a["artifact"] for a in results["artifacts"] if a["engine"] == "onnx"]
    if onnx:
        names = ", ".join(d.code(n) for n in onnx)
        items.append(
            (
                "Int8 ONNX kernels depend on the CPU's Armv8.2 dot-product extension (this "
                "applies to ONNX artifacts with int8 weights; results.json does not record "
                "each graph's form, so check it with onnx tools). Per target:",
                [_int8_note(d, t, names) for t in targets],
            )
        )
    else:
        items.append(
            "No ONNX artifact in this run, so the int8 ONNX kernel paths (which depend on the "
            "CPU's dot-product extension) do not apply."
        )
    items.append(
        "Rows that failed or were skipped are listed with their reason under "
        f"{d.strong('Failed and skipped')}; nothing is dropped."
    )
    return items


def _env_line(d: _Dialect, t: dict[str, Any]) -> str:
    env = t.get("environment") or {}
    parts = []
    for label, value in (
        ("kind", t.get("kind")),
        ("arch", t.get("arch") or env.get("machine")),
        ("CPU", env.get("cpu_model") or t.get("cpu")),
        ("cores", t.get("cores")),
        ("RAM", _fmt_mem(t["ram_bytes"]) if t.get("ram_bytes") is not None else None),
        ("Python", env.get("python")),
        ("numpy", env.get("numpy")),
        ("onnxruntime", env.get("onnxruntime")),
        ("threads", env.get("threads")),
        ("governor", env.get("governor")),
        ("QEMU", env.get("qemu")),
    ):
        if value is not None and value != "":
            parts.append(f"{label} {d.esc(value)}")
    return "; ".join(parts) if parts else "no environment recorded"


def _target_table(
    d: _Dialect,
    results: dict[str, Any],
    t: dict[str, Any],
    ratios: dict[int, tuple[float | None, float | None]],
) -> str | None:
    rows = [(i, r) for i, r in enumerate(results["results"]) if r["target"] == t["target"]]
    if not rows:
        return None
    order = {a["artifact"]: k for k, a in enumerate(results["artifacts"])}
    rows.sort(key=lambda ir: (ir[1]["batch_size"], order[ir[1]["artifact"]]))
    has_sklearn = any(ratios[i][1] is not None for i, _ in rows)
    emu = f" {EMULATED}" if t["emulated"] else ""
    headers = [
        "batch",
        "artifact",
        "engine",
        f"p50 µs{emu}",
        f"p99 µs{emu}",
        f"p50 / fastest{emu}",
    ]
    if has_sklearn:
        headers.append(f"speed-up vs sklearn{emu}")
    ref = reference_label(results)
    headers += [
        f"rows/s at p50{emu}",
        f"cold start ms{emu}",
        "peak RSS",
        "model RSS",
        "memory method",
        "model bytes",
        f"agreement vs {ref}" if ref else "agreement",
        "accuracy / R²",
        "status",
    ]
    body = []
    for i, r in rows:
        ok = r["status"] == "ok"
        lat = r["latency_us"] or {}
        vs_fastest, vs_sklearn = ratios[i]
        score = (
            _fmt_pct(r.get("accuracy"))
            if r.get("accuracy") is not None
            else (f"R² {r['r2']:.4f}" if r.get("r2") is not None else _DASH)
        )
        cells = [
            str(r["batch_size"]),
            d.code(r["artifact"]),
            d.esc(r["engine"]),
            _fmt_us(lat.get("p50")),
            _fmt_us(lat.get("p99")),
            _fmt_ratio(vs_fastest),
        ]
        if has_sklearn:
            cells.append(_fmt_ratio(vs_sklearn))
        cells += [
            _fmt_rate(rows_per_s_at_p50(r)),
            _fmt_ms(r["cold_start_ms"]),
            _fmt_mem(r["peak_rss_bytes"])
            if r["peak_rss_bytes"] is not None
            else ("n/a (emulated)" if t["emulated"] and ok else _DASH),
            _fmt_mem(r.get("model_rss_bytes")),
            d.esc(r.get("memory_method") or _DASH),
            _fmt_exact_bytes(r["model_bytes"]),
            _fmt_pct(r["agreement"])
            if r["agreement"] is not None or r.get("max_abs_diff") is None
            else f"max abs diff {r['max_abs_diff']:.3g}",
            score,
            "ok" if ok else d.strong(d.esc(r["status"])) + ": " + d.esc(r["error"]),
        ]
        body.append(cells)
    n = len(headers)
    right = {0} | set(range(3, n - 3)) - {headers.index("memory method")}
    right |= {n - 3, n - 2}
    return d.table([d.esc(h) for h in headers], body, right)


def _c_programs_table(d: _Dialect, results: dict[str, Any]) -> str | None:
    """One line per target x C artifact that has a ``c_program`` (the first batch's row)."""
    seen: set[tuple[str, str]] = set()
    body = []
    for r in results["results"]:
        p = r.get("c_program")
        if not p or (r["target"], r["artifact"]) in seen:
            continue
        seen.add((r["target"], r["artifact"]))
        body.append(
            [
                d.esc(r["target"]),
                d.code(r["artifact"]),
                d.esc(p.get("compiler") or _DASH),
                d.esc(p.get("linkage") or _DASH),
                _fmt_exact_bytes(p.get("text")),
                _fmt_exact_bytes(p.get("data")),
                _fmt_exact_bytes(p.get("bss")),
                _fmt_exact_bytes(p.get("size_total")),
                _fmt_exact_bytes(p.get("size_plus_model_bytes")),
                _fmt_exact_bytes(p.get("file_bytes")),
                d.esc(p.get("mode") or _DASH),
                _fmt_exact_bytes(p.get("workspace_bytes")),
            ]
        )
    if not body:
        return None
    headers = [
        "target",
        "artifact",
        "compiler",
        "linkage",
        "text",
        "data",
        "bss",
        "text+data+bss",
        "+ model bytes",
        "file bytes",
        "index mode",
        "workspace bytes",
    ]
    return d.table([d.esc(h) for h in headers], body, {4, 5, 6, 7, 8, 9, 11})


def _build(
    d: _Dialect, results: dict[str, Any], images: dict[str, str] | None
) -> tuple[str, list[str]]:
    images = images or {}
    s = results.get("settings") or {}
    targets = results["targets"]
    ratios = _within_target_ratios(results)
    title = "edgesparse bench report"
    out = [d.heading(1, d.esc(title))]

    facts = [
        f"Created {d.esc(results['created'])} by edgesparse {d.esc(results['edgesparse_version'])}."
    ]
    if s.get("runs") is not None:
        warm = f" after {s['warmup']} warm-up runs" if s.get("warmup") is not None else ""
        facts.append(f"{s['runs']} timed runs per measurement{warm}.")
    if s.get("batch_sizes"):
        facts.append("Batch sizes " + ", ".join(str(b) for b in s["batch_sizes"]) + ".")
    if s.get("threads") is not None:
        facts.append(f"onnxruntime threads: {s['threads']}.")
    if s.get("data"):
        facts.append(
            f"Data {d.code(s['data'])}"
            + (f", labels {d.code(s['labels'])}." if s.get("labels") else ".")
        )
    facts.append(d.esc(reference_sentence(results)))
    out.append(d.para(" ".join(facts)))
    if results.get("command"):
        out.append(d.para("Command: " + d.code(results["command"])))
    emulated = [t for t in targets if t["emulated"]]
    if emulated:
        names = ", ".join(d.esc(t["target"]) for t in emulated)
        out.append(
            d.para(
                d.strong(f"Emulated targets: {names}.")
                + f" Every number measured there is labelled {EMULATED}; it is not device "
                "latency (see “What these numbers mean”)."
            )
        )

    out.append(d.heading(2, "What these numbers mean"))
    out.append(d.items(_meaning(d, results)))

    out.append(d.heading(2, "Artifact sizes"))
    out.append(d.para("File size of each artifact; it does not depend on the target."))
    sizes = [a["model_bytes"] for a in results["artifacts"]]
    smallest = min((b for b in sizes if b > 0), default=None)
    out.append(
        d.table(
            ["artifact", "engine", "bytes", "size / smallest", "sha256"],
            [
                [
                    d.code(a["artifact"]),
                    d.esc(a["engine"]),
                    _fmt_exact_bytes(a["model_bytes"]),
                    _fmt_ratio(a["model_bytes"] / smallest if smallest else None),
                    d.code(a["sha256"][:12]) if a.get("sha256") else _DASH,
                ]
                for a in results["artifacts"]
            ],
            {2, 3},
        )
    )
    if "size" in images:
        out.append(d.image(images["size"], "artifact size in bytes"))
    programs = _c_programs_table(d, results)
    if programs is not None:
        out.append(d.heading(2, "C programs"))
        out.append(
            d.para(
                "The C runtime's driver as built for each target: text + data + bss from "
                f"{d.code('size')}, plus the model's bytes (the driver reads the blob from a "
                f"file; a program from {d.code('edgesparse export-c')} embeds it as a const "
                "array)."
            )
        )
        out.append(programs)

    out.append(d.heading(2, "Latency per target"))
    out.append(
        d.para(
            "Each table compares the artifacts on one target; ratios never cross targets. "
            + (
                f"Tables and columns of emulated targets are marked {EMULATED}."
                if emulated
                else "All targets here ran natively."
            )
        )
    )
    if "latency" in images:
        out.append(
            d.image(
                images["latency"],
                "p50 latency per call with p99 whisker, per artifact and target; "
                "hatched bars are emulated",
            )
        )
    for t in targets:
        out.append(d.heading(3, d.esc(_target_label(t))))
        out.append(d.para(_env_line(d, t)))
        if t.get("notes"):
            out.append(d.para(d.esc(t["notes"])))
        if t["status"] != "ok":
            out.append(d.para(d.strong(f"Target {d.esc(t['status'])}:") + " " + d.esc(t["error"])))
        table = _target_table(d, results, t, ratios)
        out.append(table if table is not None else d.para("No measurements for this target."))

    out.append(d.heading(2, "Memory"))
    if "memory" in images:
        out.append(d.image(images["memory"], "peak RSS and model RSS per artifact and target"))
    out.append(
        d.para(
            "Per-row figures are in the target tables above (peak RSS, model RSS and how it "
            "was measured)."
        )
    )

    out.append(d.heading(2, "Environment"))
    if emulated:
        out.append(
            d.para(
                "For emulated targets the CPU model, flags and governor are those of the "
                "device profile (the emulated CPU's synthesized /proc/cpuinfo and sysfs), not "
                "of the machine QEMU ran on."
            )
        )
    env_rows = []
    for t in targets:
        env = t.get("environment") or {}
        has, source = _dotprod(t)
        env_rows.append(
            [
                d.esc(_target_label(t)),
                d.esc(t.get("kind") or _DASH),
                d.esc(t.get("arch") or env.get("machine") or _DASH),
                d.esc(env.get("cpu_model") or t.get("cpu") or _DASH),
                d.esc(t["cores"]) if t.get("cores") is not None else _DASH,
                _fmt_mem(t.get("ram_bytes")),
                d.esc(env.get("python") or _DASH),
                d.esc(env.get("numpy") or _DASH),
                d.esc(env.get("onnxruntime") or _DASH),
                d.esc(env["threads"]) if env.get("threads") is not None else _DASH,
                d.esc(env.get("governor") or _DASH),
                d.esc(env.get("qemu") or _DASH),
                _DASH if has is None else ("yes" if has else "no") + f" ({d.esc(source)})",
                d.esc(t["status"]),
            ]
        )
    out.append(
        d.table(
            [
                "target",
                "kind",
                "arch",
                "CPU",
                "cores",
                "RAM",
                "Python",
                "numpy",
                "onnxruntime",
                "threads",
                "governor",
                "QEMU",
                "dot product",
                "status",
            ],
            env_rows,
            {4, 5, 9},
        )
    )

    out.append(d.heading(2, "Failed and skipped"))
    problems = [
        [
            d.esc(_target_label(t)),
            "(whole target)",
            _DASH,
            _DASH,
            d.esc(t["status"]),
            d.esc(t["error"]),
        ]
        for t in targets
        if t["status"] != "ok"
    ]
    problems += [
        [
            d.esc(_target_label(next(t for t in targets if t["target"] == r["target"]))),
            d.code(r["artifact"]),
            d.esc(r["engine"]),
            str(r["batch_size"]),
            d.esc(r["status"]),
            d.esc(r["error"]),
        ]
        for r in results["results"]
        if r["status"] != "ok"
    ]
    if problems:
        out.append(
            d.table(["target", "artifact", "engine", "batch", "status", "reason"], problems, {3})
        )
    else:
        out.append(d.para("None: every target and every measurement succeeded."))
    return title, out


def render_markdown(results: dict[str, Any], *, images: dict[str, str] | None = None) -> str:
    """The report as GitHub-flavoured Markdown.

    ``images`` maps plot keys (``latency``, ``size``, ``memory``) to relative file names to
    embed; without it the Markdown has tables only. Every string from the data is escaped.
    """
    validate_results(results)
    d = _Markdown()
    title, blocks = _build(d, results, images)
    return d.document(title, blocks)


def render_html(results: dict[str, Any], *, images: dict[str, str]) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts).

    ``images`` maps plot keys (``latency``, ``size``, ``memory``) to PNG file names relative to
    the page. Every string from the data is HTML-escaped.
    """
    validate_results(results)
    d = _Html()
    title, blocks = _build(d, results, images)
    return d.document(title, blocks)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def render_plots(results: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Draw the PNG plots into ``out_dir`` (created if missing), each written atomically.

    ``latency.png``: p50 per call with a p99 whisker, one panel per batch size, bars grouped by
    target (log scale when the spread is large); ``size.png``: bytes per artifact;
    ``memory.png``: peak RSS and model RSS per artifact and target. Emulated targets are
    hatched and their tick labels say "(emulated)". Returns plot key -> written path.
    """
    validate_results(results)
    # Imported here: matplotlib costs ~100 ms and tens of MiB, and only plotting needs it.
    # Figure + the Agg canvas directly (no pyplot): no global backend switch, no GUI.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    _make_dir(out)
    colors = _artifact_colors(results)
    written: dict[str, Path] = {}
    for key, draw in (
        ("latency", _plot_latency),
        ("size", _plot_size),
        ("memory", _plot_memory),
    ):
        fig = Figure(layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig, results, colors)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        written[key] = atomic_write_bytes(out / PLOT_FILES[key], buf.getvalue())
    return written


def _artifact_colors(results: dict[str, Any]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {a["artifact"]: cmap(k % 10) for k, a in enumerate(results["artifacts"])}


def _tick(t: dict[str, Any]) -> str:
    return f"{t['target']}\n{EMULATED}" if t["emulated"] else t["target"]


def _grouped_bars(
    ax: Any,
    results: dict[str, Any],
    colors: dict[str, Any],
    value: Callable[[dict[str, Any]], tuple[float | None, float | None, str]],
    rows: list[dict[str, Any]],
) -> list[float]:
    """Bars grouped by target, one per artifact; returns the plotted values. ``value(row)``
    gives (height, upper whisker or None, text to show when height is None)."""
    from matplotlib.transforms import blended_transform_factory

    targets = results["targets"]
    artifacts = [a["artifact"] for a in results["artifacts"]]
    width = 0.8 / max(len(artifacts), 1)
    by_key = {(r["target"], r["artifact"]): r for r in rows}
    base = blended_transform_factory(ax.transData, ax.transAxes)
    values: list[float] = []
    for k, name in enumerate(artifacts):
        for x, t in enumerate(targets):
            r = by_key.get((t["target"], name))
            if r is None:
                continue
            pos = x - 0.4 + width * (k + 0.5)
            height, upper, missing = value(r)
            if height is None:
                ax.text(
                    pos,
                    0.02,
                    missing,
                    transform=base,
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="0.35",
                )
                continue
            yerr = None if upper is None else [[0.0], [max(upper - height, 0.0)]]
            ax.bar(
                pos,
                height,
                width,
                color=colors[name],
                edgecolor="0.25",
                linewidth=0.6,
                hatch="//" if t["emulated"] else None,
                yerr=yerr,
                capsize=2,
                error_kw={"elinewidth": 0.8},
            )
            values.append(height)
            if upper is not None:
                values.append(upper)
    ax.set_xticks(range(len(targets)), [_tick(t) for t in targets])
    ax.set_xlim(-0.6, len(targets) - 0.4)
    return values


def _legend(
    fig: Any, results: dict[str, Any], colors: dict[str, Any], *, emulated_note: str
) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(
            facecolor=colors[a["artifact"]],
            edgecolor="0.25",
            label=f"{a['artifact']} ({a['engine']})",
        )
        for a in results["artifacts"]
    ]
    if any(t["emulated"] for t in results["targets"]):
        handles.append(
            Patch(
                facecolor="white",
                edgecolor="0.25",
                hatch="//",
                label=f"hatched = emulated (QEMU): {emulated_note}",
            )
        )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 3),
        fontsize=8,
        frameon=False,
    )


def _maybe_log(ax: Any, values: list[float], *, spread: float = 30.0) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > spread:
        ax.set_yscale("log")


def _plot_latency(fig: Any, results: dict[str, Any], colors: dict[str, Any]) -> None:
    batches = sorted({r["batch_size"] for r in results["results"]})
    n_targets = max(len(results["targets"]), 1)
    fig.set_size_inches(max(5.0, 1.1 + 1.6 * n_targets) * max(len(batches), 1) ** 0.8, 4.6)
    if not batches:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no measurements", ha="center", va="center")
        ax.set_axis_off()
        return
    axes = fig.subplots(1, len(batches), squeeze=False)[0]
    for ax, b in zip(axes, batches, strict=True):
        rows = [r for r in results["results"] if r["batch_size"] == b]

        def value(r: dict[str, Any]) -> tuple[float | None, float | None, str]:
            if r["status"] != "ok":
                return None, None, r["status"]
            return r["latency_us"]["p50"], r["latency_us"]["p99"], ""

        values = _grouped_bars(ax, results, colors, value, rows)
        _maybe_log(ax, values)
        ax.set_title(f"batch {b}", fontsize=10)
        ax.set_ylabel("µs per call (p50, whisker p99)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Latency per call: compare artifacts within a target", fontsize=11)
    _legend(fig, results, colors, emulated_note="not device latency")


def _plot_size(fig: Any, results: dict[str, Any], colors: dict[str, Any]) -> None:
    arts = results["artifacts"]
    fig.set_size_inches(7.0, 1.4 + 0.45 * max(len(arts), 1))
    ax = fig.add_subplot()
    if not arts:
        ax.text(0.5, 0.5, "no artifacts", ha="center", va="center")
        ax.set_axis_off()
        return
    sizes = [a["model_bytes"] for a in arts]
    ys = list(range(len(arts)))
    ax.barh(ys, sizes, color=[colors[a["artifact"]] for a in arts], edgecolor="0.25", linewidth=0.6)
    ax.set_yticks(ys, [f"{a['artifact']} ({a['engine']})" for a in arts], fontsize=8)
    ax.invert_yaxis()
    positive = [s for s in sizes if s > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_xscale("log")
    for y, s in zip(ys, sizes, strict=True):
        ax.text(s, y, f" {s:,} B", va="center", fontsize=8)
    ax.set_xlabel("bytes on disk")
    ax.set_xlim(right=max(sizes) * (3.0 if ax.get_xscale() == "log" else 1.25) or 1)
    ax.set_title("Artifact size (same on every target)", fontsize=11)
    ax.grid(axis="x", alpha=0.3)


def _plot_memory(fig: Any, results: dict[str, Any], colors: dict[str, Any]) -> None:
    n_targets = max(len(results["targets"]), 1)
    fig.set_size_inches(max(8.0, 2.0 + 3.2 * n_targets), 4.6)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    # One bar per (target, artifact): the largest figure over its batch sizes.
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results["results"]:
        m = merged.setdefault(
            (r["target"], r["artifact"]),
            {
                "target": r["target"],
                "artifact": r["artifact"],
                "status": r["status"],
                "peak": None,
                "model": None,
            },
        )
        if r["status"] == "ok":
            m["status"] = "ok"
            for key, field in (("peak", "peak_rss_bytes"), ("model", "model_rss_bytes")):
                v = r.get(field)
                if v is not None:
                    m[key] = v if m[key] is None else max(m[key], v)
    rows = list(merged.values())
    for ax, key, title in (
        (axes[0], "peak", "Peak RSS of the benchmark process"),
        (axes[1], "model", "RSS added by loading the model"),
    ):
        biggest = max((abs(m[key]) for m in rows if m[key] is not None), default=0)
        unit, scale = ("MiB", 1024.0**2) if biggest >= 1024**2 else ("KiB", 1024.0)

        def value(
            m: dict[str, Any], key: str = key, scale: float = scale
        ) -> tuple[float | None, float | None, str]:
            if m["status"] != "ok":
                return None, None, m["status"]
            if m[key] is None:
                emulated = next(t for t in results["targets"] if t["target"] == m["target"])
                return None, None, "n/a (emulated)" if emulated["emulated"] else "n/a"
            return m[key] / scale, None, ""

        _grouped_bars(ax, results, colors, value, rows)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(f"{unit} (max over batch sizes)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        "Memory per artifact and target (emulated: the guest's own figure, not QEMU's RSS)"
        if any(t["emulated"] for t in results["targets"])
        else "Memory per artifact and target",
        fontsize=11,
    )
    # Python engines report guest heap growth there, the C driver its exact blob + workspace.
    _legend(fig, results, colors, emulated_note="guest's own figure, no process RSS")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _make_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ModelFileError(f"report folder is a file: {out} (give a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(f"cannot create report folder {out}: {exc.strerror or exc}") from None


def write_report(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Validate ``results`` and write results.json, report.md, report.html and the PNG plots
    into ``out_dir`` (created if missing). Every file is written atomically, so a re-run over
    an existing report replaces each file whole. Returns the written paths."""
    validate_results(results)
    out = Path(out_dir)
    _make_dir(out)
    plots = render_plots(results, out)
    images = {key: path.name for key, path in plots.items()}
    data = json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    written = [
        atomic_write_bytes(out / "results.json", data.encode("utf-8")),
        atomic_write_bytes(
            out / "report.md", render_markdown(results, images=images).encode("utf-8")
        ),
        atomic_write_bytes(
            out / "report.html", render_html(results, images=images).encode("utf-8")
        ),
    ]
    return written + list(plots.values())
