"""Plain-text summaries for the CLI (pure functions: data in, text out)."""

from __future__ import annotations

import re
from typing import Any

from edgesparse.api import CompressReport

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
    """The short summary ``edgesparse compress`` prints."""
    rows = [
        ("model", f"{report.estimator}  {report.shape[0]} output(s) x {report.shape[1]} features"),
        ("original", f"{_bytes(report.source_bytes)}  ({report.source})"),
        (
            "output",
            f"{_bytes(report.output_bytes)}  ({report.output})  ratio {report.ratio:.1f}x",
        ),
        (
            "nonzeros",
            f"{report.nnz_before} -> {report.nnz_after}  "
            f"(sparsity {report.sparsity_before:.1%} -> {report.sparsity_after:.1%})",
        ),
        *_written_by(report),
        ("format", report.format_detail or report.format),
        ("quantization", _quantization(report)),
    ]
    if report.precision_note is not None:
        rows.append(("precision", report.precision_note))
    if report.estimate is not None and report.estimate["basis"] == "probe":
        rows.append(("estimated fidelity", report.estimate["text"]))
        if not report.estimate["meets_default_bar"]:
            rows.append(
                (
                    "",
                    f"below the {report.estimate['bar']} bar on these probes (independent "
                    "columns, not your data); measure with --check-data X.npz",
                )
            )
    elif report.check is None and report.budget is None and report.quantization.startswith("int8"):
        rows.append(
            (
                "estimated fidelity",
                "unknown: the model carries no input statistics (no scaler); "
                "give --check-data X.npz to measure",
            )
        )
    if report.nnz_after:
        rows.append(("bytes/nonzero", f"{report.output_bytes / report.nnz_after:.2f}"))
    c = report.check
    if c is not None:
        rows.append(("check rows", str(c.n_rows)))
        if c.reference is not None:
            rows.append(("check reference", c.reference))
        if c.label_agreement is not None:
            rows.append(("label agreement", f"{c.label_agreement:.2%}"))
        rows.append(("max |d decision|", f"{c.max_abs_decision_delta:.3g}"))
        if c.max_abs_proba_delta is not None:
            rows.append(("max |d proba|", f"{c.max_abs_proba_delta:.3g}"))
        if c.score_name is not None:
            rows.append((c.score_name, f"{c.score_before:.4f} -> {c.score_after:.4f}"))
    if report.budget is not None:
        rows.extend(budget_rows(report.budget))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _written_by(report: CompressReport) -> list[tuple[str, str]]:
    """The scikit-learn release that wrote the model and by whose rules it was read."""
    if report.sklearn_version is None:
        return []
    rules = report.sklearn_rules or f"read by the rules of scikit-learn {report.sklearn_version}"
    return [("written by", f"scikit-learn {report.sklearn_version}; {rules}")]


def _quantization(report: CompressReport) -> str:
    if report.column_scaling == "pow2":
        return f"{report.quantization}, power-of-two scale per input column"
    return report.quantization


def budget_rows(b: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary lines of an accuracy-aware search (``CompressReport.budget``)."""
    cal, chosen, g = b["calibration"], b["chosen"], b["guarantee"]
    limits = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in b["budget"].items())
    rows = [
        (
            "calibration",
            f"{cal['rows']} rows{'' if cal.get('labelled', True) else ' (unlabelled)'}: "
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
