"""The ``edgesparse`` command. It only parses arguments, calls the library and prints; every
:class:`~edgesparse.errors.EdgesparseError` becomes one ``Error: ...`` line and exit code 1
(usage errors exit 2, as click does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edgesparse import __version__
from edgesparse.errors import EdgesparseError


class _Group(click.Group):
    """Turns library errors into click's one-line ``Error:`` output, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgesparseError as exc:
            raise click.ClickException(str(exc)) from None


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
    help="Output file (.esb). Default: MODEL with the suffix .esb, next to MODEL.",
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
    type=click.Choice(["int8", "float32", "none"]),
    default="int8",
    show_default=True,
    help="Weight storage: symmetric int8 (w = s*q), float32, or none (float64, lossless).",
)
@click.option(
    "--granularity",
    type=click.Choice(["row", "tensor"]),
    default="row",
    show_default=True,
    help="One int8 scale per output row, or one for the whole matrix.",
)
@click.option(
    "--check-data",
    type=click.Path(path_type=Path),
    help="A .npz with X (and optionally y): report agreement with the original model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def compress(
    model: Path,
    output: Path | None,
    sparsity: float,
    threshold: float | None,
    prune_scope: str,
    quantize: str,
    granularity: str,
    check_data: Path | None,
    as_json: bool,
) -> None:
    """Prune and quantize MODEL (.pkl, .joblib, .skops or .npz weights) into a .esb blob.

    The defaults are safe for accuracy: int8 weights with one scale per row and no pruning
    (typically >= 99.5% label agreement). Pruning happens only when --sparsity or --threshold
    is given. Pickles are loaded through an allow-list: anything but scikit-learn linear
    models, scalers, pipelines, numpy and scipy.sparse arrays is refused before it runs.
    """
    from edgesparse.api import compress_file
    from edgesparse.report import compress_summary

    if sparsity and threshold is not None:
        raise click.UsageError("give --sparsity or --threshold, not both")
    report = compress_file(
        model,
        output if output is not None else model.with_suffix(".esb"),
        sparsity=sparsity,
        threshold=threshold,
        prune_scope=prune_scope,
        quantize=quantize,
        granularity=granularity,
        check_data=check_data,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(compress_summary(report))


@cli.command()
@click.argument("blob", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect(blob: Path, as_json: bool) -> None:
    """Verify a .esb file and show its header, shapes, nnz, dtype, bytes and checksums."""
    from edgesparse.formats import esb
    from edgesparse.report import key_values

    info = esb.inspect_file(blob)
    click.echo(json.dumps(info, indent=2) if as_json else key_values(info))


@cli.command()
@click.argument("blob", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--proba", is_flag=True, help="Class probabilities instead of labels.")
@click.option("--decision", is_flag=True, help="Raw decision scores instead of labels.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Save as .npy instead of printing."
)
def predict(blob: Path, data: Path, proba: bool, decision: bool, output: Path | None) -> None:
    """Predict with a .esb model on DATA (.npy with X, or .npz with X or CSR parts)."""
    import edgesparse
    from edgesparse.data import load_dataset, save_npy
    from edgesparse.report import array_lines

    if proba and decision:
        raise click.UsageError("give --proba or --decision, not both")
    model = edgesparse.load(blob)
    X = load_dataset(data).X
    if proba:
        if not model.ir.has_proba:
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
        click.echo(array_lines(result))


@cli.command(name="list")
@click.argument("what", type=click.Choice(["models", "formats", "heads"]))
def list_(what: str) -> None:
    """List supported models, output formats or model heads."""
    if what == "models":
        from edgesparse.frontend import supported_models

        items = supported_models()
    elif what == "formats":
        from edgesparse.api import FORMATS

        items = list(FORMATS)
    else:
        from edgesparse.ir import HEADS

        items = list(HEADS)
    click.echo("\n".join(items))


def main() -> None:
    """Entry point of the ``edgesparse`` console script."""
    cli(prog_name="edgesparse")
