"""What ``edgesparse compress`` (and :func:`edgesparse.pipeline.compress_file`) is asked to do:
one frozen :class:`CompressOptions`, and every rule about which options go together."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from edgesparse.api import (
    QUANTIZE_CHOICES,
    BudgetOptions,
    QuantizeOptions,
    check_columns,
    check_neighbours,
)
from edgesparse.errors import InputError
from edgesparse.rawcalib import RECORDS_FORM, TEXT_FORM

__all__ = ["FORMATS", "CompressOptions"]

FORMATS = ("esb", "onnx")
"""Output formats: the compact ``.esb`` blob, or a standard-op ONNX graph."""

ONNX_INPUTS = ("auto", "dense", "csr")
"""The ONNX graph's input form (``auto``: :func:`edgesparse.formats.onnx.default_input`)."""

PathLike = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompressOptions:
    """Everything ``compress_file`` needs: one field per option of ``edgesparse compress``.

    The choices are checked on construction; which options go together is checked by the
    ``check_*`` methods, each called by :func:`compress_file` once it knows what it needs to
    (the output path, the model kind), so every combination is decided in this class.

    Attributes:
        source: the model file (loaded through the allow-list loader).
        output: the file to write; its suffix (``.esb``/``.onnx``) gives the format unless
            ``format`` does.
        format: one of :data:`FORMATS`, or None (the suffix of ``output``).
        sparsity, threshold, prune_scope, quantize, granularity, columns: as
            :class:`edgesparse.api.QuantizeOptions` (``quantize`` may also be ``"auto"`` with
            a budget); for a k-NN recommender ``quantize`` (int8 by default) is the
            similarities' storage.
        check_data: rows to check the written model against the original on (for a k-NN
            recommender a CSV of ``user,item,rating``).
        opset, onnx_sparse, onnx_int8, onnx_input: ONNX output only (see
            :func:`edgesparse.formats.onnx.encode`): the opset, weights as a COO sparse
            tensor, ``"dequantize"`` (default) or ``"matmulinteger"`` for int8 weights, the
            graph's input (``"dense"``, ``"csr"`` or ``"auto"``, the default:
            :func:`edgesparse.formats.onnx.default_input`).
        neighbours: k-NN only: similarities kept per row (a count >= 1, ``"all"`` or
            ``"exact"``; see :func:`edgesparse.api.compress_knn`).
        calibration: accuracy-aware: a ``.npz`` with ``X`` and ``y`` (CSR parts allowed) or a
            CSV with the label last (``y`` may be left out for ``max_agreement_loss`` alone);
            for a model with an input stage, labelled documents (JSON lines) or records (a
            CSV under a header, the label last): :mod:`edgesparse.rawcalib`.
        max_accuracy_drop, max_agreement_loss, max_r2_drop, confidence, refit, holdout,
            seed: the budget and the search (as :class:`edgesparse.api.BudgetOptions`).
        force: write the unpruned model when not even it can be certified.
        report: a JSON file for the accuracy-aware search's report (written after the model).
    """

    source: PathLike
    output: PathLike
    format: str | None = None
    sparsity: float = 0.0
    threshold: float | None = None
    prune_scope: str = "global"
    quantize: str | None = None
    granularity: str = "row"
    columns: str = "auto"
    check_data: PathLike | None = None
    opset: int | None = None
    onnx_sparse: bool = False
    onnx_int8: str | None = None
    onnx_input: str = "auto"
    neighbours: int | str | None = None
    calibration: PathLike | None = None
    max_accuracy_drop: float | None = None
    max_agreement_loss: float | None = None
    max_r2_drop: float | None = None
    confidence: float = 0.95
    refit: bool = False
    holdout: float = 0.7
    seed: int = 0
    force: bool = False
    report: PathLike | None = None

    def __post_init__(self) -> None:
        if self.quantize is not None and self.quantize not in (*QUANTIZE_CHOICES, "auto"):
            choices = ", ".join((*QUANTIZE_CHOICES, "auto"))
            raise InputError(f"quantize must be one of {choices}, not {self.quantize!r}")
        check_columns(self.columns)
        if self.onnx_input not in ONNX_INPUTS:
            raise InputError(
                f"onnx_input must be one of {', '.join(ONNX_INPUTS)}, not {self.onnx_input!r}"
            )
        check_neighbours(self.neighbours)

    @property
    def limits(self) -> tuple[float | None, float | None, float | None]:
        """(max_accuracy_drop, max_agreement_loss, max_r2_drop)."""
        return (self.max_accuracy_drop, self.max_agreement_loss, self.max_r2_drop)

    @property
    def budgeted(self) -> bool:
        """Accuracy-aware compression: a calibration file, a budget or ``refit``."""
        return self.calibration is not None or any(v is not None for v in self.limits) or self.refit

    def quantize_options(self) -> QuantizeOptions:
        """The pruning and storage of plain (not accuracy-aware) compression."""
        return QuantizeOptions(
            sparsity=self.sparsity,
            threshold=self.threshold,
            prune_scope=self.prune_scope,
            quantize=self.quantize,
            granularity=self.granularity,
            columns=self.columns,
        )

    def budget_options(self) -> BudgetOptions:
        """The accuracy-aware search's options (int8 unless ``quantize`` says otherwise)."""
        return BudgetOptions(
            max_accuracy_drop=self.max_accuracy_drop,
            max_agreement_loss=self.max_agreement_loss,
            max_r2_drop=self.max_r2_drop,
            quantize=self.quantize or "int8",
            granularity=self.granularity,
            refit=self.refit,
            holdout=self.holdout,
            seed=self.seed,
            confidence=self.confidence,
        )

    def output_format(self) -> str:
        """The format to write (``format``, or the suffix of ``output``), after checking
        that ``output`` is not a folder and that the two agree."""
        out, format = Path(self.output), self.format
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

    def check_output(self, fmt: str) -> None:
        """ONNX options only with ONNX output; never overwrite the input model."""
        onnx_only = self.opset is not None or self.onnx_sparse or self.onnx_int8
        if fmt != "onnx" and (onnx_only or self.onnx_input != "auto"):
            raise InputError(
                "opset, onnx_sparse, onnx_int8 and onnx_input (--opset, --onnx-sparse, "
                "--onnx-int8, --onnx-input) apply to ONNX output only: use --format onnx or an "
                "output name ending in .onnx"
            )
        out, src = Path(self.output), Path(self.source)
        if out.resolve() == src.resolve():
            raise InputError(f"output {out} would overwrite the input model; choose another path")

    def check_knn(self, fmt: str, *, what: str = "k-NN") -> None:
        """A Surprise k-NN recommender takes ``.esb`` output, ``neighbours`` and ``quantize``
        (and ``check_data``) only; a matrix-factorization one (``what="matrix-factorization"``)
        the same but ``neighbours``."""
        src, out = Path(self.source), Path(self.output)
        if fmt != "esb":
            asked = f"--format {self.format}" if self.format is not None else f"-o {out.name}"
            raise InputError(
                f"{src} is a Surprise {what} recommender, which compresses to .esb only, not "
                f"{fmt.upper()} (asked for by {asked}); use -o {out.stem}.esb"
            )
        linear = {
            "sparsity": self.sparsity != 0.0,
            "threshold": self.threshold is not None,
            "prune-scope": self.prune_scope != "global",
            "granularity": self.granularity != "row",
            "calibration": self.calibration is not None,
            "max-*-drop/loss": any(v is not None for v in self.limits),
            "refit": self.refit,
            "force": self.force,
            "report": self.report is not None,
        }
        if what != "k-NN":
            linear["neighbours"] = self.neighbours is not None
        if any(linear.values()):
            raise InputError(
                f"{src} is a Surprise {what} recommender: it compresses to .esb with "
                + ("--neighbours and --quantize" if what == "k-NN" else "--quantize")
                + " only (not "
                f"{', '.join('--' + n for n, used in linear.items() if used)})"
            )

    def check_linear(self) -> None:
        """A linear model: no k-NN options; a budget chooses the sparsity itself;
        ``quantize="auto"``, ``force`` and ``report`` need a budget. (That it has calibration
        data is :meth:`check_calibration`'s, once the model's input stage is known.)"""
        if self.neighbours is not None:
            raise InputError("--neighbours applies to Surprise k-NN models only")
        if not self.budgeted:
            if self.quantize == "auto" or self.force or self.report is not None:
                raise InputError(
                    "--quantize auto, --force and --report belong to accuracy-aware "
                    "compression: give --calibration DATA and a budget (e.g. "
                    "--max-accuracy-drop 0.005)"
                )
            return
        if self.sparsity or self.threshold is not None:
            raise InputError(
                "--sparsity/--threshold and an accuracy budget both choose the sparsity: "
                "give one or the other"
            )

    def check_calibration(self, *, stage: str | None = None) -> None:
        """A budget (or ``--refit``) has its calibration file, in the form the model reads:
        ``stage`` is ``"text"`` or ``"tabular"`` for a model with an input stage (labelled
        documents or records, :mod:`edgesparse.rawcalib`), None for a numeric ``.npz`` or
        table."""
        if not self.budgeted or self.calibration is not None:
            return
        need = "an accuracy budget (or --refit) needs calibration data"
        if stage == "text":
            raise InputError(f"{need}, --calibration cal.jsonl; {TEXT_FORM}")
        if stage == "tabular":
            raise InputError(f"{need}, --calibration cal.csv; {RECORDS_FORM}")
        raise InputError(
            f"{need}: --calibration cal.npz (X and y) or cal.csv (label in the last column)"
        )

    def check_input_stage(
        self, fmt: str, *, source_class: str, stage: str, featurizer: object = None
    ) -> None:
        """A model with an input stage (issue 20; ``stage`` is ``"text"`` or ``"tabular"``):
        ``.esb`` output, or ONNX when the exporter reproduces ``featurizer`` exactly (else its
        one-line reason); ``check_data`` holds documents or records
        (:mod:`edgesparse.rawcheck`), ``calibration`` labelled ones
        (:mod:`edgesparse.rawcalib`)."""
        if fmt == "onnx" and featurizer is not None:
            from edgesparse.formats.onnx_featurizers import check_featurizer

            try:
                check_featurizer(featurizer, opset=self.opset)  # type: ignore[arg-type]
            except InputError as exc:
                raise InputError(f"{source_class}: {exc}") from None
        elif fmt != "esb":
            raise InputError(
                f"{source_class} starts with a {stage} featurizer, which edgesparse writes to "
                f".esb only for now (the ONNX exporter has no {stage} operators yet); use -o "
                f"{Path(self.output).stem}.esb"
            )
