"""What the bench numbers mean: the figures derived from a results dict (shared by the
report and the CLI's summary table) and the report's explanations (how to read latency,
emulated timings, cold start and memory; the int8 ONNX kernel path per target, from the CPU's
dot-product extension). Text is written against a dialect (:mod:`edgesparse.bench.markup`).
"""

from __future__ import annotations

from typing import Any

from edgesparse.bench.markup import EMULATED, Dialect, Item

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
    settings = results.get("settings") or {}
    labels = settings.get("labels")
    if settings.get("task") == "recommendation":
        return _recommender_reference(kind, source, labels)
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


def _recommender_reference(kind: str | None, source: str | None, labels: str | None) -> str:
    """:func:`reference_sentence` for a recommender run (errors, not label agreement)."""
    if kind == "surprise":
        text = (
            f"Differences (RMSE, max abs diff) are against Surprise's own predict ({source}) "
            "on the same pairs"
        )
    elif kind == "artifact":
        text = (
            f"Differences (RMSE, max abs diff) are against {source}, a cross-target "
            "consistency check: no Surprise pickle was given"
        )
    else:
        text = "No Surprise pickle was given, so there is no reference model"
    if labels:
        text += f"; RMSE and MAE vs ratings are against the ratings ({labels})"
    return text + "."


# --------------------------------------------------------------------------------------------
# Labels and explanations
# --------------------------------------------------------------------------------------------


def target_label(t: dict[str, Any]) -> str:
    """A target's name, with "(emulated)" when it is."""
    return f"{t['target']} {EMULATED}" if t["emulated"] else t["target"]


def ok_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The result rows that measured something."""
    return [r for r in results["results"] if r["status"] == "ok"]


def dotprod(t: dict[str, Any]) -> tuple[bool | None, str]:
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


def _int8_note(d: Dialect, t: dict[str, Any], onnx_names: str) -> str:
    label = d.strong(d.esc(target_label(t)))
    cpu = f" ({d.esc(t['cpu'])})" if t.get("cpu") else ""
    has, source = dotprod(t)
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


def meaning_items(d: Dialect, results: dict[str, Any]) -> list[Item]:
    """The "What these numbers mean" items: how to read latency, emulated timings, cold
    start, memory, the C engine and the int8 ONNX kernel path of each target."""
    emulated = [t for t in results["targets"] if t["emulated"]]
    has_sklearn = any(r["engine"] == "sklearn" for r in ok_rows(results))
    items: list[Item] = [
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
        {r["cold_start_method"] for r in ok_rows(results) if r.get("cold_start_method")}
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
    return [*items, *_engine_items(d, results)]


def _engine_items(d: Dialect, results: dict[str, Any]) -> list[Item]:
    targets = results["targets"]
    items: list[Item] = []
    recommend = (results.get("settings") or {}).get("task") == "recommendation"
    documents = bool((results.get("settings") or {}).get("documents"))
    records = bool((results.get("settings") or {}).get("records"))
    # A recommender run's C rows are explained by the recommender items.
    if not recommend and any(a["engine"] == "c" for a in results["artifacts"]):
        batch = (
            "a batch is N documents, each through esb_predict_text_ix with the text index "
            "built once (featurization included; there is no batch call for documents)"
            if documents
            else "a batch is N records, each split from its CSV text and through "
            "esb_predict_tabular (featurization included; there is no batch call for records)"
            if records
            else "a batch is one batch call of the runtime (esb_predict_batch, or the CSR "
            "batch call for sparse rows)"
        )
        items.append(
            f"Engine {d.code('c')} ({d.code('c:model.esb')}) is the C runtime: its driver "
            f"program ({d.code('esb bench')}, statically linked where possible) times each call "
            f"in C; {batch}. Its peak RSS is the whole driver "
            "process (program, libc, blob, input rows, timings); under QEMU it reports the "
            "exact bytes of blob + index workspace instead. Program sizes are under "
            f"{d.strong('C programs')}."
        )
    onnx = [a["artifact"] for a in results["artifacts"] if a["engine"] == "onnx"]
    if recommend:
        pass  # no ONNX recommenders: the int8 ONNX note does not apply
    elif onnx:
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
