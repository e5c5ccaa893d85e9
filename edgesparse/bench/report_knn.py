"""The recommender parts of the bench report (a results dict whose ``settings.task`` is
``"recommendation"``): one table per target of k-NN blobs (and the host-only Surprise
pickle) with their ``predict`` / batch / ``recommend`` latency, cold start, memory and errors
against the ratings and the reference, and what those columns mean. Written against a
dialect (:mod:`edgesparse.bench.markup`), like the rest of :mod:`edgesparse.bench.report`.
"""

from __future__ import annotations

import math
from typing import Any

from edgesparse.bench.explain import ok_rows, rows_per_s_at_p50
from edgesparse.bench.markup import (
    DASH,
    EMULATED,
    Dialect,
    fmt_exact_bytes,
    fmt_mem,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    fmt_us,
)

__all__ = ["is_recommendation", "recommender_items", "recommender_table", "reference_name"]


def is_recommendation(results: dict[str, Any]) -> bool:
    """Whether ``results`` come from a recommender run (pairs, not rows)."""
    return (results.get("settings") or {}).get("task") == "recommendation"


def reference_name(results: dict[str, Any]) -> str | None:
    """What the "vs reference" error columns compare with, for a header (``Surprise``,
    ``knn.esb on host``), or None when the reference is the ratings themselves."""
    ref = results.get("reference") or {}
    kind, source = ref.get("kind"), ref.get("source") or ""
    if kind == "surprise":
        return "Surprise"
    if kind == "artifact":
        return source.split(" on the host")[0] + " on host"
    return None


def _call(r: dict[str, Any]) -> str:
    """What one timed call is, for the row's engine and batch size."""
    b = r["batch_size"]
    if r["engine"] == "c":
        return "esb_knn_predict" if b == 1 else f"{b} x esb_knn_predict"
    if b == 1:
        return "predict(user, item)"
    return f"{b} x predict" if r["engine"] == "surprise" else f"predict_many({b} pairs)"


def _fastest(results: dict[str, Any]) -> dict[tuple[str, int], float]:
    """(target, batch size) -> the fastest p50 there: ratios never cross targets."""
    out: dict[tuple[str, int], float] = {}
    for r in ok_rows(results):
        key = (r["target"], r["batch_size"])
        out[key] = min(out.get(key, math.inf), r["latency_us"]["p50"])
    return out


def _fmt_err(v: float | None) -> str:
    return DASH if v is None else f"{v:.4f}"


def _rec_ms(r: dict[str, Any]) -> str:
    lat = r.get("recommend_latency_us")
    if not lat:
        return DASH
    ms = lat["p50"] / 1000.0
    return f"{ms:.3f}" if ms < 10 else fmt_ms(ms)


def recommender_table(d: Dialect, results: dict[str, Any], t: dict[str, Any]) -> str | None:
    """One target's recommender table (None when the target has no rows)."""
    rows = [r for r in results["results"] if r["target"] == t["target"]]
    if not rows:
        return None
    order = {a["artifact"]: k for k, a in enumerate(results["artifacts"])}
    rows.sort(key=lambda r: (r["batch_size"], order[r["artifact"]]))
    fastest = _fastest(results)
    emu = f" {EMULATED}" if t["emulated"] else ""
    n = (results.get("settings") or {}).get("recommend_n") or 10
    ref = reference_name(results)
    headers = [
        "batch",
        "artifact",
        "engine",
        "timed call",
        f"p50 µs{emu}",
        f"p99 µs{emu}",
        f"p50 / fastest{emu}",
        f"pairs/s at p50{emu}",
        f"recommend(n={n}) p50 ms{emu}",
        f"cold start ms{emu}",
        "peak RSS",
        "model RSS",
        "memory method",
        "model bytes",
        "RMSE vs ratings",
        "MAE vs ratings",
    ]
    if ref is not None:
        headers += [f"RMSE vs {ref}", f"max abs diff vs {ref}"]
    headers.append("status")
    body = []
    for r in rows:
        ok = r["status"] == "ok"
        lat = r["latency_us"] or {}
        base = fastest.get((r["target"], r["batch_size"]))
        ratio = lat["p50"] / base if ok and base else None
        cells = [
            str(r["batch_size"]),
            d.code(r["artifact"]),
            d.esc(r["engine"]),
            d.code(_call(r)) if ok else DASH,
            fmt_us(lat.get("p50")),
            fmt_us(lat.get("p99")),
            fmt_ratio(ratio),
            fmt_rate(rows_per_s_at_p50(r)),
            _rec_ms(r),
            fmt_ms(r["cold_start_ms"]),
            fmt_mem(r["peak_rss_bytes"])
            if r["peak_rss_bytes"] is not None
            else ("n/a (emulated)" if t["emulated"] and ok else DASH),
            fmt_mem(r.get("model_rss_bytes")),
            d.esc(r.get("memory_method") or DASH),
            fmt_exact_bytes(r["model_bytes"]),
            _fmt_err(r.get("rmse")),
            _fmt_err(r.get("mae")),
        ]
        if ref is not None:
            cells += [_fmt_err(r.get("reference_rmse")), _fmt_err(r.get("max_abs_diff"))]
        cells.append("ok" if ok else d.strong(d.esc(r["status"])) + ": " + d.esc(r["error"]))
        body.append(cells)
    right = {0, *range(4, 12), 13, *range(14, len(headers) - 1)}
    return d.table([d.esc(h) for h in headers], body, right)


def recommender_items(d: Dialect, results: dict[str, Any]) -> list[str]:
    """The "What these numbers mean" items of a recommender run."""
    s = results.get("settings") or {}
    n = s.get("recommend_n") or 10
    runs = s.get("recommend_runs")
    ref = results.get("reference") or {}
    items = [
        "Recommenders are timed on the user,item pairs of "
        + (d.code(s["data"]) if s.get("data") else "the data file")
        + (f" ({s['pairs']} pairs)" if s.get("pairs") else "")
        + (
            f", leaving out {s['unknown_pairs_left_out']} whose user or item the model does not "
            "know (cold start: the global-mean fallback)"
            if s.get("unknown_pairs_left_out")
            else ""
        )
        + f": at batch 1 one call is {d.code('predict(user, item)')}, at batch N one "
        f"{d.code('predict_many')} of N consecutive pairs (Surprise has no batch call: N "
        f"{d.code('predict')} calls); pairs/s at p50 is N / p50. "
        f"{d.code(f'recommend(user, n={n})')} scores every item the user has not rated and "
        "keeps the best "
        + str(n)
        + " (Surprise: its FAQ recipe, predict on every unrated item); it is timed over the "
        "file's users in turn"
        + (f", {runs} calls" if runs else "")
        + ", once per artifact and target (repeated on each batch size's row).",
        "RMSE and MAE vs ratings compare each artifact's estimates of every pair with the "
        "pairs file's ratings"
        + (
            f"; RMSE and max abs diff vs Surprise compare them with Surprise's own "
            f"{d.code('predict')} ({d.esc(ref.get('source') or '')}), computed on the host"
            if ref.get("kind") == "surprise"
            else ""
        )
        + (
            f"; the vs-reference columns compare them with {d.esc(ref.get('source') or '')}, "
            "a cross-target consistency check (no Surprise pickle was given)"
            if ref.get("kind") == "artifact"
            else ""
        )
        + ". Every pair names a user and an item the blob knows (the bench refuses others), "
        "so these measure the k-NN path, not the global-mean fallback.",
        f"Engine {d.code('c')} ({d.code('c:knn.esb')}) is the C runtime's driver "
        f"({d.code('esb bench')}) on the same blob and pairs: one timed call is "
        f"{d.code('esb_knn_predict')} at batch 1, N of them at batch N (the C runtime has no "
        f"batch call; ids are looked up before timing), and {d.code(f'esb_knn_recommend(n={n})')} "
        "over the same users in the same order; its estimates are scored like the others. "
        "Its peak RSS is the whole driver process; under QEMU it reports the exact bytes of "
        "blob + index + workspace instead.",
    ]
    return items
