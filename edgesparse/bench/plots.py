"""PNG plots of bench results: latency, size and memory per artifact and target.

matplotlib is an optional heavy dependency, imported inside the functions that draw, so
importing this module (and :mod:`edgesparse.bench.report`) stays light. Figure + the Agg
canvas directly (no pyplot): no global backend switch, no GUI.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgesparse.bench.markup import EMULATED
from edgesparse.bench.results import make_output_dir
from edgesparse.bench.results_schema import validate_results
from edgesparse.fileio import atomic_write_bytes

#: PNG files :func:`render_plots` writes, by key.
PLOT_FILES: dict[str, str] = {
    "latency": "latency.png",
    "size": "size.png",
    "memory": "memory.png",
}


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
    make_output_dir(out)
    colors = artifact_colors(results)
    written: dict[str, Path] = {}
    for key, draw in (
        ("latency", plot_latency),
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


def artifact_colors(results: dict[str, Any]) -> dict[str, Any]:
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


def plot_latency(fig: Any, results: dict[str, Any], colors: dict[str, Any]) -> None:
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
