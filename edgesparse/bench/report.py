"""The bench report's content: what the Markdown and HTML reports say about a results dict
(the ``results.json`` schema, owned by :mod:`edgesparse.bench.results_schema`), and
:func:`write_report`, which writes the whole report folder.

The renderer enforces the honesty rules of the bench report: every emulated number carries an
"(emulated)" label, comparisons are ratios within one target and batch size, failed and skipped
rows are listed with their reason, and a "What these numbers mean" section explains emulated
timings and the int8 ONNX kernel paths per target.

One document builder (:func:`_build`) writes both Markdown and HTML through a dialect
(:mod:`edgesparse.bench.markup`), so the two reports always say the same thing. The plots are
drawn by :mod:`edgesparse.bench.plots`, which imports matplotlib only when it draws.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgesparse.bench.explain import (
    dotprod,
    meaning_items,
    ok_rows,
    reference_label,
    reference_sentence,
    rows_per_s_at_p50,
    target_label,
)
from edgesparse.bench.markup import (
    DASH,
    EMULATED,
    Dialect,
    Html,
    Markdown,
    fmt_exact_bytes,
    fmt_mem,
    fmt_ms,
    fmt_pct,
    fmt_rate,
    fmt_ratio,
    fmt_us,
)
from edgesparse.bench.plots import render_plots
from edgesparse.bench.report_knn import is_recommendation, recommender_items, recommender_table
from edgesparse.bench.results import make_output_dir, write_results
from edgesparse.bench.results_schema import validate_results
from edgesparse.fileio import atomic_write_bytes

# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------


def _within_target_ratios(
    results: dict[str, Any],
) -> dict[int, tuple[float | None, float | None]]:
    """Row index -> (p50 / fastest p50, sklearn p50 / p50), both on the row's own target and
    batch size only: never across targets."""
    fastest: dict[tuple[str, int], float] = {}
    sklearn: dict[tuple[str, int], float] = {}
    for r in ok_rows(results):
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


def _env_line(d: Dialect, t: dict[str, Any]) -> str:
    env = t.get("environment") or {}
    parts = []
    for label, value in (
        ("kind", t.get("kind")),
        ("arch", t.get("arch") or env.get("machine")),
        ("CPU", env.get("cpu_model") or t.get("cpu")),
        ("cores", t.get("cores")),
        ("RAM", fmt_mem(t["ram_bytes"]) if t.get("ram_bytes") is not None else None),
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
    d: Dialect,
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
            fmt_pct(r.get("accuracy"))
            if r.get("accuracy") is not None
            else (f"R² {r['r2']:.4f}" if r.get("r2") is not None else DASH)
        )
        cells = [
            str(r["batch_size"]),
            d.code(r["artifact"]),
            d.esc(r["engine"]),
            fmt_us(lat.get("p50")),
            fmt_us(lat.get("p99")),
            fmt_ratio(vs_fastest),
        ]
        if has_sklearn:
            cells.append(fmt_ratio(vs_sklearn))
        cells += [
            fmt_rate(rows_per_s_at_p50(r)),
            fmt_ms(r["cold_start_ms"]),
            fmt_mem(r["peak_rss_bytes"])
            if r["peak_rss_bytes"] is not None
            else ("n/a (emulated)" if t["emulated"] and ok else DASH),
            fmt_mem(r.get("model_rss_bytes")),
            d.esc(r.get("memory_method") or DASH),
            fmt_exact_bytes(r["model_bytes"]),
            fmt_pct(r["agreement"])
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


def _c_programs_table(d: Dialect, results: dict[str, Any]) -> str | None:
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
                d.esc(p.get("compiler") or DASH),
                d.esc(p.get("linkage") or DASH),
                fmt_exact_bytes(p.get("text")),
                fmt_exact_bytes(p.get("data")),
                fmt_exact_bytes(p.get("bss")),
                fmt_exact_bytes(p.get("size_total")),
                fmt_exact_bytes(p.get("size_plus_model_bytes")),
                fmt_exact_bytes(p.get("file_bytes")),
                d.esc(p.get("mode") or DASH),
                fmt_exact_bytes(p.get("workspace_bytes")),
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
    d: Dialect, results: dict[str, Any], images: dict[str, str] | None
) -> tuple[str, list[str]]:
    images = images or {}
    title = "edgesparse bench report"
    return title, [
        d.heading(1, d.esc(title)),
        *_intro(d, results),
        d.heading(2, "What these numbers mean"),
        d.items(
            [
                *meaning_items(d, results),
                *(recommender_items(d, results) if is_recommendation(results) else []),
            ]
        ),
        *_sizes_section(d, results, images),
        *_latency_section(d, results, images),
        *_memory_section(d, images),
        *_environment_section(d, results),
        *_problems_section(d, results),
    ]


def _intro(d: Dialect, results: dict[str, Any]) -> list[str]:
    """Run facts, the command, and the emulated targets named up front."""
    s = results.get("settings") or {}
    out: list[str] = []
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
    emulated = [t for t in results["targets"] if t["emulated"]]
    if emulated:
        names = ", ".join(d.esc(t["target"]) for t in emulated)
        out.append(
            d.para(
                d.strong(f"Emulated targets: {names}.")
                + f" Every number measured there is labelled {EMULATED}; it is not device "
                "latency (see “What these numbers mean”)."
            )
        )
    return out


def _sizes_section(d: Dialect, results: dict[str, Any], images: dict[str, str]) -> list[str]:
    """Artifact sizes, and the C programs' sizes when there are any."""
    out: list[str] = []
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
                    fmt_exact_bytes(a["model_bytes"]),
                    fmt_ratio(a["model_bytes"] / smallest if smallest else None),
                    d.code(a["sha256"][:12]) if a.get("sha256") else DASH,
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
    return out


def _latency_section(d: Dialect, results: dict[str, Any], images: dict[str, str]) -> list[str]:
    """One table per target; ratios never cross targets."""
    targets = results["targets"]
    emulated = any(t["emulated"] for t in targets)
    ratios = _within_target_ratios(results)
    out: list[str] = []
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
        out.append(d.heading(3, d.esc(target_label(t))))
        out.append(d.para(_env_line(d, t)))
        if t.get("notes"):
            out.append(d.para(d.esc(t["notes"])))
        if t["status"] != "ok":
            out.append(d.para(d.strong(f"Target {d.esc(t['status'])}:") + " " + d.esc(t["error"])))
        table = (
            recommender_table(d, results, t)
            if is_recommendation(results)
            else _target_table(d, results, t, ratios)
        )
        out.append(table if table is not None else d.para("No measurements for this target."))
    return out


def _memory_section(d: Dialect, images: dict[str, str]) -> list[str]:
    """The memory plot; the figures are in the target tables."""
    out: list[str] = []
    out.append(d.heading(2, "Memory"))
    if "memory" in images:
        out.append(d.image(images["memory"], "peak RSS and model RSS per artifact and target"))
    out.append(
        d.para(
            "Per-row figures are in the target tables above (peak RSS, model RSS and how it "
            "was measured)."
        )
    )
    return out


def _environment_section(d: Dialect, results: dict[str, Any]) -> list[str]:
    """One row per target: machine, versions, QEMU, dot product."""
    targets = results["targets"]
    emulated = any(t["emulated"] for t in targets)
    out: list[str] = []
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
        has, source = dotprod(t)
        env_rows.append(
            [
                d.esc(target_label(t)),
                d.esc(t.get("kind") or DASH),
                d.esc(t.get("arch") or env.get("machine") or DASH),
                d.esc(env.get("cpu_model") or t.get("cpu") or DASH),
                d.esc(t["cores"]) if t.get("cores") is not None else DASH,
                fmt_mem(t.get("ram_bytes")),
                d.esc(env.get("python") or DASH),
                d.esc(env.get("numpy") or DASH),
                d.esc(env.get("onnxruntime") or DASH),
                d.esc(env["threads"]) if env.get("threads") is not None else DASH,
                d.esc(env.get("governor") or DASH),
                d.esc(env.get("qemu") or DASH),
                DASH if has is None else ("yes" if has else "no") + f" ({d.esc(source)})",
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
    return out


def _problems_section(d: Dialect, results: dict[str, Any]) -> list[str]:
    """Every failed or skipped target and row with its reason."""
    targets = results["targets"]
    out: list[str] = []
    out.append(d.heading(2, "Failed and skipped"))
    problems = [
        [
            d.esc(target_label(t)),
            "(whole target)",
            DASH,
            DASH,
            d.esc(t["status"]),
            d.esc(t["error"]),
        ]
        for t in targets
        if t["status"] != "ok"
    ]
    problems += [
        [
            d.esc(target_label(next(t for t in targets if t["target"] == r["target"]))),
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
    return out


def render_markdown(results: dict[str, Any], *, images: dict[str, str] | None = None) -> str:
    """The report as GitHub-flavoured Markdown.

    ``images`` maps plot keys (``latency``, ``size``, ``memory``) to relative file names to
    embed; without it the Markdown has tables only. Every string from the data is escaped.
    """
    validate_results(results)
    d = Markdown()
    title, blocks = _build(d, results, images)
    return d.document(title, blocks)


def render_html(results: dict[str, Any], *, images: dict[str, str]) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts).

    ``images`` maps plot keys (``latency``, ``size``, ``memory``) to PNG file names relative to
    the page. Every string from the data is HTML-escaped.
    """
    validate_results(results)
    d = Html()
    title, blocks = _build(d, results, images)
    return d.document(title, blocks)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_report(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Validate ``results`` and write results.json, report.md, report.html and the PNG plots
    into ``out_dir`` (created if missing). Every file is written atomically, so a re-run over
    an existing report replaces each file whole. Returns the written paths."""
    validate_results(results)
    out = Path(out_dir)
    make_output_dir(out)
    plots = render_plots(results, out)
    images = {key: path.name for key, path in plots.items()}
    written = [
        write_results(results, out),
        atomic_write_bytes(
            out / "report.md", render_markdown(results, images=images).encode("utf-8")
        ),
        atomic_write_bytes(
            out / "report.html", render_html(results, images=images).encode("utf-8")
        ),
    ]
    return written + list(plots.values())
