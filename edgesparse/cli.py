"""The ``edgesparse`` command. It only parses arguments, calls the library and prints; every
:class:`~edgesparse.errors.EdgesparseError` becomes one ``Error: ...`` line and exit code 1
(usage errors exit 2, as click does)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgesparse.errors import EdgesparseError, InputError
from edgesparse.version import __version__


def _echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Every line the command prints goes through here: characters a file could use to rewrite
    the screen or fake lines (ESC, CR, BEL, ..., lone surrogates) are shown escaped."""
    from edgesparse.summary import terminal_text

    click.echo(terminal_text(str(text), keep_lines=True), err=err, nl=nl)


class _Group(click.Group):
    """Turns library errors into click's one-line ``Error:`` output, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        from edgesparse.summary import terminal_text

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
    "--onnx-input",
    type=click.Choice(["auto", "dense", "csr"]),
    default="auto",
    show_default=True,
    help="ONNX only: the graph's input. dense: X float32 [N, n_features]. csr: the rows' CSR "
    "arrays (indices int64, values float32, indptr int64; opset >= 16), for wide sparse "
    "input such as hashed text, where it runs as fast as the .esb model and the dense graph "
    "tens of times slower. auto: csr for models of 65536 features or more (unless --opset "
    "< 16 or --onnx-int8 matmulinteger), dense otherwise. edgesparse.load feeds either form "
    "CSR or dense rows.",
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
    '--max-agreement-loss alone. A text pipeline takes JSON lines {"text": ..., '
    '"label": ...}, a tabular one a CSV of records under a header, the label last. Part '
    "chooses the pruning, the held-out part (--holdout) certifies the budget.",
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
    type=click.Path(path_type=Path),
    help="Write the accuracy-aware search as JSON here: the guarantee, each certified "
    "sequence and its p-values, the chosen point, flipped rows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def compress(model: Path, as_json: bool, **options: Any) -> None:
    """Prune and quantize MODEL (.pkl, .joblib, .skops or .npz weights) into a .esb blob or a
    standard-op ONNX graph (--format onnx, or -o NAME.onnx).

    The defaults are safe for accuracy: int8 weights with one scale per row and no pruning
    (typically >= 99.5% label agreement). Pruning happens only when --sparsity or --threshold
    is given, or a budget with --calibration: then the sparsest model certified, on held-out
    calibration rows, to stay within the budget on new rows is written. A pipeline that
    starts with a text vectorizer or a ColumnTransformer keeps that step in the artifact: it
    reads raw documents or records (check with --check-data docs.txt or rows.csv; its budget's
    --calibration holds labelled ones: cal.jsonl or cal.csv). A pickled
    Surprise k-NN recommender becomes a .esb version-2 blob (see --neighbours), an SVD, SVDpp,
    NMF or BaselineOnly one a version-3 blob. Pickles are loaded through an allow-list:
    anything but scikit-learn linear models, scalers, vectorizers, encoders, imputers,
    pipelines, these Surprise models, numpy and scipy.sparse arrays is refused before it runs.
    """
    from edgesparse.pipeline import CompressOptions, compress_file
    from edgesparse.summary import compress_summary

    # click's parameter names are CompressOptions' field names (one per option).
    if options["sparsity"] and options["threshold"] is not None:
        raise click.UsageError("give --sparsity or --threshold, not both")
    neighbours = options["neighbours"]
    if neighbours is not None and neighbours not in ("all", "exact"):
        if not neighbours.isdigit() or int(neighbours) < 1:
            raise click.UsageError(
                f"--neighbours must be a whole number >= 1, 'all' or 'exact', not {neighbours!r}"
            )
        options["neighbours"] = int(neighbours)
    if options["output"] is None:
        options["output"] = model.with_suffix("." + (options["format"] or "esb"))
    report = compress_file(CompressOptions(source=model, **options), progress=_terminal_progress())
    _echo(json.dumps(report.to_dict(), indent=2) if as_json else compress_summary(report))


@cli.command()
@click.argument("blob", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect(blob: Path, as_json: bool) -> None:
    """Verify a .esb file (header, shapes, nnz, dtype, bytes, checksums) or an .onnx model
    (onnx.checker full check; ops, opset, inputs/outputs, initializer dtypes and bytes)."""
    from edgesparse.formats import esb
    from edgesparse.summary import key_values

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

    For a model that starts with a text featurizer, DATA is a UTF-8 text file, one document
    per line. For a recommender blob (k-NN or matrix factorization), DATA is a CSV of user,item
    rows; each output line is user, item, estimate and 1 when the prediction was impossible
    (global-mean fallback)."""
    import edgesparse
    from edgesparse.data import save_npy
    from edgesparse.runtime import FactorModel, KnnModel
    from edgesparse.summary import array_lines, knn_lines

    if proba and decision:
        raise click.UsageError("give --proba or --decision, not both")
    model = edgesparse.load(blob)
    if isinstance(model, (KnnModel, FactorModel)):
        from edgesparse.data import read_pairs

        if proba or decision:
            what = "k-NN" if isinstance(model, KnnModel) else "matrix-factorization"
            raise click.UsageError(f"--proba and --decision do not apply to a {what} recommender")
        pairs, _ = read_pairs(data, user_ids=model.ir.user_ids, item_ids=model.ir.item_ids)
        est, impossible = model.predict_many(pairs, with_flags=True)
        if output is not None:
            save_npy(output, est)
        else:
            _echo(knn_lines(pairs, est, impossible))
        return
    X = _predict_input(model, data)
    if proba:
        # OnnxModel says it directly; the numpy Model through its IR.
        has_proba = model.has_proba if hasattr(model, "has_proba") else model.ir.has_proba
        if not has_proba:
            raise InputError(
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


def _predict_input(model: Any, data: Path) -> Any:
    """What ``predict`` feeds ``model``: documents for a text model, records for a tabular one,
    else a table's rows."""
    from edgesparse.data import load_dataset, read_documents, read_records

    featurizer = getattr(getattr(model, "ir", None), "featurizer", None)
    stage = getattr(model, "input_stage", None)  # an OnnxModel's ("text", "tabular" or None)
    if hasattr(featurizer, "columns") or stage == "tabular":  # records
        return read_records(data)
    if featurizer is not None or stage == "text":
        return read_documents(data)
    return load_dataset(data).X


@cli.command(name="list")
@click.argument("what", type=click.Choice(["models", "formats", "heads"]))
def list_(what: str) -> None:
    """List supported models, output formats or model heads."""
    if what == "models":
        from edgesparse.frontends import listed_models

        items = listed_models()
    elif what == "formats":
        from edgesparse.options import FORMATS

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
    help="Input rows: .npy (X), .npz (X, optional y used as labels) or a .csv/.tsv/.txt table; "
    "for k-NN recommender blobs, a user,item[,rating] CSV of held-out pairs; for blobs with a "
    "text featurizer, a UTF-8 text file, one document per line; for blobs with a tabular "
    "input stage, a CSV of records with a header row.",
)
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    help="True labels (.npy; for text blobs also a text file, one label per line) for accuracy.",
)
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
    agreement. A k-NN recommender blob is timed on --data pairs (predict, batches,
    recommend) and scored by RMSE/MAE, with its Surprise pickle (host only) as the reference.
    A blob with a text featurizer is timed on --data documents (one with a tabular input stage
    on a --data CSV of records), featurization included, with its scikit-learn pipeline (host
    only) as the reference; c: rows featurize in C, and .onnx models compressed from the same
    pipeline take the same documents or records.
    Emulated targets (QEMU) are labelled: their timings are not device latency.
    Extra ssh options (identity file, known_hosts) go in EDGESPARSE_SSH_OPTS.

    Write c:MODEL.esb to time the C runtime on that blob (engine c, next to MODEL.esb on the
    numpy runtime): built per target with cc, aarch64-linux-gnu-gcc (emulated Pi targets, run
    under their QEMU) or the board's cc over ssh; EDGESPARSE_CC / EDGESPARSE_CC_AARCH64 pick
    other compilers."""
    import shlex

    from edgesparse.bench.harness import run_bench
    from edgesparse.bench.report import write_report
    from edgesparse.summary import bench_table

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
    _echo(bench_table(results))
    for path in paths:
        _echo(str(path))


@cli.group()
def devices() -> None:
    """Benchmark targets: the profiles in devices/*.toml and their emulated setups."""


@devices.command(name="list")
def devices_list() -> None:
    """Show every target, what it is, and whether it can run here."""
    from edgesparse.bench.targets import list_targets, target_status
    from edgesparse.summary import targets_table

    _echo(targets_table([(t, target_status(t)[1]) for t in list_targets()]))
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
    from edgesparse.summary import target_lines

    t = get_target(name)
    _echo(target_lines(t, target_status(t)[1]))


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
    # The input differs by kind (feature rows, records, documents, id pairs): README.txt says.
    _echo(f"build: make -C {out_dir}  then: {out_dir}/model_main < INPUT ({out_dir}/README.txt)")


def main() -> None:
    """Entry point of the ``edgesparse`` console script."""
    cli(prog_name="edgesparse")
