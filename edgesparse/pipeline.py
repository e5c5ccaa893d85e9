"""``compress_file``: one model file in, one compressed file out, for every model kind.

Stages, each a function here: load (the allow-list loader) -> frontend (estimator to IR) ->
passes (prune and quantize, or the accuracy-aware search; top-k and 8-bit similarities for a
k-NN recommender) -> format (``.esb`` or ONNX bytes) -> check (the bytes that will be written,
against the original on the user's rows) -> write (atomic). Nothing is written unless every
stage before it succeeded. What to do is one frozen
:class:`~edgesparse.options.CompressOptions` (one field per option of ``edgesparse compress``,
every combination checked there); what was done is one :class:`CompressReport`, whatever the
model kind.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgesparse import frontends
from edgesparse.api import (
    CheckResult,
    check_fidelity,
    compress_factors,
    compress_knn,
    compress_quantized,
    compress_to_budget,
)
from edgesparse.data import Dataset, load_dataset, read_pairs
from edgesparse.errors import InputError
from edgesparse.fileio import atomic_write_bytes
from edgesparse.formats import knn as knn_format
from edgesparse.frontends.surprise import is_surprise_knn
from edgesparse.frontends.surprise_factors import is_surprise_factors
from edgesparse.ir import KnnIR, LinearIR
from edgesparse.ir.text import TextFeaturizer
from edgesparse.loader import load_model
from edgesparse.options import FORMATS, CompressOptions, PathLike
from edgesparse.passes.budget_report import uncertified_message
from edgesparse.passes.fidelity import Fidelity
from edgesparse.rawcalib import RawCalibration, read_raw_calibration, stage_agreement
from edgesparse.rawcheck import RawCheck, read_raw_check
from edgesparse.runtime.model import Model

__all__ = [
    "FORMATS",
    "CompressOptions",
    "CompressReport",
    "FactorDetails",
    "KnnDetails",
    "LinearDetails",
    "Progress",
    "compress_file",
]

Progress = Callable[[str, int, int], None]
"""``progress(message, done, total)``: called before each step, ``done`` steps finished."""


# ----------------------------------------------------------------------------------------
# What was done
# ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class LinearDetails:
    """What compressing a linear model did: weights, storage, fidelity, the budget search."""

    shape: tuple[int, int]
    nnz_before: int
    nnz_after: int
    quantization: str
    passes: str
    check: CheckResult | None
    format_detail: str = ""
    column_scaling: str = "none"
    estimate: dict[str, Any] | None = None
    """The default's int8 fidelity, measured on the check rows or probe rows."""
    precision_note: str | None = None
    budget: dict[str, Any] | None = None
    """The accuracy-aware search's report (see :mod:`edgesparse.passes.budget_report`)."""
    sklearn_version: str | None = None
    """The scikit-learn release that wrote the model (None for non-scikit-learn models)."""
    sklearn_rules: str | None = None
    """By which release's rules edgesparse read it, and what those rules changed."""
    input_kind: str = "features"
    """What the model reads: ``features``, or through its input stage ``documents`` (text) or
    ``records`` (tabular): what ``--check-data`` holds."""

    FORMAT_BEFORE: ClassVar[str] = "format_detail"
    """Where ``format`` goes among these fields in :meth:`CompressReport.to_dict`."""

    @property
    def sparsity_before(self) -> float:
        """Fraction of zero weights in the original model."""
        return 1.0 - self.nnz_before / (self.shape[0] * self.shape[1])

    @property
    def sparsity_after(self) -> float:
        """Fraction of zero weights in the compressed model."""
        return 1.0 - self.nnz_after / (self.shape[0] * self.shape[1])


@dataclasses.dataclass(frozen=True, kw_only=True)
class KnnDetails:
    """What compressing a Surprise k-NN recommender did: kept similarities, rating check."""

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
    surprise_version: str | None = None
    """The Surprise releases that wrote the model, as told by what its pickle holds."""
    surprise_rules: str | None = None
    """By which release's rules it was read (and what that changed)."""

    FORMAT_BEFORE: ClassVar[str] = "surprise_version"
    """Where ``format`` goes among these fields in :meth:`CompressReport.to_dict`."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FactorDetails:
    """What compressing a Surprise matrix-factorization recommender did: factor storage,
    rating check."""

    n_users: int
    n_items: int
    n_factors: int
    factor_dtype: str
    check_rows: int | None = None
    rmse_before: float | None = None
    rmse_after: float | None = None
    mae_before: float | None = None
    mae_after: float | None = None
    max_abs_delta: float | None = None
    surprise_version: str | None = None
    """The Surprise releases that wrote the model, as told by what its pickle holds."""
    surprise_rules: str | None = None
    """By which release's rules it was read (and what that changed)."""

    FORMAT_BEFORE: ClassVar[str] = "surprise_version"
    """Where ``format`` goes among these fields in :meth:`CompressReport.to_dict`."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompressReport:
    """What :func:`compress_file` did, for every model kind: the files and their sizes, and
    the kind's details in ``linear``, ``knn`` or ``factors`` (exactly one of them is set)."""

    source: str
    source_bytes: int
    output: str
    output_bytes: int
    estimator: str
    format: str = "esb"
    linear: LinearDetails | None = None
    knn: KnnDetails | None = None
    factors: FactorDetails | None = None

    def __post_init__(self) -> None:
        if sum(d is not None for d in (self.linear, self.knn, self.factors)) != 1:
            raise ValueError("a CompressReport has linear, k-NN or factor details (exactly one)")

    @property
    def ratio(self) -> float:
        """Original bytes / output bytes."""
        return self.source_bytes / max(self.output_bytes, 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the files, then the kind's details flat, derived figures last
        (the ``--json`` output of ``edgesparse compress``)."""
        details: LinearDetails | KnnDetails | FactorDetails = (
            self.linear or self.knn or self.factors  # type: ignore[assignment]
        )
        out = {f: getattr(self, f) for f in ("source", "source_bytes", "output", "output_bytes")}
        out["estimator"] = self.estimator
        for key, value in dataclasses.asdict(details).items():
            if key == details.FORMAT_BEFORE:
                out["format"] = self.format
            out[key] = value
        out["ratio"] = self.ratio
        if self.linear is not None:
            out.update(
                sparsity_before=self.linear.sparsity_before,
                sparsity_after=self.linear.sparsity_after,
                shape=list(self.linear.shape),
            )
        return out


# ----------------------------------------------------------------------------------------
# The stages
# ----------------------------------------------------------------------------------------
class _Steps:
    """Announces the steps of one call to an optional :data:`Progress` callback."""

    def __init__(self, progress: Progress | None, *, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message, self.done, self.total)
        self.done += 1


def compress_file(options: CompressOptions, *, progress: Progress | None = None) -> CompressReport:
    """Load ``options.source`` safely, compress it, check it on ``options.check_data``, write
    ``options.output`` (atomically, and only after every stage before succeeded).

    A Surprise k-NN recommender is compressed to ``.esb`` (``neighbours`` per row,
    ``quantize`` of the similarities, ``check_data`` a ``user,item,rating`` CSV); anything
    else goes through the linear frontends (see :class:`CompressOptions`). The check runs
    the artifact that will be written (the ONNX one in onnxruntime). When not even the
    unpruned model can be certified within a budget, nothing is written (unless ``force``).

    ``progress`` (see :data:`Progress`) is told about each step (loading, compressing or the
    budget search, encoding, the check, writing), which can take seconds on wide models.
    """
    fmt = options.output_format()
    options.check_output(fmt)
    src = Path(options.source)
    steps = _Steps(progress, total=4 + (options.check_data is not None))
    steps(f"loading {src.name}")
    estimator = load_model(src)
    if is_surprise_knn(estimator):
        return _knn_file(options, estimator, fmt, steps)
    if is_surprise_factors(estimator):
        return _factors_file(options, estimator, fmt, steps)
    return _linear_file(options, estimator, fmt, steps)


def _knn_file(options: CompressOptions, algo: Any, fmt: str, steps: _Steps) -> CompressReport:
    """A Surprise recommender: passes, ``.esb``, the rating check, the write: one step."""
    options.check_knn(fmt)
    steps.total = 2
    steps("compressing the k-NN recommender" + (" and checking it" if options.check_data else ""))
    src, out = Path(options.source), Path(options.output)
    exact, ir = compress_knn(
        algo, neighbours=options.neighbours, quantize=options.quantize or "int8"
    )
    data = knn_format.encode(ir)
    check = {} if options.check_data is None else _knn_check(exact, data, options.check_data)
    atomic_write_bytes(out, data)
    details = KnnDetails(
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
    return CompressReport(
        source=str(src),
        source_bytes=src.stat().st_size,
        output=str(out),
        output_bytes=len(data),
        estimator=exact.provenance["source"],
        knn=details,
    )


def _knn_check(exact: KnnIR, data: bytes, check_data: PathLike) -> dict[str, Any]:
    """RMSE and MAE of the exact and of the encoded model on ``user,item,rating`` rows (both
    run by edgesparse's runtime, which equals Surprise's ``predict`` for the exact model)."""
    from edgesparse.runtime.knn import KnnModel

    return _rating_check(
        KnnModel(exact),
        KnnModel(knn_format.decode(data)),
        exact.user_ids,
        exact.item_ids,
        check_data,
    )


def _factors_file(options: CompressOptions, algo: Any, fmt: str, steps: _Steps) -> CompressReport:
    """A Surprise matrix-factorization recommender: the pass, ``.esb`` version 3, the rating
    check, the write: one step."""
    from edgesparse.formats import factors as factors_format
    from edgesparse.runtime.factors import FactorModel

    options.check_knn(fmt, what="matrix-factorization")
    steps.total = 2
    steps("compressing the recommender" + (" and checking it" if options.check_data else ""))
    src, out = Path(options.source), Path(options.output)
    exact, ir = compress_factors(algo, quantize=options.quantize or "int8")
    data = factors_format.encode(ir)
    check = {}
    if options.check_data is not None:
        after = FactorModel(factors_format.decode(data))
        check = _rating_check(
            FactorModel(exact), after, exact.user_ids, exact.item_ids, options.check_data
        )
    atomic_write_bytes(out, data)
    details = FactorDetails(
        n_users=exact.n_users,
        n_items=exact.n_items,
        n_factors=exact.n_factors,
        factor_dtype=ir.factor_dtype,
        surprise_version=exact.provenance.get("surprise_version"),
        surprise_rules=exact.provenance.get("surprise_rules"),
        **check,
    )
    return CompressReport(
        source=str(src),
        source_bytes=src.stat().st_size,
        output=str(out),
        output_bytes=len(data),
        estimator=exact.provenance["source"],
        factors=details,
    )


def _rating_check(
    before_model: Any,
    after_model: Any,
    user_ids: tuple[Any, ...],
    item_ids: tuple[Any, ...],
    check_data: PathLike,
) -> dict[str, Any]:
    """RMSE and MAE of two recommenders (``predict_many``) on ``user,item,rating`` rows."""
    pairs, truth = read_pairs(
        check_data, user_ids=user_ids, item_ids=item_ids, columns="user,item,rating"
    )
    if truth is None:
        raise InputError(
            f"check data {check_data} has no rating column: give 'user,item,rating' rows"
        )
    before = before_model.predict_many(pairs)
    after = after_model.predict_many(pairs)
    return {
        "check_rows": len(pairs),
        "rmse_before": math.sqrt(float(np.mean((before - truth) ** 2))),
        "rmse_after": math.sqrt(float(np.mean((after - truth) ** 2))),
        "mae_before": float(np.mean(np.abs(before - truth))),
        "mae_after": float(np.mean(np.abs(after - truth))),
        "max_abs_delta": float(np.max(np.abs(after - before))),
    }


@dataclasses.dataclass(frozen=True)
class _Compressed:
    """What the passes stage gives the later ones."""

    ir: LinearIR
    budget: dict[str, Any] | None = None
    dataset: Dataset | None = None
    """The check rows, when the passes already read them (to measure the default on)."""
    estimate: dict[str, Any] | None = None
    precision_note: str | None = None
    raw: RawCheck | None = None
    """The check rows of a model with an input stage (documents or records), when read."""
    calibration: RawCalibration | None = None
    """The budget's calibration rows of a model with an input stage."""


def _check_stage(options: CompressOptions, original: LinearIR, fmt: str) -> None:
    """The options that depend on the model's input stage: output format, calibration form."""
    feat = original.featurizer
    stage = None if feat is None else "text" if isinstance(feat, TextFeaturizer) else "tabular"
    if stage is not None:
        source = original.provenance.get("source", "the model")
        options.check_input_stage(fmt, source_class=source, stage=stage, featurizer=feat)
    options.check_calibration(stage=stage)


def _linear_file(
    options: CompressOptions, estimator: Any, fmt: str, steps: _Steps
) -> CompressReport:
    """A linear model: frontend, passes, format, check, write."""
    options.check_linear()
    original = frontends.to_linear_ir(estimator)
    _check_stage(options, original, fmt)
    calibration = options.calibration
    steps(
        f"searching the sparsest model within the budget on {Path(calibration).name}"
        if options.budgeted and calibration is not None
        else "pruning and quantizing"
    )
    done = (
        _budget_passes(options, estimator, original)
        if options.budgeted
        else _passes(options, original)
    )
    steps("building the ONNX graph" if fmt == "onnx" else "encoding the .esb blob")
    data, runner, detail = _encode(done.ir, fmt, options)
    if done.calibration is not None and done.budget is not None:
        done.budget["input_stage"] = stage_agreement(
            estimator=estimator,
            original=original,
            certified=done.ir,
            runner=runner,
            calibration=done.calibration,
        )
    check = _check(options, estimator, original, done, runner, steps)
    _write(options, data, done.budget, steps)
    src = Path(options.source)
    details = LinearDetails(
        shape=original.shape,
        nnz_before=original.nnz,
        nnz_after=done.ir.nnz,
        quantization=done.ir.quantization,
        passes=done.ir.provenance.get("passes", ""),
        check=check,
        format_detail=detail,
        column_scaling=done.ir.column_scaling,
        estimate=done.estimate,
        precision_note=done.precision_note,
        input_kind=_input_kind(original),
        budget=done.budget,
        **_provenance_versions(original),
    )
    return CompressReport(
        source=str(src),
        source_bytes=src.stat().st_size,
        output=str(Path(options.output)),
        output_bytes=len(data),
        estimator=original.provenance.get("source", type(estimator).__name__),
        format=fmt,
        linear=details,
    )


def _passes(options: CompressOptions, original: LinearIR) -> _Compressed:
    """Plain compression: the safe default measures int8 on the check rows when given."""
    dataset, raw, rows = None, None, None
    if options.check_data is not None and original.featurizer is not None:
        raw = read_raw_check(options.check_data, featurizer=original.featurizer)
        rows = raw.features  # the stage's feature rows: what the default measures on
    elif options.check_data is not None:
        dataset = load_dataset(options.check_data, n_features=original.n_features)
        rows = dataset.X
    done = compress_quantized(original, options=options.quantize_options(), data=rows)
    estimate = None if done.fidelity is None else _fidelity_dict(done.fidelity)
    return _Compressed(done.ir, None, dataset, estimate, done.note, raw)


def _budget_passes(options: CompressOptions, estimator: Any, original: LinearIR) -> _Compressed:
    """Accuracy-aware compression: the search, and a refusal (unless ``force``) when not
    even the unpruned model can be certified. A model with an input stage reads labelled
    documents or records (:mod:`edgesparse.rawcalib`) and is searched on its stage's rows."""
    assert options.calibration is not None  # check_linear said so
    raw = None
    if original.featurizer is not None:
        raw = read_raw_calibration(options.calibration, ir=original)
        X, y = raw.raw, raw.y
    else:
        # Labels are optional here (an agreement budget needs none; the search says when the
        # budget does): y in the .npz, or a table with one column more than the model's.
        dataset = load_dataset(options.calibration, n_features=original.n_features)
        X, y = dataset.X, dataset.y
    result = compress_to_budget(estimator, X, y, options=options.budget_options())
    report = dict(result.report)
    report["calibration"] = {"file": str(options.calibration), **report["calibration"]}
    if not result.met:
        if not options.force:
            raise InputError(uncertified_message(report, holdout=options.holdout))
        report["forced"] = True
    return _Compressed(result.ir, budget=report, calibration=raw)


def _encode(ir: LinearIR, fmt: str, options: CompressOptions) -> tuple[bytes, Any, str]:
    """The output bytes, the runtime model that runs exactly them, and a one-line description."""
    if fmt == "esb":
        from edgesparse.formats import esb

        return esb.encode(ir), Model(ir), ".esb"
    from edgesparse.formats import onnx as onnx_format
    from edgesparse.runtime.onnx_model import OnnxModel

    if options.onnx_int8 is not None and ir.values.dtype != np.int8:
        raise InputError(
            f"--onnx-int8 {options.onnx_int8} needs int8 weights in every row (--quantize int8)"
        )
    opset = onnx_format.default_opset(ir) if options.opset is None else options.opset
    form = options.onnx_int8 or "dequantize"
    fed = options.onnx_input
    if fed == "auto":
        fed = onnx_format.default_input(ir, opset=opset, int8_form=form)
    data = onnx_format.encode(
        ir, opset=opset, sparse=options.onnx_sparse, int8_form=form, input=fed
    )
    detail = f"ONNX opset {opset}" + (", CSR input" if fed == "csr" else "")
    product = "float32 gather-scatter" if fed == "csr" else "float32 MatMul"
    if ir.values.dtype == np.int16:
        detail += f", int8/int16 rows dequantized at load ({product})"
    elif ir.values.dtype == np.int8:
        detail += (
            f", int8 dequantized at load ({product})"
            if form == "dequantize"
            else ", int8 via MatMulInteger"
        )
    detail += ", sparse weights" if options.onnx_sparse else ""
    return data, OnnxModel.from_bytes(data), detail


def _check(
    options: CompressOptions,
    estimator: Any,
    original: LinearIR,
    done: _Compressed,
    runner: Any,
    steps: _Steps,
) -> CheckResult | None:
    """The encoded model (run by ``runner``) against the original on the check rows."""
    check_data = options.check_data
    if check_data is None:
        return None
    calibration, budget = options.calibration, done.budget
    if budget is not None and calibration is not None:
        if Path(check_data).resolve() == Path(calibration).resolve():
            budget.setdefault("warnings", []).append(
                "--check-data is the calibration file: its fit rows tuned the search"
                + (" and the refit" if budget["chosen"]["refit"] else "")
                + ", so its check figures are not held-out; use separate rows"
            )
    steps(f"checking against the original on {Path(check_data).name}")
    if original.featurizer is not None:
        raw = done.raw  # read by the safe default; the budget's calibration is another file
        if raw is None:
            raw = read_raw_check(check_data, featurizer=original.featurizer)
        return _raw_check(estimator, original, done, runner, raw)
    dataset = done.dataset
    if dataset is None:
        dataset = load_dataset(check_data, n_features=original.n_features)
    return check_fidelity(
        estimator=estimator, original=original, compressed=done.ir, dataset=dataset, model=runner
    )


def _input_kind(ir: LinearIR) -> str:
    if ir.featurizer is None:
        return "features"
    return "documents" if isinstance(ir.featurizer, TextFeaturizer) else "records"


def _raw_check(
    estimator: Any, original: LinearIR, done: _Compressed, runner: Any, raw: RawCheck
) -> CheckResult:
    """The check of a model with an input stage, on the documents or records it reads."""
    own = raw.reference_input is not None
    result = check_fidelity(
        estimator=estimator if own else original,
        original=original,
        compressed=done.ir,
        dataset=Dataset(X=raw.raw, y=None),
        model=runner,
        reference_input=raw.reference_input,
    )
    if own:
        return result
    return dataclasses.replace(
        result,
        reference="the float64 model read by edgesparse: scikit-learn reads a table through "
        "pandas, which is not installed",
    )


def _write(
    options: CompressOptions, data: bytes, budget: dict[str, Any] | None, steps: _Steps
) -> None:
    """The model, then the search's JSON report when one was asked for, each atomically."""
    out = Path(options.output)
    steps(f"writing {out}")
    atomic_write_bytes(out, data)
    if options.report is not None and budget is not None:
        doc = {"source": str(Path(options.source)), "output": str(out), **budget}
        atomic_write_bytes(options.report, (json.dumps(doc, indent=2) + "\n").encode())


def _provenance_versions(ir: LinearIR) -> dict[str, str | None]:
    version = ir.provenance.get("sklearn_version")
    if version in (None, "n/a"):
        return {"sklearn_version": None, "sklearn_rules": None}
    return {"sklearn_version": version, "sklearn_rules": ir.provenance.get("sklearn_rules")}


def _fidelity_dict(fid: Fidelity) -> dict[str, Any]:
    return {
        **dataclasses.asdict(fid),
        "text": fid.describe(),
        "bar": fid.bar,
        "meets_default_bar": fid.meets(),
    }
