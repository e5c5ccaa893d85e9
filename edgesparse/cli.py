"""The ``edgesparse`` command. It only parses arguments, calls the library and prints; every
:class:`~edgesparse.errors.EdgesparseError` becomes one ``Error: ...`` line and exit code 1
(usage errors exit 2, as click does)."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgesparse import __version__
from edgesparse.errors import EdgesparseError


def _echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Every line the command prints goes through here: characters a file could use to rewrite
    the screen or fake lines (ESC, CR, BEL, ..., lone surrogates) are shown escaped."""
    from edgesparse.report import terminal_text

    click.echo(terminal_text(str(text), keep_lines=True), err=err, nl=nl)


class _Group(click.Group):
    """Turns library errors into click's one-line ``Error:`` output, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        from edgesparse.report import terminal_text

        try:
            return super().invoke(ctx)
        except EdgesparseError as exc:
            raise click.ClickException(terminal_text(str(exc))) from None
        except MemoryError:
            raise click.ClickException(
                "out of memory: the model needs more memory than this process may use; run "
                "it with more memory, or set EDGESPARSE_MAX_ARRAY_BYTES lower to refuse such "
                "models before they are converted"
            ) from None


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _terminal_progress() -> Callable[[str, int, int], None] | None:
    """A ``progress(message, done, total)`` callback writing one line per step to stderr
    ("[3/8] rpi4: c:model.esb ..."), or None when stderr is not a terminal (logs stay clean)."""
    if not _stderr_is_tty():
        return None

    def show(message: str, done: int, total: int) -> None:
        if message != "done":  # the result printed next says so
            _echo(f"[{min(done + 1, total)}/{total}] {message} ...", err=True)

    return show


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgesparse")
def cli() -> None:
    """Make trained linear models small and fast for edge devices."""


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output file (.esb or .onnx). Default: MODEL with the format's suffix, next to MODEL.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["esb", "onnx"]),
    help="Output format. Default: the suffix of -o (.esb or .onnx); esb without -o.",
)
@click.option(
    "--sparsity",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Target fraction of zero weights (magnitude pruning). 0 = no pruning.",
)
@click.option(
    "--threshold", type=click.FloatRange(min=0.0), help="Instead: prune weights with |w| < T."
)
@click.option(
    "--prune-scope",
    type=click.Choice(["global", "row"]),
    default="global",
    show_default=True,
    help="One magnitude cut for the whole matrix, or one per output row.",
)
@click.option(
    "--quantize",
    type=click.Choice(["int8", "float32", "none", "auto"]),
    default=None,
    help="Weight storage: symmetric int8 (w = r*q*2^e), float32, or none (float64, lossless). "
    "Default: int8; where int8 measures below 99.5% label agreement on --check-data (99.9% "
    "on rows drawn from the model's scaler statistics; 1% of the output range for "
    "regressors), the rows it serves worst are raised to int16, or float32 if that is not "
    "enough. An explicit int8 stays int8. auto (with a budget): "
    "int8 with per-row and with per-tensor scales, each certified; the sparser is kept.",
)
@click.option(
    "--granularity",
    type=click.Choice(["row", "tensor"]),
    default="row",
    show_default=True,
    help="One int8 scale per output row, or one for the whole matrix.",
)
@click.option(
    "--column-scale",
    "columns",
    type=click.Choice(["auto", "pow2", "none"]),
    default="auto",
    show_default=True,
    help="int8: a power-of-two scale per input column, so columns of different magnitudes "
    "keep their precision. auto: with or without, whichever measures better on --check-data "
    "or on rows drawn from the model's scaler statistics (with, when there are neither).",
)
@click.option(
    "--check-data",
    type=click.Path(path_type=Path),
    help="Data with X (and optionally y): .npz, .npy, or a .csv/.tsv/.txt table (a label "
    "column last when it has one column more than the model's features). Reports agreement "
    "with the original model.",
)
@click.option(
    "--opset",
    type=int,
    help="ONNX only: default-domain opset (13-21; default 17, which onnxruntime >= 1.13 runs).",
)
@click.option(
    "--onnx-sparse",
    is_flag=True,
    help="ONNX only: store the weights as a COO sparse tensor (int64 indices, so smaller only "
    "below ~11% density for int8). onnxruntime densifies sparse initializers when it loads "
    "the model: this saves file bytes, not memory or time.",
)
@click.option(
    "--onnx-int8",
    type=click.Choice(["dequantize", "matmulinteger"]),
    help="ONNX only, int8 weights: dequantize (default: weights dequantized to float32 at load, "
    "float activations: the .esb model's predictions to float32 rounding, in any onnxruntime "
    "session) or "
    "matmulinteger (DynamicQuantizeLinear -> MatMulInteger: uint8 activations with one scale "
    "per batch, set by its largest value; lossy when input columns differ in magnitude: "
    "raw wine with --column-scale none 62% label agreement where .esb has 99%; with pow2 "
    "column scales 99-100%. Can be faster on big matrices; benchmark on the target).",
)
@click.option(
    "--neighbours",
    metavar="K|all|exact",
    help="Surprise k-NN models only: keep each row's K largest similarities. Default 'all': "
    "every positive one, so the neighbours are exactly Surprise's; 'exact': only those some "
    "prediction can use (same predictions, smaller, slower to compress). Pruning to the "
    "model's own k changes predictions: use --check-data to see by how much.",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path),
    help="Accuracy-aware: rows the model was not trained on, a .npz with X (or CSR parts) and "
    "y, or a .csv (.tsv, .txt) with the label in the last column; y may be left out for "
    "--max-agreement-loss alone. Part chooses the pruning, the held-out part (--holdout) "
    "certifies the budget.",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(0.0, 1.0),
    help="Budget: accuracy on new rows may drop by at most this fraction (0.005 = 0.5 pt), "
    "certified at --confidence.",
)
@click.option(
    "--max-agreement-loss",
    type=click.FloatRange(0.0, 1.0),
    help="Budget: at most this fraction of labels on new rows may differ from the original's "
    "(no labels needed), certified at --confidence.",
)
@click.option(
    "--max-r2-drop",
    type=click.FloatRange(0.0, 1.0),
    help="Budget for regressors: R2 on new rows may drop by at most this much (Student-t "
    "bound: approximate).",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 1.0, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence with which the budget must hold on new rows from the same distribution.",
)
@click.option(
    "--refit",
    is_flag=True,
    help="Also certify prune-then-refit candidates (refit on the search part of the "
    "calibration data); kept only if certified sparser.",
)
@click.option(
    "--holdout",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.7,
    show_default=True,
    help="Fraction of the calibration rows held out to certify (stratified by class, fixed "
    "--seed); the rest choose the pruning.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Calibration split seed.")
@click.option(
    "--force",
    is_flag=True,
    help="Write the unpruned model even when it cannot be certified (default: error, no file).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    help="Write the accuracy-aware search as JSON here: the guarantee, each certified "
    "sequence and its p-values, the chosen point, flipped rows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def compress(
    model: Path,
    output: Path | None,
    fmt: str | None,
    sparsity: float,
    threshold: float | None,
    prune_scope: str,
    quantize: str | None,
    granularity: str,
    columns: str,
    check_data: Path | None,
    opset: int | None,
    onnx_sparse: bool,
    onnx_int8: str | None,
    neighbours: str | None,
    calibration: Path | None,
    max_accuracy_drop: float | None,
    max_agreement_loss: float | None,
    max_r2_drop: float | None,
    confidence: float,
    refit: bool,
    holdout: float,
    seed: int,
    force: bool,
    report_path: Path | None,
    as_json: bool,
) -> None:
    """Prune and quantize MODEL (.pkl, .joblib, .skops or .npz weights) into a .esb blob or a
    standard-op ONNX graph (--format onnx, or -o NAME.onnx).

    The defaults are safe for accuracy: int8 weights with one scale per row and no pruning
    (typically >= 99.5% label agreement). Pruning happens only when --sparsity or --threshold
    is given, or a budget with --calibration: then the sparsest model certified, on held-out
    calibration rows, to stay within the budget on new rows is written. A pickled Surprise
    k-NN recommender becomes a .esb version-2 blob (see --neighbours). Pickles are loaded
    through an allow-list: anything but scikit-learn linear models, scalers, pipelines,
    Surprise's four k-NN classes, numpy and scipy.sparse arrays is refused before it runs.
    """
    from edgesparse.api import compress_file
    from edgesparse.frontend_knn import KnnCompressReport, knn_summary
    from edgesparse.report import compress_summary

    if sparsity and threshold is not None:
        raise click.UsageError("give --sparsity or --threshold, not both")
    if neighbours is not None and neighbours not in ("all", "exact"):
        if not neighbours.isdigit() or int(neighbours) < 1:
            raise click.UsageError(
                f"--neighbours must be a whole number >= 1, 'all' or 'exact', not {neighbours!r}"
            )
        neighbours = int(neighbours)
    if output is None:
        output = model.with_suffix("." + (fmt or "esb"))
    report = compress_file(
        model,
        output,
        sparsity=sparsity,
        threshold=threshold,
        prune_scope=prune_scope,
        quantize=quantize,
        granularity=granularity,
        columns=columns,
        check_data=check_data,
        format=fmt,
        opset=opset,
        onnx_sparse=onnx_sparse,
        onnx_int8=onnx_int8,
        neighbours=neighbours,
        calibration=calibration,
        max_accuracy_drop=max_accuracy_drop,
        max_agreement_loss=max_agreement_loss,
        max_r2_drop=max_r2_drop,
        refit=refit,
        holdout=holdout,
        seed=seed,
        confidence=confidence,
        force=force,
        report=report_path,
        progress=_terminal_progress(),
    )
    if as_json:
        _echo(json.dumps(report.to_dict(), indent=2))
    elif isinstance(report, KnnCompressReport):
        _echo(knn_summary(report))
    else:
        _echo(compress_summary(report))


@cli.command()
@click.argument("blob", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect(blob: Path, as_json: bool) -> None:
    """Verify a .esb file (header, shapes, nnz, dtype, bytes, checksums) or an .onnx model
    (onnx.checker full check; ops, opset, inputs/outputs, initializer dtypes and bytes)."""
    from edgesparse.formats import esb
    from edgesparse.report import key_values

    if _is_onnx_file(blob):
        from edgesparse.formats import onnx as onnx_format

        info = onnx_format.inspect_file(blob)
    else:
        info = esb.inspect_file(blob)
    _echo(json.dumps(info, indent=2) if as_json else key_values(info))


def _is_onnx_file(path: Path) -> bool:
    """By the bytes, as edgesparse.load decides: no ESB magic means ONNX; a missing or
    unreadable file by its name (the reader then reports the problem)."""
    from edgesparse.formats.container import BlobKind, kind_of_file

    kind = kind_of_file(path)
    if kind is None:
        return path.suffix.lower() == ".onnx"
    return kind is BlobKind.ONNX and path.suffix.lower() != ".esb"


@cli.command()
@click.argument("blob", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--proba", is_flag=True, help="Class probabilities instead of labels.")
@click.option("--decision", is_flag=True, help="Raw decision scores instead of labels.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Save as .npy instead of printing."
)
def predict(blob: Path, data: Path, proba: bool, decision: bool, output: Path | None) -> None:
    """Predict with a .esb or .onnx model on DATA (.npy with X, .npz with X or CSR parts, or a
    .csv/.tsv/.txt table of numbers, one row per line, optional header).

    For a k-NN recommender blob, DATA is a CSV of user,item rows; each output line is
    user, item, estimate and 1 when the prediction was impossible (global-mean fallback)."""
    import edgesparse
    from edgesparse.data import load_dataset, save_npy
    from edgesparse.report import array_lines, knn_lines
    from edgesparse.runtime import KnnModel

    if proba and decision:
        raise click.UsageError("give --proba or --decision, not both")
    model = edgesparse.load(blob)
    if isinstance(model, KnnModel):
        from edgesparse.frontend_knn import read_pairs

        if proba or decision:
            raise click.UsageError("--proba and --decision do not apply to a k-NN recommender")
        pairs, _ = read_pairs(data, user_ids=model.ir.user_ids, item_ids=model.ir.item_ids)
        est, impossible = model.predict_many(pairs, with_flags=True)
        if output is not None:
            save_npy(output, est)
        else:
            _echo(knn_lines(pairs, est, impossible))
        return
    X = load_dataset(data).X
    if proba:
        # OnnxModel says it directly; the numpy Model through its IR.
        has_proba = model.has_proba if hasattr(model, "has_proba") else model.ir.has_proba
        if not has_proba:
            raise click.ClickException(
                "this model has no predict_proba (nor does the original); use --decision"
            )
        result = model.predict_proba(X)
    elif decision:
        result = model.decision_function(X)
    else:
        result = model.predict(X)
    if output is not None:
        save_npy(output, result)
    else:
        _echo(array_lines(result))


@cli.command(name="list")
@click.argument("what", type=click.Choice(["models", "formats", "heads"]))
def list_(what: str) -> None:
    """List supported models, output formats or model heads."""
    if what == "models":
        from edgesparse.frontend import supported_models
        from edgesparse.frontend_knn import SURPRISE_KNN_CLASSES

        items = [*supported_models(), *(f"surprise.{n}" for n in SURPRISE_KNN_CLASSES)]
    elif what == "formats":
        from edgesparse.api import FORMATS

        items = list(FORMATS)
    else:
        from edgesparse.ir import HEADS

        items = list(HEADS)
    _echo("\n".join(items))


@cli.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for report.md, report.html, the PNG plots and a copy of results.json.",
)
def report(results: Path, out_dir: Path) -> None:
    """Re-render the report from RESULTS (a results.json written by `edgesparse bench`)."""
    from edgesparse.bench.report import write_report
    from edgesparse.bench.results import read_results

    for path in write_report(read_results(results), out_dir):
        _echo(str(path))


@cli.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--target",
    "targets",
    multiple=True,
    default=("host",),
    show_default=True,
    help="host, a device profile (rpi3, rpi4, rpi5, see `edgesparse devices list`) or "
    "ssh://[user@]host[:port][?python=PATH]. Repeatable.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Input rows: .npy (X), .npz (X, optional y used as labels) or a .csv/.tsv/.txt table.",
)
@click.option("--labels", type=click.Path(path_type=Path), help="True labels (.npy) for accuracy.")
@click.option(
    "--batch",
    "batch_sizes",
    type=click.IntRange(min=1),
    multiple=True,
    default=(1,),
    show_default=True,
    help="Rows per timed call. Repeatable.",
)
@click.option("--runs", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=100, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="onnxruntime intra-op threads.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds per artifact and target before its process group is killed.",
)
@click.option("--strict", is_flag=True, help="Stop at the first failure instead of recording it.")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for results.json, report.md, report.html and the plots.",
)
def bench(
    artifacts: tuple[Path, ...],
    targets: tuple[str, ...],
    data: Path,
    labels: Path | None,
    batch_sizes: tuple[int, ...],
    runs: int,
    warmup: int,
    threads: int,
    timeout_s: float,
    strict: bool,
    out_dir: Path,
) -> None:
    """Measure ARTIFACTS (.esb, .onnx, and .pkl/.joblib/.skops as the host-only scikit-learn
    baseline) on each target: latency percentiles, throughput, cold start, memory, label
    agreement. Emulated targets (QEMU) are labelled: their timings are not device latency.
    Extra ssh options (identity file, known_hosts) go in EDGESPARSE_SSH_OPTS.

    Write c:MODEL.esb to time the C runtime on that blob (engine c, next to MODEL.esb on the
    numpy runtime): built per target with cc, aarch64-linux-gnu-gcc (emulated Pi targets, run
    under their QEMU) or the board's cc over ssh; EDGESPARSE_CC / EDGESPARSE_CC_AARCH64 pick
    other compilers."""
    import shlex

    from edgesparse.bench.harness import run_bench
    from edgesparse.bench.report import write_report

    results = run_bench(
        artifacts=list(artifacts),
        targets=list(targets),
        data=data,
        labels=labels,
        batch_sizes=batch_sizes,
        runs=runs,
        warmup=warmup,
        threads=threads,
        timeout_s=timeout_s,
        strict=strict,
        progress=_terminal_progress(),
        command=shlex.join(["edgesparse", *sys.argv[1:]]),
    )
    paths = write_report(results, out_dir)
    _echo(_bench_table(results))
    for path in paths:
        _echo(str(path))


def _bench_table(results: dict[str, Any]) -> str:
    """A fixed-width summary, one line per target x artifact x batch size, and a legend.

    rows/s is derived from p50 (so the two columns agree); the agreement column's header names
    its reference, and accuracy or R² against the labels get their own column.
    """
    from edgesparse.bench.explain import reference_label, reference_sentence, rows_per_s_at_p50

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    def us(v: float | None) -> str:
        return num(v, ".2f" if v is not None and v < 10 else ".1f")

    def pct(v: float | None) -> str:
        return num(v, ".2%")

    def agree(r: dict[str, Any]) -> str:
        if r["agreement"] is None and r.get("max_abs_diff") is not None:
            return f"diff {r['max_abs_diff']:.3g}"  # regressors: largest |difference|
        return pct(r["agreement"])

    rows = results["results"]
    ref = reference_label(results)
    kind = (results.get("reference") or {}).get("kind")
    # With labels as the reference, agreement already is the accuracy: no second column.
    show_acc = kind != "labels" and any(r.get("accuracy") is not None for r in rows)
    show_r2 = any(r.get("r2") is not None for r in rows)
    # (header, right-aligned, cell)
    columns: list[tuple[str, bool, Callable[[dict[str, Any]], str]]] = [
        ("target", False, lambda r: r["target"] + ("*" if r["emulated"] else "")),
        ("artifact", False, lambda r: r["artifact"]),
        ("batch", True, lambda r: str(r["batch_size"])),
        ("p50 us", True, lambda r: us((r["latency_us"] or {}).get("p50"))),
        ("p99 us", True, lambda r: us((r["latency_us"] or {}).get("p99"))),
        ("rows/s@p50", True, lambda r: num(rows_per_s_at_p50(r), ",.0f")),
        ("cold ms", True, lambda r: num(r["cold_start_ms"], ".0f")),
    ]
    if ref is not None:
        columns.append((f"agree vs {ref}", True, agree))
    if show_acc:
        columns.append(("accuracy", True, lambda r: pct(r.get("accuracy"))))
    if show_r2:
        columns.append(("R2", True, lambda r: num(r.get("r2"), ".4f")))
    columns.append(
        (
            "status",
            False,
            lambda r: r["status"] if r["status"] == "ok" else f"{r['status']}: {r['error']}",
        )
    )
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


@cli.group()
def devices() -> None:
    """Benchmark targets: the profiles in devices/*.toml and their emulated setups."""


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.1f} GiB"


def _yes_no(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "no")


@devices.command(name="list")
def devices_list() -> None:
    """Show every target, what it is, and whether it can run here."""
    from edgesparse.bench.targets import list_targets, target_status

    rows = [("name", "kind", "cpu", "cores", "RAM", "dotprod", "emulated", "status")]
    for t in list_targets():
        _ready, why = target_status(t)
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
    for r in rows:
        _echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    _echo("real boards: --target ssh://[user@]host[:port]")


@devices.command(name="setup")
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild everything this target uses.")
def devices_setup(name: str, force: bool) -> None:
    """Fetch and build what the emulated target NAME needs (into the cache, not the repo)."""
    import time

    from edgesparse.bench.provision import provision
    from edgesparse.bench.targets import cache_dir, get_target, read_stamp

    target = get_target(name)
    started = time.monotonic()
    state: dict[str, Any] = {"bar": None, "done": 0}

    def progress(message: str, done: int, total: int) -> None:
        if state["bar"] is None:
            state["bar"] = click.progressbar(length=total, label=name, show_pos=True, width=24)
            state["bar"].__enter__()
        bar = state["bar"]
        bar.label = f"{message[:52]:<52}"
        bar.update(done - state["done"])
        state["done"] = done

    try:
        folder = provision(target, progress=progress, force=force)
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)
    stamp = read_stamp(target) or {}
    _echo(f"{name}: ready in {time.monotonic() - started:.1f} s")
    _echo(f"  cache:   {cache_dir()}")
    _echo(f"  target:  {folder}")
    for key in ("sysroot", "site", "qemu"):
        if key in stamp:
            _echo(f"  {key + ':':<8} {stamp[key]}")
    if stamp.get("versions"):
        _echo("  guest:   " + ", ".join(f"{k} {v}" for k, v in stamp["versions"].items()))


@devices.command(name="show")
@click.argument("name")
def devices_show(name: str) -> None:
    """Show one target's profile and status."""
    from edgesparse.bench.targets import get_target, target_status

    t = get_target(name)
    _ready, why = target_status(t)
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
        "caches": ", ".join(
            f"L{c.level}{c.type[0].lower() if c.level == 1 else ''} {c.size_kib}K"
            f"{' shared' if c.shared else ''}"
            for c in t.caches
        )
        or None,
        "guest": (
            f"Python {t.guest.python} (Debian {t.guest.debian_suite} {t.guest.debian_arch}), "
            + ", ".join(t.guest.wheels)
            if t.guest
            else None
        ),
        "notes": t.notes,
        "profile": t.source,
        "status": why,
    }
    for key, value in fields.items():
        if value not in (None, ""):
            _echo(f"{key + ':':<13}{value}")


@cli.command(name="export-c")
@click.argument("blob", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the C sources (created if missing).",
)
@click.option(
    "--name",
    default="model",
    show_default=True,
    help="Prefix of the generated C symbols (a C identifier).",
)
def export_c(blob: Path, out_dir: Path, name: str) -> None:
    """Write BLOB as C sources: the C99 runtime, the model as a const array, a main.c."""
    from edgesparse.export_c import export_c as export

    for path in export(blob, out_dir, name=name):
        _echo(f"wrote {path}")
    _echo(f"build: make -C {out_dir}  then: {out_dir}/model_main < rows.txt (README.txt)")


def main() -> None:
    """Entry point of the ``edgesparse`` console script."""
    cli(prog_name="edgesparse")
