"""Terminal text: what the CLI prints (pure functions: data in, text out), and the escaping
that keeps a file's bytes from rewriting the screen.

"Report" means one thing in edgesparse: :class:`edgesparse.pipeline.CompressReport` (what a
compression did, also the ``--json`` output) and the bench's rendered report
(:mod:`edgesparse.bench.report`, of which this module's :func:`bench_table` is the terminal
digest). This module only turns them into lines.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgesparse.pipeline import CompressReport, FactorDetails, KnnDetails, LinearDetails

# C0/C1 controls (ESC, BEL, CR, LF, ...), DEL, line/paragraph separators, bidi overrides and
# isolates, and lone surrogates (which stdout cannot encode).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_IN_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def terminal_text(text: str, *, keep_lines: bool = False) -> str:
    """``text`` safe to print: every character that could move the cursor, rewrite the screen,
    fake a line or fail to encode becomes a visible escape (ESC -> ``\\x1b``). Values from a
    file (labels, provenance, ids) are escaped with ``keep_lines=False``; the CLI escapes every
    line it prints once more with ``keep_lines=True`` (its own newlines stay)."""
    return (_UNSAFE_IN_LINES if keep_lines else _UNSAFE).sub(_escape, text)


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.2f} MiB"


def compress_summary(report: CompressReport) -> str:
    """The short summary ``edgesparse compress`` prints, for either model kind."""
    if report.knn is not None:
        rows = _knn_rows(report, report.knn)
    elif report.factors is not None:
        rows = _factor_rows(report, report.factors)
    else:
        assert report.linear is not None  # a CompressReport has one or the other
        rows = _linear_rows(report, report.linear)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _linear_rows(report: CompressReport, d: LinearDetails) -> list[tuple[str, str]]:
    rows = [
        ("model", f"{report.estimator}  {d.shape[0]} output(s) x {d.shape[1]} features"),
        ("original", f"{_bytes(report.source_bytes)}  ({report.source})"),
        (
            "output",
            f"{_bytes(report.output_bytes)}  ({report.output})  ratio {report.ratio:.1f}x",
        ),
        (
            "nonzeros",
            f"{d.nnz_before} -> {d.nnz_after}  "
            f"(sparsity {d.sparsity_before:.1%} -> {d.sparsity_after:.1%})",
        ),
        *_written_by(d),
        ("format", d.format_detail or report.format),
        ("quantization", _quantization(d)),
    ]
    if d.precision_note is not None:
        rows.append(("precision", d.precision_note))
    rows.extend(_estimate_rows(d))
    if d.nnz_after:
        rows.append(("bytes/nonzero", f"{report.output_bytes / d.nnz_after:.2f}"))
    rows.extend(_check_rows(d))
    if d.budget is not None:
        rows.extend(budget_rows(d.budget))
    return rows


def _estimate_rows(d: LinearDetails) -> list[tuple[str, str]]:
    """What the safe default measured on probe rows, or that nothing could be measured."""
    if d.estimate is not None and d.estimate["basis"] == "probe":
        rows = [("estimated fidelity", d.estimate["text"])]
        if not d.estimate["meets_default_bar"]:
            rows.append(
                (
                    "",
                    f"below the {d.estimate['bar']} bar on these probes (independent "
                    f"columns, not your data); measure with --check-data {_check_file(d)}",
                )
            )
        return rows
    if d.check is None and d.budget is None and d.quantization.startswith("int8"):
        why = (
            "the model carries no input statistics (no scaler)"
            if d.input_kind not in ("documents", "records")
            else f"no estimate is made from raw {d.input_kind}"  # the stage's scalers are inside
        )
        return [
            (
                "estimated fidelity",
                f"unknown: {why}; give --check-data {_check_file(d)} to measure",
            )
        ]
    return []


def _check_file(d: LinearDetails) -> str:
    """An example --check-data argument for what the model reads."""
    return {
        "documents": "docs.txt (one document per line)",
        "records": "rows.csv (records under a header)",
    }.get(d.input_kind, "X.npz")


def _check_rows(d: LinearDetails) -> list[tuple[str, str]]:
    c = d.check
    if c is None:
        return []
    rows = [("check rows", str(c.n_rows))]
    if c.reference is not None:
        rows.append(("check reference", c.reference))
    if c.label_agreement is not None:
        rows.append(("label agreement", f"{c.label_agreement:.2%}"))
    rows.append(("max |d decision|", f"{c.max_abs_decision_delta:.3g}"))
    if c.max_abs_proba_delta is not None:
        rows.append(("max |d proba|", f"{c.max_abs_proba_delta:.3g}"))
    if c.score_name is not None:
        rows.append((c.score_name, f"{c.score_before:.4f} -> {c.score_after:.4f}"))
    return rows


def _written_by(d: LinearDetails) -> list[tuple[str, str]]:
    """The scikit-learn release that wrote the model and by whose rules it was read."""
    if d.sklearn_version is None:
        return []
    rules = d.sklearn_rules or f"read by the rules of scikit-learn {d.sklearn_version}"
    return [("written by", f"scikit-learn {d.sklearn_version}; {rules}")]


def _quantization(d: LinearDetails) -> str:
    if d.column_scaling == "pow2":
        return f"{d.quantization}, power-of-two scale per input column"
    return d.quantization


def _knn_rows(report: CompressReport, d: KnnDetails) -> list[tuple[str, str]]:
    def kib(n: int) -> str:
        return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"

    rows = [
        (
            "model",
            f"{report.estimator}  {d.n_users} users x {d.n_items} items, "
            f"{d.n_ratings} ratings, k={d.k}",
        ),
        ("original", f"{kib(report.source_bytes)}  ({report.source})"),
        ("output", f"{kib(report.output_bytes)}  ({report.output})  ratio {report.ratio:.1f}x"),
        ("similarities", f"{d.sims_before} positive -> {d.sims_after} kept"),
        ("similarity dtype", d.sim_dtype),
    ]
    if d.surprise_version is not None:
        rows.append(("written by", f"Surprise {d.surprise_version}; {d.surprise_rules or ''}"))
    if d.check_rows is not None:
        rows.append(("check rows", str(d.check_rows)))
        rows.append(("RMSE", f"{d.rmse_before:.4f} -> {d.rmse_after:.4f}"))
        rows.append(("MAE", f"{d.mae_before:.4f} -> {d.mae_after:.4f}"))
        rows.append(("max |d estimate|", f"{d.max_abs_delta:.3g}"))
    return rows


def _factor_rows(report: CompressReport, d: FactorDetails) -> list[tuple[str, str]]:
    rows = [
        (
            "model",
            f"{report.estimator}  {d.n_users} users x {d.n_items} items, {d.n_factors} factors",
        ),
        ("original", f"{_bytes(report.source_bytes)}  ({report.source})"),
        (
            "output",
            f"{_bytes(report.output_bytes)}  ({report.output})  ratio {report.ratio:.1f}x",
        ),
        ("factor dtype", d.factor_dtype),
    ]
    if d.surprise_version is not None:
        rows.append(("written by", f"Surprise {d.surprise_version}; {d.surprise_rules or ''}"))
    if d.check_rows is not None:
        rows.append(("check rows", str(d.check_rows)))
        rows.append(("RMSE", f"{d.rmse_before:.4f} -> {d.rmse_after:.4f}"))
        rows.append(("MAE", f"{d.mae_before:.4f} -> {d.mae_after:.4f}"))
        rows.append(("max |d estimate|", f"{d.max_abs_delta:.3g}"))
    return rows


def _stage_line(stage: dict[str, Any]) -> str:
    """The budget of a model with an input stage: whose feature rows it was searched on, and
    how the written model and scikit-learn agree on the calibration rows."""
    text = (
        f"searched on the feature rows of the model's own stage; on all calibration "
        f"{stage['kind']} the written model agrees with the certified one on "
        f"{stage['written_agreement']:.2%}"
    )
    oracle = stage.get("sklearn_agreement")
    if oracle is None:
        return text + " (scikit-learn's predict not run: pandas is not installed)"
    return text + f", the original with scikit-learn's predict on {oracle:.2%}"


def budget_rows(b: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary lines of an accuracy-aware search (``CompressReport.linear.budget``)."""
    cal, chosen, g = b["calibration"], b["chosen"], b["guarantee"]
    limits = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in b["budget"].items())
    rows = [
        (
            "calibration",
            f"{cal['rows']} {cal.get('kind', 'rows')}"
            f"{'' if cal.get('labelled', True) else ' (unlabelled)'}: "
            f"{cal['fit_rows']} search, {cal['heldout_rows']} held out to certify "
            f"({cal['holdout']:.0%}{', stratified' if cal['stratified'] else ''}, "
            f"seed {cal['seed']}); figures below are held-out",
        ),
        ("budget", limits + ("" if b["met"] else "  NOT CERTIFIED (--force)")),
        ("guarantee", g["statement"]),
        (
            "chosen",
            f"{chosen['family']}/{chosen['importance']} pruning, {chosen['quantization']}, "
            f"sparsity {chosen['sparsity']:.1%}{', refitted' if chosen['refit'] else ''}",
        ),
    ]
    stage = b.get("input_stage")
    if stage is not None:
        rows.append(("input stage", _stage_line(stage)))
    for seq in b.get("sequences", []):
        stop = seq.get("stopped_at")
        name = f"{seq['quantization']}{', refit' if seq['refit'] else ''}"
        text = f"{seq['certified']} of {seq['tested']} candidates certified"
        if stop is not None:
            text += f"; stopped at sparsity {stop['sparsity']:.1%} (p = {stop['p_value']:.3g})"
        rows.append((f"sequence {name}", text))
    for key in b["before"]:
        if key == "agreement":  # the original agrees with itself: one figure says it all
            rows.append(("held-out agreement", f"{b['after'][key]:.2%} of labels unchanged"))
        else:
            rows.append((f"held-out {key}", f"{b['before'][key]:.4f} -> {b['after'][key]:.4f}"))
    if b.get("max_abs_proba_delta") is not None:
        rows.append(("max |d proba|", f"{b['max_abs_proba_delta']:.3g} (held-out)"))
    if "flipped_count" in b:
        margins = ", ".join(f"{f['margin']:.3g}" for f in b["flipped"][:5])
        median = b.get("median_margin")
        rows.append(
            (
                "flipped rows",
                f"{b['flipped_count']}"
                + (f" (smallest margins {margins}; median margin {median:.3g})" if margins else ""),
            )
        )
    searched = len(b["curve"]) + len(b.get("search_curve", []))
    rows.append(("searched", f"{searched} candidates in {b['seconds']:.2f} s"))
    rows.extend(("warning", w) for w in b.get("warnings", []))
    return rows


def key_values(info: dict[str, Any]) -> str:
    """Aligned ``key  value`` lines (nested dicts are indented)."""
    lines: list[str] = []

    def walk(d: dict[str, Any], indent: str) -> None:
        width = max((len(terminal_text(str(k))) for k in d), default=0)
        for k, v in d.items():
            if isinstance(v, dict) and v:
                lines.append(f"{indent}{terminal_text(str(k))}:")
                walk(v, indent + "  ")
            elif isinstance(v, dict):
                lines.append(f"{indent}{terminal_text(str(k)):<{width}}  none")
            else:
                lines.append(f"{indent}{terminal_text(str(k)):<{width}}  {terminal_text(str(v))}")

    walk(info, "")
    return "\n".join(lines)


def array_lines(values: Any) -> str:
    """One line per row: a label/value, or space-separated values for 2-D outputs."""
    import numpy as np

    arr = np.asarray(values)
    if arr.ndim == 1:
        return "\n".join(terminal_text(str(v)) for v in arr.tolist())
    return "\n".join(" ".join(f"{v:.6g}" for v in row) for row in arr.tolist())


def knn_lines(pairs: Any, estimates: Any, impossible: Any) -> str:
    """``user,item,estimate,impossible`` per pair (ids escaped: they come from a file)."""
    return "\n".join(
        f"{terminal_text(str(u))},{terminal_text(str(i))},{e:.6g},{int(f)}"
        for (u, i), e, f in zip(pairs, estimates.tolist(), impossible.tolist(), strict=True)
    )


def bench_table(results: dict[str, Any]) -> str:
    """A fixed-width summary of a bench run, one line per target x artifact x batch size,
    and a legend.

    rows/s is derived from p50 (so the two columns agree); the agreement column's header names
    its reference, and accuracy or R² against the labels get their own column.
    """
    from edgesparse.bench.explain import reference_sentence

    rows = results["results"]
    columns = _bench_columns(results)
    cells = [[cell(r) for _, _, cell in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _, _) in enumerate(columns)]

    def line(values: list[str]) -> str:
        out = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, (_, right, _) in zip(values[:-1], widths, columns, strict=False)
        ]
        return "  ".join([*out, values[-1]])

    lines = [line([h for h, _, _ in columns]), *(line(c) for c in cells)]
    if any(r["emulated"] for r in rows):
        lines.append("* emulated (QEMU user mode): not device latency; compare within a target")
    legend = (
        "rows/s@p50 = batch / p50 latency (results.json's throughput_rows_per_s is "
        "batch / mean latency). " + reference_sentence(results)
    )
    lines.append(textwrap.fill(legend, width=100))
    return "\n".join(lines)


_Column = tuple[str, bool, Callable[[dict[str, Any]], str]]
"""(header, right-aligned, cell)"""


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _us(v: float | None) -> str:
    return _num(v, ".2f" if v is not None and v < 10 else ".1f")


def _pct(v: float | None) -> str:
    return _num(v, ".2%")


def _agree(r: dict[str, Any]) -> str:
    if r["agreement"] is None and r.get("max_abs_diff") is not None:
        return f"diff {r['max_abs_diff']:.3g}"  # regressors: largest |difference|
    return _pct(r["agreement"])


def _bench_columns(results: dict[str, Any]) -> list[_Column]:
    """The table's columns: the fixed ones, then those the results have figures for."""
    from edgesparse.bench.explain import reference_label, rows_per_s_at_p50

    rows = results["results"]
    ref = reference_label(results)
    kind = (results.get("reference") or {}).get("kind")
    # With labels as the reference, agreement already is the accuracy: no second column.
    show_acc = kind != "labels" and any(r.get("accuracy") is not None for r in rows)
    show_r2 = any(r.get("r2") is not None for r in rows)
    columns: list[_Column] = [
        ("target", False, lambda r: r["target"] + ("*" if r["emulated"] else "")),
        ("artifact", False, lambda r: r["artifact"]),
        ("batch", True, lambda r: str(r["batch_size"])),
        ("p50 us", True, lambda r: _us((r["latency_us"] or {}).get("p50"))),
        ("p99 us", True, lambda r: _us((r["latency_us"] or {}).get("p99"))),
        ("rows/s@p50", True, lambda r: _num(rows_per_s_at_p50(r), ",.0f")),
        ("cold ms", True, lambda r: _num(r["cold_start_ms"], ".0f")),
    ]
    if ref is not None:
        # Recommenders have estimates, not labels: the cell is their largest difference.
        recommend = (results.get("settings") or {}).get("task") == "recommendation"
        columns.append((f"{'diff' if recommend else 'agree'} vs {ref}", True, _agree))
    if show_acc:
        columns.append(("accuracy", True, lambda r: _pct(r.get("accuracy"))))
    if show_r2:
        columns.append(("R2", True, lambda r: _num(r.get("r2"), ".4f")))
    if any(r.get("rmse") is not None for r in rows):  # recommenders: error vs the ratings
        columns.append(("RMSE vs ratings", True, lambda r: _num(r.get("rmse"), ".4f")))
    columns.append(
        (
            "status",
            False,
            lambda r: r["status"] if r["status"] == "ok" else f"{r['status']}: {r['error']}",
        )
    )
    return columns


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.1f} GiB"


def _yes_no(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "no")


def targets_table(targets: list[tuple[Any, str]]) -> str:
    """``edgesparse devices list``: one line per (target, status), in aligned columns."""
    rows = [("name", "kind", "cpu", "cores", "RAM", "dotprod", "emulated", "status")]
    for t, why in targets:
        rows.append(
            (
                t.name,
                t.kind,
                t.cpu,
                str(t.cores or "-"),
                _gib(t.ram_bytes),
                _yes_no(t.dotprod),
                _yes_no(t.emulated),
                why,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    )


def target_lines(t: Any, why: str) -> str:
    """``edgesparse devices show``: a target's profile (a ``bench.targets`` target) and its
    status, one ``key: value`` line per field that has a value."""
    caches = ", ".join(
        f"L{c.level}{c.type[0].lower() if c.level == 1 else ''} {c.size_kib}K"
        f"{' shared' if c.shared else ''}"
        for c in t.caches
    )
    guest = None
    if t.guest:
        guest = (
            f"Python {t.guest.python} (Debian {t.guest.debian_suite} {t.guest.debian_arch}), "
            + ", ".join(t.guest.wheels)
        )
    fields = {
        "name": t.name,
        "kind": t.kind,
        "description": t.description,
        "arch": t.arch,
        "cpu": t.cpu,
        "board": t.board,
        "cores": t.cores,
        "RAM": _gib(t.ram_bytes),
        "clock": f"{t.clock_mhz} MHz" if t.clock_mhz else None,
        "dot product": _yes_no(t.dotprod),
        "emulated": _yes_no(t.emulated),
        "qemu cpu": t.qemu_cpu,
        "MIDR": t.midr,
        "features": t.features,
        "caches": caches or None,
        "guest": guest,
        "notes": t.notes,
        "profile": t.source,
        "status": why,
    }
    return "\n".join(f"{k + ':':<13}{v}" for k, v in fields.items() if v not in (None, ""))
