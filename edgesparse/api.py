"""Workstation-side API: estimator or model file in, compressed :class:`LinearIR` or file out.

``compress`` is pure (IR in, IR out); ``compress_file`` adds the edges: safe loading, an optional
fidelity check against the original model on user data, and an atomic write. Nothing is written
unless every step before it succeeded.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.errors import InputError
from edgesparse.frontend_knn import KnnCompressReport, compress_knn_file
from edgesparse.frontends.surprise import is_surprise_knn
from edgesparse.ir import LinearIR
from edgesparse.passes.fidelity import Fidelity, data_stats
from edgesparse.passes.knn import QUANTIZE_CHOICES
from edgesparse.passes.precision import Quantized, safe_quantize
from edgesparse.passes.prune import prune
from edgesparse.passes.quantize import COLUMN_SCALINGS, to_float32
from edgesparse.runtime.model import Model

FORMATS = ("esb", "onnx")
"""Output formats: the compact ``.esb`` blob, or a standard-op ONNX graph."""

Progress = Callable[[str, int, int], None]
"""``progress(message, done, total)``: called before each step, ``done`` steps finished."""


class _Steps:
    """Announces the steps of one call to an optional :data:`Progress` callback."""

    def __init__(self, progress: Progress | None, *, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message, self.done, self.total)
        self.done += 1


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Fidelity of the compressed model against the original on user data."""

    n_rows: int
    label_agreement: float | None
    max_abs_decision_delta: float
    max_abs_proba_delta: float | None
    score_name: str | None
    score_before: float | None
    score_after: float | None
    reference: str | None = None
    """What the compressed model was compared with when that is not the installed
    scikit-learn running the original (None: it was, or the model is not scikit-learn's)."""


@dataclasses.dataclass(frozen=True)
class CompressReport:
    """What ``compress_file`` did: sizes, sparsity, quantization, optional fidelity check."""

    source: str
    source_bytes: int
    output: str
    output_bytes: int
    estimator: str
    shape: tuple[int, int]
    nnz_before: int
    nnz_after: int
    quantization: str
    passes: str
    check: CheckResult | None
    format: str = "esb"
    format_detail: str = ""
    column_scaling: str = "none"
    estimate: dict[str, Any] | None = None
    precision_note: str | None = None
    budget: dict[str, Any] | None = None
    sklearn_version: str | None = None
    """The scikit-learn release that wrote the model (None for non-scikit-learn models)."""
    sklearn_rules: str | None = None
    """By which release's rules edgesparse read it, and what those rules changed."""

    @property
    def ratio(self) -> float:
        """Original bytes / output bytes."""
        return self.source_bytes / max(self.output_bytes, 1)

    @property
    def sparsity_before(self) -> float:
        """Fraction of zero weights in the original model."""
        return 1.0 - self.nnz_before / (self.shape[0] * self.shape[1])

    @property
    def sparsity_after(self) -> float:
        """Fraction of zero weights in the compressed model."""
        return 1.0 - self.nnz_after / (self.shape[0] * self.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, derived figures included."""
        out = dataclasses.asdict(self)
        out.update(
            ratio=self.ratio,
            sparsity_before=self.sparsity_before,
            sparsity_after=self.sparsity_after,
            shape=list(self.shape),
        )
        return out


def compress(
    model: Any,
    *,
    sparsity: float = 0.0,
    threshold: float | None = None,
    prune_scope: str = "global",
    quantize: str | None = None,
    granularity: str = "row",
    columns: str = "auto",
    data: Any | None = None,
) -> LinearIR:
    """Prune, then quantize, a model (an estimator, a ``RawLinearModel`` or a ``LinearIR``).

    :func:`compress_quantized` does the same and also returns the fidelity it measured and
    what the default did.

    Args:
        model: what to compress; estimators go through :func:`edgesparse.frontend.to_ir`.
        sparsity: target fraction of zero weights (0 = no pruning, the default).
        threshold: alternatively, prune every weight with ``|w| < threshold``.
        prune_scope: ``"global"`` (one cut for the whole matrix) or ``"row"`` (per output).
        quantize: None (default: int8, with the rows it serves worst raised to int16, or
            float32, where int8 measures below the bar; see :mod:`edgesparse.passes.precision`),
            ``"int8"`` (int8 whatever it measures), ``"float32"`` or ``"none"`` (float64,
            lossless).
        granularity: int8 scales per ``"row"`` (default) or per ``"tensor"``.
        columns: int8 per-column power-of-two exponents: ``"auto"`` (default: with or
            without, whichever measures better on ``data`` or on probe rows drawn from the
            model's scaler statistics; with them when neither exists), ``"pow2"`` or ``"none"``.
            See :mod:`edgesparse.passes.quantize`.
        data: rows ``X`` (dense or CSR) like the model's inputs, optional: their statistics
            (rather than the model's scalers') set the column exponents and the bias
            correction, and ``columns="auto"`` measures on them.
    """
    return compress_quantized(
        model,
        sparsity=sparsity,
        threshold=threshold,
        prune_scope=prune_scope,
        quantize=quantize,
        granularity=granularity,
        columns=columns,
        data=data,
    ).ir


def compress_quantized(
    model: Any,
    *,
    sparsity: float = 0.0,
    threshold: float | None = None,
    prune_scope: str = "global",
    quantize: str | None = None,
    granularity: str = "row",
    columns: str = "auto",
    data: Any | None = None,
) -> Quantized:
    """:func:`compress` (same arguments), returning a
    :class:`~edgesparse.passes.precision.Quantized`: the model, the fidelity of int8 measured
    on ``data`` or probe rows (None when not int8 or nothing to measure on) and a note when the
    default raised precision or an explicit int8 misses the bar."""
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise InputError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {quantize!r}")
    if columns not in ("auto", *COLUMN_SCALINGS):
        raise InputError(f"columns must be one of auto, {', '.join(COLUMN_SCALINGS)}")
    ir = model if isinstance(model, LinearIR) else _to_ir(model)
    if threshold is not None:
        ir = prune(ir, threshold=threshold)
    elif sparsity:
        ir = prune(ir, sparsity=sparsity, scope=prune_scope)
    if data is not None:
        # The user's rows describe the inputs better than any scaler: MaxAbsScaler, say,
        # knows no centre at all.
        stats = data_stats(data)
        ir = ir.replace(input_stats=stats if stats is not None else ir.input_stats)
    if quantize in (None, "int8"):
        return safe_quantize(
            ir,
            explicit_int8=quantize == "int8",
            granularity=granularity,
            columns=columns,
            data=data,
        )
    return Quantized(to_float32(ir) if quantize == "float32" else ir, None, None)


def compress_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    sparsity: float = 0.0,
    threshold: float | None = None,
    prune_scope: str = "global",
    quantize: str | None = None,
    granularity: str = "row",
    columns: str = "auto",
    check_data: str | os.PathLike[str] | None = None,
    format: str | None = None,
    opset: int | None = None,
    onnx_sparse: bool = False,
    onnx_int8: str | None = None,
    neighbours: int | str | None = None,
    calibration: str | os.PathLike[str] | None = None,
    max_accuracy_drop: float | None = None,
    max_agreement_loss: float | None = None,
    max_r2_drop: float | None = None,
    refit: bool = False,
    force: bool = False,
    report: str | os.PathLike[str] | None = None,
    holdout: float = 0.7,
    seed: int = 0,
    confidence: float = 0.95,
    progress: Progress | None = None,
) -> CompressReport | KnnCompressReport:
    """Load ``source`` safely, compress it, check it on ``check_data``, write ``output``.

    A Surprise k-NN recommender goes to :func:`edgesparse.frontend_knn.compress_knn_file`
    instead (``neighbours`` per row, ``quantize``, ``check_data`` as a user,item,rating CSV)
    and gives a :class:`~edgesparse.frontend_knn.KnnCompressReport`.

    ``quantize``: None (the default) is int8, with rows raised to int16 (or float32) where int8
    measures below the bar (see :mod:`edgesparse.passes.precision`); ``"int8"``,
    ``"float32"``, ``"none"`` are taken as given.

    The output format is ``format`` (one of :data:`FORMATS`) or else follows the suffix of
    ``output`` (``.esb`` or ``.onnx``). ONNX options (see :func:`edgesparse.formats.onnx.build`):
    ``opset``, ``onnx_sparse`` (weights as a COO sparse tensor), ``onnx_int8``
    (``"dequantize"``, the default, or ``"matmulinteger"``). The check runs the artifact that
    will be written (the ONNX one in onnxruntime). The file appears atomically and only after
    loading, compression and the check have all succeeded.

    Accuracy-aware compression (see :func:`compress_to_budget`): ``calibration`` (a ``.npz``
    with ``X`` and ``y``, CSR parts allowed, or a CSV with the label in the last column; ``y``
    may be left out for ``max_agreement_loss`` alone) and one or more of
    ``max_accuracy_drop``, ``max_agreement_loss``, ``max_r2_drop``; ``confidence`` of the
    certificate, ``refit``, ``holdout``/``seed`` (the calibration split), ``quantize="auto"``.
    When not even the unpruned model can be certified nothing is written (``force`` writes
    the unpruned model anyway). ``report`` names a JSON file for the search's fidelity report
    (written atomically, after the model).

    ``progress`` (see :data:`Progress`) is told about each step (loading, compressing or the
    budget search, encoding, the check, writing), which can take seconds on wide models.
    """
    from edgesparse.data import load_dataset
    from edgesparse.fileio import atomic_write_bytes
    from edgesparse.loader import load_model

    out = Path(output)
    fmt = _output_format(out, format)
    if fmt != "onnx" and (opset is not None or onnx_sparse or onnx_int8 is not None):
        raise InputError(
            "opset, onnx_sparse and onnx_int8 (--opset, --onnx-sparse, --onnx-int8) apply to "
            "ONNX output only: use --format onnx or an output name ending in .onnx"
        )
    src = Path(source)
    if out.resolve() == src.resolve():
        raise InputError(f"output {out} would overwrite the input model; choose another path")
    steps = _Steps(progress, total=4 + (check_data is not None))
    steps(f"loading {src.name}")
    estimator = load_model(src)
    if is_surprise_knn(estimator):
        if fmt != "esb":
            asked = f"--format {format}" if format is not None else f"-o {out.name}"
            raise InputError(
                f"{src} is a Surprise k-NN recommender, which compresses to .esb only, not "
                f"{fmt.upper()} (asked for by {asked}); use -o {out.stem}.esb"
            )
        linear = {
            "sparsity": sparsity != 0.0,
            "threshold": threshold is not None,
            "prune-scope": prune_scope != "global",
            "granularity": granularity != "row",
            "calibration": calibration is not None,
            "max-*-drop/loss": any(
                v is not None for v in (max_accuracy_drop, max_agreement_loss, max_r2_drop)
            ),
            "refit": refit,
            "force": force,
            "report": report is not None,
        }
        if any(linear.values()):
            raise InputError(
                f"{src} is a Surprise k-NN recommender: it compresses to .esb with "
                "--neighbours and --quantize only (not "
                f"{', '.join('--' + n for n, used in linear.items() if used)})"
            )
        # One step from here: compress_knn_file compresses, checks and writes.
        steps.total = 2
        steps("compressing the k-NN recommender" + (" and checking it" if check_data else ""))
        return compress_knn_file(
            estimator,
            src,
            out,
            neighbours=neighbours,
            quantize=quantize or "int8",
            check_data=check_data,
        )
    if neighbours is not None:
        raise InputError("--neighbours applies to Surprise k-NN models only")
    limits = (max_accuracy_drop, max_agreement_loss, max_r2_drop)
    budgeted = calibration is not None or any(v is not None for v in limits) or refit
    steps(
        f"searching the sparsest model within the budget on {Path(calibration).name}"
        if budgeted and calibration is not None
        else "pruning and quantizing"
    )
    original = _to_ir(estimator)
    budget_report = None
    dataset = None
    estimate: dict[str, Any] | None = None
    precision_note: str | None = None
    if budgeted:
        compressed, budget_report = _budget_compress(
            estimator,
            original,
            calibration=calibration,
            limits=limits,
            sparsity=sparsity,
            threshold=threshold,
            quantize=quantize or "int8",
            granularity=granularity,
            refit=refit,
            force=force,
            holdout=holdout,
            seed=seed,
            confidence=confidence,
        )
    else:
        if quantize == "auto" or force or report is not None:
            raise InputError(
                "--quantize auto, --force and --report belong to accuracy-aware compression: "
                "give --calibration DATA and a budget (e.g. --max-accuracy-drop 0.005)"
            )
        dataset = (
            load_dataset(check_data, n_features=original.n_features)
            if check_data is not None
            else None
        )
        done = compress_quantized(
            original,
            quantize=quantize,
            data=None if dataset is None else dataset.X,
            sparsity=sparsity,
            threshold=threshold,
            prune_scope=prune_scope,
            granularity=granularity,
            columns=columns,
        )
        compressed, precision_note = done.ir, done.note
        estimate = None if done.fidelity is None else _fidelity_dict(done.fidelity)
    steps("building the ONNX graph" if fmt == "onnx" else "encoding the .esb blob")
    data, runner, detail = _encode(
        compressed, fmt, opset=opset, onnx_sparse=onnx_sparse, onnx_int8=onnx_int8
    )
    check = None
    if check_data is not None:
        if budget_report is not None and calibration is not None:
            if Path(check_data).resolve() == Path(calibration).resolve():
                budget_report.setdefault("warnings", []).append(
                    "--check-data is the calibration file: its fit rows tuned the search"
                    + (" and the refit" if budget_report["chosen"]["refit"] else "")
                    + ", so its check figures are not held-out; use separate rows"
                )
        steps(f"checking against the original on {Path(check_data).name}")
        check = check_fidelity(
            estimator=estimator,
            original=original,
            compressed=compressed,
            dataset=dataset
            if dataset is not None
            else load_dataset(check_data, n_features=original.n_features),
            model=runner,
        )
    steps(f"writing {out}")
    atomic_write_bytes(out, data)
    if report is not None and budget_report is not None:
        import json

        doc = {"source": str(src), "output": str(out), **budget_report}
        atomic_write_bytes(report, (json.dumps(doc, indent=2) + "\n").encode())
    return CompressReport(
        source=str(src),
        source_bytes=src.stat().st_size,
        output=str(out),
        output_bytes=len(data),
        estimator=original.provenance.get("source", type(estimator).__name__),
        shape=original.shape,
        nnz_before=original.nnz,
        nnz_after=compressed.nnz,
        quantization=compressed.quantization,
        passes=compressed.provenance.get("passes", ""),
        check=check,
        format=fmt,
        format_detail=detail,
        budget=budget_report,
        column_scaling=compressed.column_scaling,
        estimate=estimate,
        precision_note=precision_note,
        **_provenance_versions(original),
    )


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


def compress_to_budget(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    max_accuracy_drop: float | None = None,
    max_agreement_loss: float | None = None,
    max_r2_drop: float | None = None,
    quantize: str = "int8",
    granularity: str = "row",
    refit: bool = False,
    holdout: float = 0.7,
    seed: int = 0,
    confidence: float = 0.95,
) -> Any:
    """The sparsest model whose quantized form is certified within an accuracy budget (pure).

    ``model`` is an estimator (its own regularization sets the refit's L2 term) or a
    ``LinearIR``; ``X``, ``y`` are calibration rows (``y`` may be None for an agreement
    budget), of which ``holdout`` (70%, stratified, fixed ``seed``) are held out to certify,
    at ``confidence``, that the budget holds on new rows; the rest choose the pruning and are
    what ``refit`` solves on. ``quantize="auto"`` certifies per-row and per-tensor int8 scales
    and keeps the sparser. Returns a
    :class:`edgesparse.passes.budget.SearchResult` (``.ir``, ``.met``, ``.report``); see
    :mod:`edgesparse.passes.budget` for the search itself.
    """
    from edgesparse.passes.budget import Budget, search

    ir = model if isinstance(model, LinearIR) else _to_ir(model)
    if quantize == "auto":
        quantizations: tuple[str, ...] = ("int8-per-row", "int8-per-tensor")
    elif quantize == "int8":
        if granularity not in ("row", "tensor"):
            raise InputError(f"granularity must be row or tensor, not {granularity!r}")
        quantizations = (f"int8-per-{granularity}",)
    elif quantize in ("float32", "none"):
        quantizations = ("float32" if quantize == "float32" else "float64",)
    else:
        raise InputError(
            f"quantize must be one of {', '.join((*QUANTIZE_CHOICES, 'auto'))}, not {quantize!r}"
        )
    penalty = _refit_penalty(model, ir) if refit else None
    return search(
        ir,
        X,
        y,
        budget=Budget(
            max_accuracy_drop=max_accuracy_drop,
            max_agreement_loss=max_agreement_loss,
            max_r2_drop=max_r2_drop,
        ),
        quantizations=quantizations,
        refit_weights=refit,
        penalty=penalty,
        holdout=holdout,
        seed=seed,
        confidence=confidence,
    )


def _budget_compress(
    estimator: Any,
    original: LinearIR,
    *,
    calibration: str | os.PathLike[str] | None,
    limits: tuple[float | None, float | None, float | None],
    sparsity: float,
    threshold: float | None,
    quantize: str,
    granularity: str,
    refit: bool,
    force: bool,
    holdout: float,
    seed: int,
    confidence: float,
) -> tuple[LinearIR, dict[str, Any]]:
    """compress_file's accuracy-aware branch: checks the options, runs the search, refuses
    (unless ``force``) when not even the unpruned model can be certified."""
    from edgesparse.data import load_dataset

    if calibration is None:
        raise InputError(
            "an accuracy budget (or --refit) needs calibration data: --calibration cal.npz "
            "(X and y) or cal.csv (label in the last column)"
        )
    if sparsity or threshold is not None:
        raise InputError(
            "--sparsity/--threshold and an accuracy budget both choose the sparsity: "
            "give one or the other"
        )
    # Labels are optional here (an agreement budget needs none; the search says when the
    # budget does): y in the .npz, or a table with one column more than the model's features.
    dataset = load_dataset(calibration, n_features=original.n_features)
    result = compress_to_budget(
        estimator,
        dataset.X,
        dataset.y,
        max_accuracy_drop=limits[0],
        max_agreement_loss=limits[1],
        max_r2_drop=limits[2],
        quantize=quantize,
        granularity=granularity,
        refit=refit,
        holdout=holdout,
        seed=seed,
        confidence=confidence,
    )
    report = dict(result.report)
    report["calibration"] = {"file": str(calibration), **report["calibration"]}
    if not result.met:
        if not force:
            raise InputError(_uncertified(report, holdout))
        report["forced"] = True
    return result.ir, report


def _uncertified(report: dict[str, Any], holdout: float) -> str:
    """The one-line refusal when not even the unpruned model is certified: what was seen,
    and how many rows a certificate would need."""
    g, cal = report["guarantee"], report["calibration"]
    stop = report["sequences"][0]["stopped_at"] or {}
    seen = ", ".join(
        f"{r.replace('_', ' ')} {stop[r + '_estimate']:.2%}"
        + (f" ({stop[r + '_events']} rows)" if r + "_events" in stop else "")
        for r in g["limits"]
        if r + "_estimate" in stop
    )
    needed = [n for n in g["rows_needed"].values() if n is not None]
    hint = ""
    if needed and max(needed) > cal["heldout_rows"]:
        total = math.ceil(max(needed) / holdout)
        hint = (
            f"; even with no row against it, that needs at least {max(needed)} certify rows "
            f"(about {total} calibration rows at --holdout {holdout:g})"
        )
    seen = seen or f"p-value {report['chosen']['p_value']:.3g}"
    return (
        f"the budget cannot be certified even without pruning at "
        f"{g['confidence']:.0%} confidence: on the {cal['heldout_rows']} held-out calibration "
        f"rows the unpruned {report['chosen']['quantization']} model has {seen}{hint}; give "
        "more rows, raise the budget, try --quantize float32, or pass --force to write the "
        "unpruned model anyway"
    )


def _refit_penalty(model: Any, ir: LinearIR) -> Any:
    """The refit's L2 term from the estimator's own regularization (see passes/refit.py).

    ``LogisticRegression``/``LinearSVC``: ``1/C``; ``Ridge*``: ``alpha``; ``SGD*``:
    ``alpha`` per row; ``LinearRegression``: none; anything else: ``1.0``. L1 and elastic-net
    penalties are approximated by this L2 term. For a pipeline, the penalty is applied to the
    final step's (scaled) weights, as it was trained.
    """
    from edgesparse.passes.refit import Penalty

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    name = type(final).__name__

    def positive(attr: str) -> float:
        value = getattr(final, attr, None)
        return float(value) if isinstance(value, (int, float)) and value > 0 else 0.0

    C, alpha = positive("C"), positive("alpha")
    total = per_row = 0.0
    if name.startswith(("LogisticRegression", "LinearSVC")) and C:
        total = 1.0 / C
    elif name.startswith("SGD") and alpha:
        per_row = alpha
    elif name.startswith("Ridge") and alpha:
        total = alpha
    elif name != "LinearRegression":
        total = 1.0
    scale = None
    coef = getattr(final, "coef_", None)
    if hasattr(model, "steps") and coef is not None:
        c = np.atleast_2d(np.asarray(coef, dtype=np.float64))
        W = ir.to_dense()
        if c.shape == W.shape:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where((c != 0) & (W != 0), c / W, np.nan)
            scale = np.ones(ir.n_features)
            seen = ~np.all(np.isnan(ratio), axis=0)
            scale[seen] = np.nanmedian(np.abs(ratio[:, seen]), axis=0)
    return Penalty(total=total, per_row=per_row, column_scale=scale)


def _output_format(out: Path, format: str | None) -> str:
    if out.is_dir():
        raise InputError(
            f"output {out} is a directory; give a file name, e.g. -o "
            f"{out / ('model.' + (format or 'esb'))}"
        )
    suffix = out.suffix.lower().lstrip(".")
    if format is None:
        if suffix not in FORMATS:
            raise InputError(
                f"cannot write {out.name!r}: unknown output format "
                f"{out.suffix or '(no suffix)'!r}; use one of: "
                f"{', '.join('.' + f for f in FORMATS)} (or give the format explicitly)"
            )
        return suffix
    if format not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if suffix in FORMATS and suffix != format:
        raise InputError(f"output {out.name!r} ends in .{suffix} but the format is {format}")
    return format


def _encode(
    ir: LinearIR, fmt: str, *, opset: int | None, onnx_sparse: bool, onnx_int8: str | None
) -> tuple[bytes, Any, str]:
    """The output bytes, the runtime model that runs exactly them, and a one-line description."""
    if fmt == "esb":
        from edgesparse.formats import esb

        return esb.encode(ir), Model(ir), ".esb"
    from edgesparse.formats import onnx as onnx_format
    from edgesparse.runtime.onnx_model import OnnxModel

    if onnx_int8 is not None and ir.values.dtype != np.int8:
        raise InputError(
            f"--onnx-int8 {onnx_int8} needs int8 weights in every row (--quantize int8)"
        )
    opset = onnx_format.DEFAULT_OPSET if opset is None else opset
    form = onnx_int8 or "dequantize"
    data = onnx_format.encode(ir, opset=opset, sparse=onnx_sparse, int8_form=form)
    detail = f"ONNX opset {opset}"
    if ir.values.dtype == np.int16:
        detail += ", int8/int16 rows dequantized at load (float32 MatMul)"
    elif ir.values.dtype == np.int8:
        detail += (
            ", int8 dequantized at load (float32 MatMul)"
            if form == "dequantize"
            else ", int8 via MatMulInteger"
        )
    detail += ", sparse weights" if onnx_sparse else ""
    return data, OnnxModel.from_bytes(data), detail


def check_fidelity(
    *,
    estimator: Any,
    original: LinearIR,
    compressed: LinearIR,
    dataset: Any,
    model: Any | None = None,
) -> CheckResult:
    """Compare ``compressed`` with the original model on ``dataset.X`` (and ``dataset.y``).

    The reference is the estimator's own ``predict``/``decision_function`` when it has them
    (scikit-learn is the oracle), else the uncompressed IR. An estimator pickled by another
    scikit-learn release is not its own oracle here: the installed release would compute its
    outputs by today's rules (softmax for a ``multi_class="ovr"`` model of 1.7, say), so the
    uncompressed IR, read by the rules of the release that wrote it, is the reference.
    ``model`` is what runs the compressed model (default: the numpy runtime; an
    ``OnnxModel`` checks an ONNX artifact).
    """
    from edgesparse.frontends import pickled_by_other_release

    X, y = dataset.X, dataset.y
    new = Model(compressed) if model is None else model
    pred_new = new.predict(X)  # validates X first, with the runtime's friendly errors
    if original.is_classifier and y is not None and original.classes is not None:
        classes = np.asarray(original.classes)
        y_text = np.asarray(y).dtype.kind in "USO"
        if y_text != (classes.dtype.kind in "USO"):
            kinds = ("text", "numbers") if y_text else ("numbers", "text")
            raise InputError(
                f"the check data's labels (y) are {kinds[0]} but the model's classes are "
                f"{kinds[1]} ({', '.join(map(str, classes[:5].tolist()))}); give y with the "
                "labels the model predicts, or no labels"
            )
    ref_model = Model(original)
    X_ref = _for_sklearn(X)
    written_by = None if isinstance(estimator, LinearIR) else pickled_by_other_release(estimator)
    has_own = (
        hasattr(estimator, "predict") and not isinstance(estimator, LinearIR) and written_by is None
    )
    pred_ref = estimator.predict(X_ref) if has_own else ref_model.predict(X)
    if original.is_classifier:
        dec_ref = (
            estimator.decision_function(X_ref)
            if has_own and hasattr(estimator, "decision_function")
            else ref_model.decision_function(X)
        )
        dec_new = new.decision_function(X)
    else:
        dec_ref, dec_new = pred_ref, pred_new
    delta = float(np.max(np.abs(np.asarray(dec_new, dtype=np.float64) - dec_ref)))
    proba_delta = None
    if compressed.has_proba:
        p_ref = estimator.predict_proba(X_ref) if has_own else ref_model.predict_proba(X)
        proba_delta = float(np.max(np.abs(new.predict_proba(X) - p_ref)))
    agreement = score_name = before = after = None
    if original.is_classifier:
        agreement = float(np.mean(pred_new == pred_ref))
        if y is not None:
            score_name = "accuracy"
            before = float(np.mean(pred_ref == y))
            after = float(np.mean(pred_new == y))
    elif y is not None:
        score_name = "r2"
        before, after = _r2(y, pred_ref), _r2(y, pred_new)
    return CheckResult(
        n_rows=int(X.shape[0]),
        label_agreement=agreement,
        max_abs_decision_delta=delta,
        max_abs_proba_delta=proba_delta,
        score_name=score_name,
        score_before=before,
        score_after=after,
        reference=None
        if written_by is None
        else f"the float64 model read by the rules of scikit-learn {written_by}",
    )


def _to_ir(model: Any) -> LinearIR:
    from edgesparse.frontends import to_linear_ir as to_ir

    return to_ir(model)


def _for_sklearn(X: Any) -> Any:
    from edgesparse.data import CSRArrays

    if isinstance(X, CSRArrays):
        import scipy.sparse

        return scipy.sparse.csr_matrix((X.data, X.indices, X.indptr), shape=X.shape)
    return X


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    # scikit-learn's r2_score: per output, then the plain mean over outputs.
    y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
    ss_res = np.sum((y - pred) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(1.0 - ss_res / ss_tot))
