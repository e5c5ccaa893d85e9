"""Surprise k-NN recommenders -> :class:`~edgesparse.knn_ir.KnnIR`, the k-NN passes (top-k
pruning, 8-bit similarities) and ``compress_knn_file`` (what ``edgesparse compress`` runs for
a Surprise model).

Surprise is never imported here: the algorithm object comes from the allow-list loader and only
its fitted attributes are read, each checked for type and shape first (a crafted pickle can set
any attribute to anything).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.errors import InputError, ModelFileError, UnsupportedModelError
from edgesparse.knn_ir import KnnIR

__all__ = [
    "SURPRISE_KNN_CLASSES",
    "KnnCompressReport",
    "compress_knn",
    "compress_knn_file",
    "from_surprise",
    "is_surprise_knn",
    "knn_summary",
    "prune_top_k",
    "prune_unused",
    "quantize_sims",
    "read_pairs",
]

SURPRISE_KNN_CLASSES = {
    "KNNBasic": "basic",
    "KNNWithMeans": "means",
    "KNNWithZScore": "zscore",
    "KNNBaseline": "baseline",
}
"""Surprise class name -> variant."""
_MODULE = "surprise.prediction_algorithms.knns"
QUANTIZE_CHOICES = ("int8", "float32", "none")


def _unwrap(obj: Any) -> Any:
    # surprise.dump.dump writes {"predictions": ..., "algo": algo}
    if isinstance(obj, dict) and set(obj) == {"predictions", "algo"}:
        return obj["algo"]
    return obj


def is_surprise_knn(obj: Any) -> bool:
    """True for a Surprise KNNBasic/WithMeans/WithZScore/Baseline (or a ``surprise.dump``)."""
    cls = type(_unwrap(obj))
    return cls.__module__ == _MODULE and cls.__name__ in SURPRISE_KNN_CLASSES


def _bad(what: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"cannot convert this Surprise model: {what} (is it fitted? call algo.fit(trainset) "
        "before pickling it)"
    )


def _float_array(obj: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(obj, np.ndarray) or obj.dtype.kind not in "fiu" or obj.shape != shape:
        raise _bad(f"{name} must be a numeric array of shape {shape}")
    a = obj.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise _bad(f"{name} holds NaN or infinite values")
    return a


def _int(obj: Any, name: str) -> int:
    if isinstance(obj, bool) or not isinstance(obj, (int, np.integer)) or not 0 <= obj < 2**32:
        shown = repr(obj) if isinstance(obj, (int, np.integer)) and obj.bit_length() < 64 else None
        got = shown or ("a huge number" if isinstance(obj, int) else type(obj).__name__)
        raise _bad(f"{name} must be a whole number in [0, 2^32), got {got}")
    return int(obj)


def from_surprise(algo: Any) -> KnnIR:
    """Convert a fitted Surprise KNN algorithm exactly (every positive similarity kept).

    Pickles of Surprise 1.0.x are read by their rules: their trainset keeps the ``offset`` its
    Reader added to a rating scale starting at or below 0, taken off here. Provenance records
    which releases the pickle points to (``surprise_version``) and by whose rules it was read.
    """
    algo = _unwrap(algo)
    if not is_surprise_knn(algo):
        raise UnsupportedModelError(
            f"{type(algo).__name__} is not a Surprise k-NN model; supported: "
            + ", ".join(SURPRISE_KNN_CLASSES)
        )
    variant = SURPRISE_KNN_CLASSES[type(algo).__name__]
    state = vars(algo)
    ts = state.get("trainset")
    sim_options = state.get("sim_options")
    if type(ts).__name__ != "Trainset" or not isinstance(sim_options, dict):
        raise _bad("it has no trainset")
    user_based = sim_options.get("user_based", True)
    if not isinstance(user_based, bool):
        raise _bad("sim_options['user_based'] must be True or False")
    t = vars(ts)
    r2u, r2i, ur, ir_ = (
        t.get("_raw2inner_id_users"),
        t.get("_raw2inner_id_items"),
        t.get("ur"),
        t.get("ir"),
    )
    if not all(isinstance(d, dict) for d in (r2u, r2i, ur, ir_)):
        raise _bad("its trainset lacks ur/ir/raw id maps")
    n_users, n_items = len(r2u), len(r2i)  # type: ignore[arg-type]
    user_ids = _ids_in_inner_order(r2u, "user")  # type: ignore[arg-type]
    item_ids = _ids_in_inner_order(r2i, "item")  # type: ignore[arg-type]
    n_x, n_y = (n_users, n_items) if user_based else (n_items, n_users)
    yr = ir_ if user_based else ur
    sim = _float_array(state.get("sim"), "sim", (n_x, n_x))

    _rating_lists(ur, n_users, n_items, "ur")  # type: ignore[arg-type]
    _rating_lists(ir_, n_items, n_users, "ir")  # type: ignore[arg-type]
    yr_indptr, yr_x, ratings = _flatten(yr, n_y)  # type: ignore[arg-type]

    gm = t.get("_global_mean")
    if gm is None:
        # Surprise's own formula and order (all_ratings walks ur), so equal to the last bit.
        gm = np.mean([r for ratings_u in ur.values() for (_, r) in ratings_u])  # type: ignore[union-attr]
    scale = t.get("rating_scale")
    if not (isinstance(scale, tuple) and len(scale) == 2):
        raise _bad("trainset.rating_scale must be a (low, high) pair")
    lo, hi = _number(scale[0], "trainset.rating_scale"), _number(scale[1], "trainset.rating_scale")
    gm = _number(gm, "the trainset's global mean")
    release, offset = _surprise_release(state, t)
    if offset:
        # Surprise 1.0.x stored the ratings shifted up by trainset.offset and took it off each
        # estimate in predict(); shifted back here once, the estimates are the same.
        ratings = ratings - offset
        gm -= offset
    extra: dict[str, Any] = {}
    if variant in ("means", "zscore"):
        extra["means"] = _float_array(state.get("means"), "means", (n_x,)) - offset
    if variant == "zscore":
        extra["sigmas"] = _float_array(state.get("sigmas"), "sigmas", (n_x,))
    if variant == "baseline":
        extra["bu"] = _float_array(state.get("bu"), "bu", (n_users,))
        extra["bi"] = _float_array(state.get("bi"), "bi", (n_items,))

    # Only positive similarities matter (Surprise skips sim <= 0), so only they are kept.
    mask = sim > 0
    indptr = np.zeros(n_x + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=indptr[1:])
    rows, cols = np.nonzero(mask)
    sim_name = sim_options.get("name", "msd")
    if not isinstance(sim_name, str):
        raise _bad(f"sim_options['name'] must be a similarity name, got {type(sim_name).__name__}")
    try:
        return KnnIR(
            variant=variant,
            user_based=user_based,
            k=_int(state.get("k"), "k"),
            min_k=_int(state.get("min_k"), "min_k"),
            sim_indptr=indptr,
            sim_indices=cols.astype(np.int32),
            sim_values=sim[rows, cols],
            yr_indptr=yr_indptr,
            yr_x=yr_x.astype(np.int32),
            ratings=ratings,
            global_mean=gm,
            rating_scale=(lo, hi),
            user_ids=user_ids,
            item_ids=item_ids,
            provenance={
                "source": f"surprise.{type(algo).__name__}",
                "similarity": str(sim_name),
                "user_based": str(user_based),
                "surprise_version": release,
                "surprise_rules": _rules_note(release, offset),
            },
            **extra,
        )
    except UnsupportedModelError:
        raise
    except Exception as exc:  # IRError: the object is not what a fitted Surprise model is
        raise _bad(str(exc)) from None


def _number(obj: Any, name: str) -> float:
    """A finite real number (a bool or a number too large for a float is not one)."""
    if isinstance(obj, bool) or not isinstance(obj, (int, float, np.integer, np.floating)):
        raise _bad(f"{name} must be numbers, got {type(obj).__name__}")
    try:
        value = float(obj)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise _bad(f"{name} must be finite numbers")
    return value


def _rating_lists(lists: dict[Any, Any], n: int, n_other: int, name: str) -> None:
    """Check ``trainset.ur``/``ir``: keys exactly the inner ids 0..n-1, each value a list of
    (inner id of the other side, finite rating) pairs. Both are checked, though one is
    converted: Surprise walks ``ur`` for the global mean, and keys that are not the inner
    ids would make every list look empty and the model predict only the mean."""
    if len(lists) != n or any(
        isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n for k in lists
    ):
        raise _bad(f"trainset.{name} must map each inner id 0..{n - 1} to its ratings")
    for key, row in lists.items():
        if not isinstance(row, list):
            raise _bad(f"trainset rating list {key} is not a list")
        for entry in row:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise _bad(f"trainset rating list {key} holds {type(entry).__name__}, not pairs")
            other, rating = entry
            if isinstance(other, bool) or not isinstance(other, (int, np.integer)):
                raise _bad("trainset ratings are not (inner id, number) pairs")
            if not 0 <= other < n_other:
                raise _bad("trainset ratings name inner ids out of range")
            _number(rating, "trainset ratings")


def _flatten(lists: dict[int, list[Any]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, ids, ratings) of checked rating lists, rows in inner-id order and each row in
    Surprise's order (it breaks ties between equal similarities)."""
    counts = np.array([len(lists[y]) for y in range(n)], dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    ids = np.array([int(x) for y in range(n) for x, _ in lists[y]], dtype=np.int64)
    ratings = np.array([float(r) for y in range(n) for _, r in lists[y]], dtype=np.float64)
    return indptr, ids, ratings


# Surprise writes no version into its pickles; what the state holds tells the releases apart.
# 1.0.x trainsets keep the offset their Reader added to a rating scale starting at or below 0
# (gone in 1.1.0); 1.0.5 and 1.0.6 algorithms keep skip_train (the train() -> fit() bridge).
SURPRISE_1_0_OLD = "1.0.4 or older"
SURPRISE_1_0_NEW = "1.0.5-1.0.6"
SURPRISE_1_1 = "1.1 or newer"


def _surprise_release(state: dict[str, Any], trainset: dict[str, Any]) -> tuple[str, float]:
    """(the Surprise releases whose pickle this is, the trainset's rating offset)."""
    if "offset" not in trainset:
        return SURPRISE_1_1, 0.0
    release = SURPRISE_1_0_NEW if "skip_train" in state else SURPRISE_1_0_OLD
    offset = trainset["offset"]
    if (
        isinstance(offset, bool)
        or not isinstance(offset, (int, float, np.integer, np.floating))
        or not math.isfinite(offset)
    ):
        raise UnsupportedModelError(
            f"cannot convert this Surprise model: written by Surprise {release}, whose "
            f"trainset.offset must be a number, got {offset!r}"
        )
    return release, float(offset)


def _rules_note(release: str, offset: float) -> str:
    if release == SURPRISE_1_1:
        return "read by the rules of Surprise 1.1 (its pickles record no version)"
    shift = f"ratings shifted back by trainset.offset={offset:g}" if offset else "offset 0"
    return f"read by the rules of Surprise 1.0.x ({shift})"


def _ids_in_inner_order(raw2inner: dict[Any, Any], what: str) -> tuple[Any, ...]:
    n = len(raw2inner)
    out: list[Any] = [None] * n
    for raw, inner in raw2inner.items():
        if isinstance(inner, bool) or not isinstance(inner, int) or not 0 <= inner < n:
            raise _bad(f"the {what} id map has inner id {inner!r}")
        if out[inner] is not None:
            raise _bad(f"the {what} id map gives inner id {inner} twice")
        if isinstance(raw, np.generic):
            raw = raw.item()
        out[inner] = raw
    return tuple(out)


# ----------------------------------------------------------------------------------------
# Passes
# ----------------------------------------------------------------------------------------
def prune_top_k(ir: KnnIR, neighbours: int) -> KnnIR:
    """Keep each row's ``neighbours`` largest similarities (plus the diagonal, which only
    matters when predicting a rating the user already gave). Ties: lower column first."""
    if neighbours < 0:
        raise InputError(f"neighbours must be >= 0, got {neighbours}")
    sims = ir.sim_float()
    keep = np.zeros(ir.sim_nnz, dtype=bool)
    for x in range(ir.n_x):
        a, b = ir.sim_indptr[x], ir.sim_indptr[x + 1]
        cols = ir.sim_indices[a:b]
        diag = cols == x
        keep[a:b] |= diag
        off = np.flatnonzero(~diag)
        if off.size > neighbours:
            off = off[np.argsort(-sims[a:b][off], kind="stable")[:neighbours]]
        keep[a + off] = True
    return _with_sims(ir, keep, ir.sim_values[keep], ir.sim_scales, f"top{neighbours}")


def prune_unused(ir: KnnIR) -> KnnIR:
    """Drop every similarity no prediction can use: sim(x, x2) is kept only when x2 is among
    the k most similar raters of some y that x2 rated (Surprise's ranking, ties in rating
    order). Every prediction is unchanged, since the ratings are fixed; costs one sort of
    the rated pairs per row (seconds for thousands of rows)."""
    sims = ir.sim_float()
    y_of = np.repeat(np.arange(ir.n_y), np.diff(ir.yr_indptr))
    position = np.arange(ir.yr_x.size)
    keep = np.zeros(ir.sim_nnz, dtype=bool)
    dense = np.zeros(ir.n_x)
    for x in range(ir.n_x):
        a, b = ir.sim_indptr[x], ir.sim_indptr[x + 1]
        cols = ir.sim_indices[a:b]
        dense[cols] = sims[a:b]
        s = dense[ir.yr_x]
        dense[cols] = 0.0
        m = s > 0
        ys, ss, ps, xs = y_of[m], s[m], position[m], ir.yr_x[m]
        order = np.lexsort((ps, -ss, ys))  # per y: by similarity, ties in rating order
        ys_sorted = ys[order]
        rank = np.arange(order.size) - np.searchsorted(ys_sorted, ys_sorted, side="left")
        used = np.unique(xs[order][rank < ir.k])
        keep[a + np.searchsorted(cols, used)] = True
    return _with_sims(ir, keep, ir.sim_values[keep], ir.sim_scales, "unused")


def quantize_sims(ir: KnnIR, how: str) -> KnnIR:
    """``"int8"``: 8-bit similarities, ``q = round(s / scale)`` in 1..255 with one float32
    scale per row (similarities are positive, so the sign bit is spent on precision);
    ``"float32"``; ``"none"``: unchanged."""
    if how not in QUANTIZE_CHOICES:
        raise InputError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {how!r}")
    if how == "none":
        return ir
    sims = ir.sim_float()
    keep = np.ones(ir.sim_nnz, dtype=bool)
    if how == "float32":
        s32 = sims.astype(np.float32)
        keep = s32 > 0  # a similarity below float32's range would become 0: drop it
        return _with_sims(ir, keep, s32[keep], None, "float32")
    counts = np.diff(ir.sim_indptr)
    row_max = np.zeros(ir.n_x)
    nonempty = counts > 0
    row_max[nonempty] = np.maximum.reduceat(sims, ir.sim_indptr[:-1][nonempty])
    scales = np.where(row_max > 0, row_max / 255.0, 1.0).astype(np.float32)
    per = np.repeat(scales.astype(np.float64), counts)
    # A tiny similarity still counts as a neighbour in Surprise: keep it at code 1, not 0.
    q = np.clip(np.rint(sims / per), 1, 255).astype(np.uint8)
    return _with_sims(ir, keep, q, scales, "uint8/row")


def _with_sims(
    ir: KnnIR, keep: np.ndarray, values: np.ndarray, scales: np.ndarray | None, step: str
) -> KnnIR:
    rows = np.repeat(np.arange(ir.n_x), np.diff(ir.sim_indptr))[keep]
    indptr = np.zeros(ir.n_x + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=ir.n_x), out=indptr[1:])
    prov = dict(ir.provenance)
    prov["passes"] = f"{prov['passes']},{step}" if prov.get("passes") else step
    return dataclasses.replace(
        ir,
        sim_indptr=indptr,
        sim_indices=ir.sim_indices[keep],
        sim_values=values,
        sim_scales=scales,
        provenance=prov,
    )


def compress_knn(
    algo: Any, *, neighbours: int | str | None = None, quantize: str = "int8"
) -> tuple[KnnIR, KnnIR]:
    """(exact, compressed): optionally prune to ``neighbours`` per row, then quantize.

    The default keeps every positive similarity (``"all"``); ``"exact"`` drops only those no
    prediction can use (:func:`prune_unused`, lossless, slower to compress). Pruning each row
    to the model's own k is *not* free: Surprise takes the k most similar among the users who
    rated the item asked about, who are mostly outside a user's overall top k (measured on
    generated data: RMSE 0.5-30 % worse), so it is opt-in, with --check-data to show its cost.
    """
    exact = from_surprise(algo)
    ir = exact
    if neighbours == "exact":
        ir = prune_unused(ir)
    elif neighbours is not None and neighbours != "all":
        if isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 1:
            raise InputError(
                f"neighbours must be a whole number >= 1, 'all' or 'exact', not {neighbours!r}"
            )
        ir = prune_top_k(ir, neighbours)
    return exact, quantize_sims(ir, quantize)


# ----------------------------------------------------------------------------------------
# Files, the report
# ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KnnCompressReport:
    """What compressing a Surprise model did: sizes, kept similarities, accuracy check."""

    source: str
    source_bytes: int
    output: str
    output_bytes: int
    estimator: str
    n_users: int
    n_items: int
    n_ratings: int
    k: int
    sims_before: int
    sims_after: int
    sim_dtype: str
    check_rows: int | None = None
    rmse_before: float | None = None
    rmse_after: float | None = None
    mae_before: float | None = None
    mae_after: float | None = None
    max_abs_delta: float | None = None
    format: str = "esb"
    surprise_version: str | None = None
    """The Surprise releases that wrote the model, as told by what its pickle holds."""
    surprise_rules: str | None = None
    """By which release's rules it was read (and what that changed)."""

    @property
    def ratio(self) -> float:
        """Original bytes / output bytes."""
        return self.source_bytes / max(self.output_bytes, 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, the ratio included."""
        return {**dataclasses.asdict(self), "ratio": self.ratio}


def knn_summary(report: KnnCompressReport) -> str:
    """The short summary ``edgesparse compress`` prints for a k-NN model."""

    def kib(n: int) -> str:
        return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"

    rows = [
        (
            "model",
            f"{report.estimator}  {report.n_users} users x {report.n_items} items, "
            f"{report.n_ratings} ratings, k={report.k}",
        ),
        ("original", f"{kib(report.source_bytes)}  ({report.source})"),
        ("output", f"{kib(report.output_bytes)}  ({report.output})  ratio {report.ratio:.1f}x"),
        ("similarities", f"{report.sims_before} positive -> {report.sims_after} kept"),
        ("similarity dtype", report.sim_dtype),
    ]
    if report.surprise_version is not None:
        rows.append(
            ("written by", f"Surprise {report.surprise_version}; {report.surprise_rules or ''}")
        )
    if report.check_rows is not None:
        rows.append(("check rows", str(report.check_rows)))
        rows.append(("RMSE", f"{report.rmse_before:.4f} -> {report.rmse_after:.4f}"))
        rows.append(("MAE", f"{report.mae_before:.4f} -> {report.mae_after:.4f}"))
        rows.append(("max |d estimate|", f"{report.max_abs_delta:.3g}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def read_pairs(
    path: str | os.PathLike[str],
    *,
    user_ids: tuple[Any, ...] = (),
    item_ids: tuple[Any, ...] = (),
    columns: str = "user,item",
) -> tuple[list[tuple[Any, Any]], np.ndarray | None]:
    """Read ``user,item[,rating]`` rows from a CSV file (a header row is skipped when its
    rating column is not a number). Ids are read as text and turned into ints or floats when
    the model's ids (``user_ids``/``item_ids``) are numbers. Returns (pairs, ratings or None).
    ``columns`` is what the caller needs, for the message when the file is not such a CSV.
    """
    from edgesparse.sniff import sniff

    p = Path(path)
    expected = f"a k-NN recommender takes a CSV of {columns} rows, one per line (header optional)"
    kind = sniff(p)
    if kind is not None and not kind.text:
        raise InputError(f"{p} is {kind.what}, not a CSV of {columns} rows; {expected}")
    from edgesparse.data import check_text_size

    check_text_size(p, what="pairs file")
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except FileNotFoundError:
        raise ModelFileError(f"pairs file not found: {p} (check the path)") from None
    except IsADirectoryError:
        raise ModelFileError(f"pairs file is a directory: {p}; {expected}") from None
    except UnicodeDecodeError:
        raise InputError(f"{p} is not a text file; {expected}") from None
    except (OSError, csv.Error) as exc:
        raise InputError(f"cannot read pairs file {p}: {exc}") from None
    if rows and len(rows[0]) >= 2 and rows[0][0].strip().lower() in ("user", "uid", "user_id"):
        rows = rows[1:]
    if not rows:
        raise InputError(f"{p} holds no pairs: give one 'user,item[,rating]' row per line")
    width = len(rows[0])
    to_u, to_i = _id_parser(user_ids), _id_parser(item_ids)
    pairs, ratings = [], []
    for n, row in enumerate(rows, start=1):
        if len(row) != width or width not in (2, 3):
            raise InputError(
                f"{p}, row {n}: expected 'user,item' or 'user,item,rating' on every row, "
                f"got {len(row)} fields"
            )
        pairs.append((to_u(row[0].strip()), to_i(row[1].strip())))
        if width == 3:
            try:
                ratings.append(float(row[2]))
            except ValueError:
                raise InputError(f"{p}, row {n}: rating {row[2]!r} is not a number") from None
    return pairs, (np.array(ratings) if width == 3 else None)


def _id_parser(ids: tuple[Any, ...]) -> Any:
    if ids and all(isinstance(v, int) for v in ids):
        return lambda s: int(s) if s.lstrip("-").isdigit() else s
    if ids and all(isinstance(v, float) for v in ids):

        def num(s: str) -> Any:
            try:
                return float(s)
            except ValueError:
                return s

        return num
    return lambda s: s


def compress_knn_file(
    algo: Any,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    neighbours: int | str | None = None,
    quantize: str = "int8",
    check_data: str | os.PathLike[str] | None = None,
) -> KnnCompressReport:
    """Compress a loaded Surprise model (read from ``source``) into ``output`` (.esb v2).

    ``check_data`` is a CSV of ``user,item,rating`` rows: the report then gives RMSE and MAE of
    the exact model and of the compressed one (both run by edgesparse's runtime, which equals
    Surprise's ``predict`` for the exact model).
    """
    from edgesparse.fileio import atomic_write_bytes
    from edgesparse.formats import knn as esb_knn
    from edgesparse.runtime.knn import KnnModel

    out, src = Path(output), Path(source)
    exact, ir = compress_knn(algo, neighbours=neighbours, quantize=quantize)
    data = esb_knn.encode(ir)
    check: dict[str, Any] = {}
    if check_data is not None:
        pairs, truth = read_pairs(
            check_data,
            user_ids=exact.user_ids,
            item_ids=exact.item_ids,
            columns="user,item,rating",
        )
        if truth is None:
            raise InputError(
                f"check data {check_data} has no rating column: give 'user,item,rating' rows"
            )
        before = KnnModel(exact).predict_many(pairs)
        after = KnnModel(esb_knn.decode(data)).predict_many(pairs)
        check = {
            "check_rows": len(pairs),
            "rmse_before": math.sqrt(float(np.mean((before - truth) ** 2))),
            "rmse_after": math.sqrt(float(np.mean((after - truth) ** 2))),
            "mae_before": float(np.mean(np.abs(before - truth))),
            "mae_after": float(np.mean(np.abs(after - truth))),
            "max_abs_delta": float(np.max(np.abs(after - before))),
        }
    atomic_write_bytes(out, data)
    return KnnCompressReport(
        source=str(src),
        source_bytes=src.stat().st_size,
        output=str(out),
        output_bytes=len(data),
        estimator=exact.provenance["source"],
        n_users=exact.n_users,
        n_items=exact.n_items,
        n_ratings=exact.n_ratings,
        k=exact.k,
        sims_before=exact.sim_nnz,
        sims_after=ir.sim_nnz,
        sim_dtype=ir.sim_dtype,
        surprise_version=exact.provenance.get("surprise_version"),
        surprise_rules=exact.provenance.get("surprise_rules"),
        **check,
    )
