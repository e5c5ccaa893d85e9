"""``compress_knn_file`` (what ``edgesparse compress`` runs for a Surprise model), its report
and the CSV reader of user,item[,rating] rows.

The frontend is :mod:`edgesparse.frontends.surprise`, the passes :mod:`edgesparse.passes.knn`.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.errors import InputError, ModelFileError
from edgesparse.frontends.surprise import from_surprise
from edgesparse.ir.knn import KnnIR
from edgesparse.passes.knn import prune_top_k, prune_unused, quantize_sims

__all__ = [
    "KnnCompressReport",
    "compress_knn",
    "compress_knn_file",
    "knn_summary",
    "read_pairs",
]


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
    from edgesparse.formats import esb_knn
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
