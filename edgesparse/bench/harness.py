"""The bench runner: times every artifact on every target and gathers the results dict of the
``edgesparse-bench`` schema (docs/BENCH.md, owned by :mod:`edgesparse.bench.results_schema`).

For each target it groups the artifacts by engine (the Python probe; the C driver for
``c:model.esb``, :mod:`edgesparse.bench.engine_c`) and runs each group through the target's
transport (local process, QEMU user mode, ssh: :mod:`edgesparse.bench.transports`) with
:func:`edgesparse.bench.engines.run_engine`. Each artifact runs in its own process (so RSS and
cold start belong to one artifact); hangs, crashes, the OOM killer, missing tools and failing
connections become rows with ``status: "failed"`` and the reason, and the run goes on unless
``strict=True``. The reference every ``agreement`` compares with is computed here, on the host.
A run of k-NN recommender blobs on user,item pairs is prepared by
:mod:`edgesparse.bench.recommender` and measured by the same probe
(:mod:`edgesparse.bench.probe_knn`). A run of blobs with a text featurizer on a file of
documents is prepared by :mod:`edgesparse.bench.textbench` and times ``predict`` on raw
documents (featurization included) with the same probe, as it times ``.onnx`` models whose
graph holds the text stage, and the C driver on the same documents; a run of blobs with a
tabular input stage on a CSV of records is prepared by :mod:`edgesparse.bench.tabbench`,
likewise (the C driver splitting each record from its CSV text inside the timed call).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench import engine_c, engine_c_knn, recommender, tabbench, textbench
from edgesparse.bench.engines import Artifact, Engine, ProbeEngine, Progress, Tracker, run_engine
from edgesparse.bench.inputs import (
    ENGINE_BY_SUFFIX,
    ENGINE_PREFIXES,
    artifacts_of,
    check_counts,
    labels_of,
    linear_reference,
    targets_of,
)
from edgesparse.bench.probe import load_artifact
from edgesparse.bench.results_build import (
    Outcome,
    new_results,
    result_rows,
    target_entry,
)
from edgesparse.bench.transports import env_ssh_options, open_transport
from edgesparse.data import load_dataset
from edgesparse.errors import InputError, ModelFileError, TargetError
from edgesparse.formats.sniff import sniff

# Extra seconds a probe's own SIGALRM backstop waits beyond the harness's timeout.
_ALARM_GRACE_S = 30

__all__ = ["ENGINE_BY_SUFFIX", "ENGINE_PREFIXES", "run_bench"]


def run_bench(
    *,
    artifacts: Sequence[str | os.PathLike[str]],
    targets: Sequence[Any],
    data: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    batch_sizes: Sequence[int] = (1,),
    runs: int = 1000,
    warmup: int = 100,
    threads: int = 1,
    timeout_s: float = 600.0,
    strict: bool = False,
    progress: Progress | None = None,
    ssh_options: Sequence[str] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Benchmark every artifact on every target and return the results dict (schema
    ``edgesparse-bench`` version 1).

    Args:
        artifacts: ``.esb``, ``.onnx`` and scikit-learn model files (``.pkl``/``.joblib``/
            ``.skops``; these run on the host only, as the baseline); ``c:model.esb`` times
            the C runtime on that blob (artifact name ``c:model.esb``). Or k-NN recommender
            blobs, with the Surprise pickle as the host-only reference
            (:mod:`edgesparse.bench.recommender`; their ``c:`` rows run the C driver).
        targets: target specs (``"host"``, ``"rpi4"``, ``"ssh://pi@board"``) or ``Target``s.
        data: ``.npy``/``.npz`` input rows (``y`` in an ``.npz`` serves as labels), or for
            k-NN blobs a ``user,item[,rating]`` CSV of held-out pairs, or for blobs with a
            text featurizer a UTF-8 text file, one document per line, or for blobs with a
            tabular input stage a CSV of records with a header row (in both, ``c:`` rows run
            the C driver and ``.onnx`` models compressed from the same pipeline take the raw
            input too; the pipeline pickle is the reference).
        labels: optional ``.npy`` of true labels (or targets, for regressors); for text
            blobs also a text file with one label per line.
        batch_sizes: rows per timed call; one result row per batch size.
        runs: timed calls per batch size; warmup: untimed calls before them.
        threads: onnxruntime intra-op threads.
        timeout_s: seconds one probe may take before its process group is killed.
        strict: raise on the first failed target/artifact instead of recording it.
        progress: called as ``progress(message, done, total)`` before each step (the
            reference, each artifact x target probe, builds and ssh set-up; ``done`` probes
            have finished of ``total``) and as ``("done", total, total)`` at the end.
        ssh_options: extra ``ssh``/``scp`` options (else ``$EDGESPARSE_SSH_OPTS``).
        command: the command line to record in the results (or None).

    Raises:
        InputError: bad arguments (unknown suffix, duplicate names, bad counts).
        ModelFileError: a missing artifact or data file.
        TargetError: with ``strict=True``, the first failure.
    """
    check_counts(batch_sizes=batch_sizes, runs=runs, warmup=warmup, threads=threads)
    if timeout_s <= 0:
        raise InputError(f"timeout must be positive, got {timeout_s}")
    settings: _Settings = (batch_sizes, runs, warmup, threads, timeout_s)
    arts = artifacts_of(artifacts)
    tgts = targets_of(targets)
    recommend, algo = any(a.knn for a in arts), None
    text = not recommend and any(a.text for a in arts)
    tabular = not recommend and not text and any(a.tabular for a in arts)
    if recommend:
        arts, algo = _recommender_artifacts(arts, labels)
    elif text:
        algo = textbench.reference_pipeline(arts)
    elif tabular:
        algo = tabbench.reference_pipeline(arts)
    tracker = Tracker(progress, total=len(tgts) * len(arts))
    tracker.report(f"loading {Path(data).name} and the reference predictions")
    opts = list(ssh_options) if ssh_options is not None else env_ssh_options()
    workdir = Path(tempfile.mkdtemp(prefix="edgesparse-bench-"))
    try:
        if recommend:
            engines, reference, run_settings = _recommender_run(workdir, arts, data, algo, settings)
        elif text:
            engines, reference, run_settings = _text_run(
                workdir, arts, data, labels, algo, settings
            )
        elif tabular:
            engines, reference, run_settings = _tabular_run(
                workdir, arts, data, labels, algo, settings
            )
        else:
            engines, reference, run_settings = _linear_run(workdir, arts, data, labels, settings)
        rows, entries = _bench_targets(
            tgts, arts, engines, workdir, opts, tracker, strict, settings
        )
        tracker.report("done")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return new_results(
        command=command,
        settings=run_settings,
        artifacts=[a.declaration() for a in arts],
        targets=entries,
        reference=reference,
        rows=rows,
    )


def _linear_run(
    workdir: Path,
    arts: list[Artifact],
    data: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    settings: _Settings,
) -> tuple[dict[str, Engine], dict[str, Any], dict[str, Any]]:
    """Engines, reference and settings of a run of linear models on rows."""
    data_path = Path(data).resolve()
    if recommender.looks_like_pairs(data_path):
        names = ", ".join(a.name for a in arts)
        raise InputError(
            f"{data_path.name} holds user,item pairs, the data of a recommender blob (.esb "
            f"compressed from a Surprise model), and none of {names} is one; linear "
            "models take rows of features (--data X.npz, .npy or a CSV of numbers)"
        )
    dataset = _numeric_dataset(data_path, arts)
    y = labels_of(labels, dataset)
    ref_kind, ref_source, ref_pred, task = linear_reference(arts, dataset.X, y)
    engines = _engines(workdir, arts, dataset.X, data_path, ref_pred, y, task, settings)
    reference = {"kind": ref_kind, "source": ref_source}
    return engines, reference, _settings(data, labels, y, settings)


def _numeric_dataset(data_path: Path, arts: list[Artifact]) -> Any:
    """The rows of a linear run; a file of documents is refused saying what to give."""
    try:
        return load_dataset(data_path)
    except InputError as exc:
        kind = sniff(data_path) if data_path.is_file() else None
        if kind is not None and not kind.text:
            raise
        names = ", ".join(a.name for a in arts)
        raise InputError(
            f"cannot benchmark {names} on {data_path.name}: {exc}; none of {names} starts "
            "with a text featurizer, so --data must be rows "
            "of features (X.npz, .npy or a CSV of numbers); a file of documents, one per "
            "line, is the data of a blob compressed from a text pipeline"
        ) from None


def _text_run(
    workdir: Path,
    arts: list[Artifact],
    data: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    pipeline: Any,
    settings: _Settings,
) -> tuple[dict[str, Engine], dict[str, Any], dict[str, Any]]:
    """Engines (the probe; the C driver on the same documents), reference and settings of a
    run of text blobs on documents (:mod:`edgesparse.bench.textbench`)."""
    data_path = Path(data).resolve()
    prep = textbench.prepare(arts, data=data_path, workdir=workdir, pipeline=pipeline)
    y = None
    if labels is not None:
        lp = Path(labels)
        if not lp.is_file():
            raise ModelFileError(f"labels file not found: {lp} (check the path)")
        y = textbench.read_labels(lp, n=prep.n_documents)
    common = _common_spec(
        workdir, data_path=prep.data, ref=prep.reference, y=y, task=prep.task, settings=settings
    )
    make_context = functools.partial(
        engine_c.text_context,
        workdir=workdir,
        arts=arts,
        documents=list(prep.documents),
        ref=prep.reference,
        y=y,
        task=prep.task,
        common=common,
    )
    common["input"] = "text"
    run_settings = _settings(data, labels, y, settings)
    run_settings["documents"] = prep.n_documents
    reference = {"kind": prep.ref_kind, "source": prep.ref_source}
    engines = {"probe": ProbeEngine(common), "c": engine_c.DriverEngine(make_context)}
    return engines, reference, run_settings


def _tabular_run(
    workdir: Path,
    arts: list[Artifact],
    data: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    pipeline: Any,
    settings: _Settings,
) -> tuple[dict[str, Engine], dict[str, Any], dict[str, Any]]:
    """Engines (the probe; the C driver on the same records), reference and settings of a
    run of tabular blobs on records (:mod:`edgesparse.bench.tabbench`)."""
    data_path = Path(data).resolve()
    prep = tabbench.prepare(arts, data=data_path, workdir=workdir, pipeline=pipeline)
    y = None
    if labels is not None:
        lp = Path(labels)
        if not lp.is_file():
            raise ModelFileError(f"labels file not found: {lp} (check the path)")
        y = textbench.read_labels(lp, n=prep.n_records, what="records")
    common = _common_spec(
        workdir, data_path=prep.data, ref=prep.reference, y=y, task=prep.task, settings=settings
    )
    make_context = functools.partial(
        engine_c.records_context,
        workdir=workdir,
        arts=arts,
        records=prep.records,
        ref=prep.reference,
        y=y,
        task=prep.task,
        common=common,
    )
    common["input"] = "records"
    run_settings = _settings(data, labels, y, settings)
    run_settings["records"] = prep.n_records
    reference = {"kind": prep.ref_kind, "source": prep.ref_source}
    engines = {"probe": ProbeEngine(common), "c": engine_c.DriverEngine(make_context)}
    return engines, reference, run_settings


def _recommender_artifacts(
    arts: list[Artifact], labels: str | os.PathLike[str] | None
) -> tuple[list[Artifact], Any]:
    """The artifacts of a recommender run (pickles re-tagged ``surprise``) and the Surprise
    model of the first pickle, the reference (or None)."""
    if labels is not None:
        raise InputError(
            "--labels is for linear models; a recommender's true ratings are the third "
            "column of its --data pairs file (user,item,rating)"
        )
    surprise = _surprise_pickles(arts)
    arts = recommender.check_artifacts(arts, surprise=set(surprise))
    return arts, next(iter(surprise.values()), None)


def _recommender_run(
    workdir: Path,
    arts: list[Artifact],
    data: str | os.PathLike[str],
    algo: Any,
    settings: _Settings,
) -> tuple[dict[str, Engine], dict[str, Any], dict[str, Any]]:
    """Engines (the probe; the C driver on the same pairs,
    :mod:`edgesparse.bench.engine_c_knn`), reference and settings of a run of k-NN
    recommenders on pairs (:mod:`edgesparse.bench.recommender`); ``algo`` is the Surprise
    reference model, or None."""
    from edgesparse.bench.probe_knn import RECOMMEND_MAX_RUNS, RECOMMEND_N

    data_path = Path(data).resolve()
    prep = recommender.prepare(arts, data=data_path, workdir=workdir, surprise_model=algo)
    common = _common_spec(
        workdir,
        data_path=prep.data,
        ref=prep.reference,
        y=prep.ratings,
        task="recommendation",
        settings=settings,
    )
    batch_sizes, runs, warmup, threads, timeout_s = settings
    run_settings = {
        "task": "recommendation",
        "data": str(data),
        "runs": int(runs),
        "warmup": int(warmup),
        "batch_sizes": [int(b) for b in batch_sizes],
        "threads": int(threads),
        "labels": f"{data_path.name} (ratings)" if prep.ratings is not None else None,
        "timeout_s": float(timeout_s),
        "pairs": prep.n_pairs,
        "unknown_pairs_left_out": prep.unknown_pairs,
        "recommend_n": RECOMMEND_N,
        "recommend_runs": min(int(runs), RECOMMEND_MAX_RUNS),
    }
    reference = {"kind": prep.ref_kind, "source": prep.ref_source}
    make_context = functools.partial(
        engine_c_knn.pairs_context,
        workdir=workdir,
        pairs=list(prep.pairs),
        ref=prep.reference,
        ratings=prep.ratings,
        common=common,
    )
    engines = {"probe": ProbeEngine(common), "c": engine_c.DriverEngine(make_context)}
    return engines, reference, run_settings


def _surprise_pickles(arts: list[Artifact]) -> dict[str, Any]:
    """The pickles among ``arts`` that hold a Surprise recommender (k-NN or matrix
    factorization), by name, with that model (read by the allow-list loader, which refuses
    anything else Surprise defines)."""
    from edgesparse.frontends.surprise import is_surprise_knn
    from edgesparse.frontends.surprise_factors import is_surprise_factors

    models = {
        a.name: load_artifact("surprise", str(a.path), 1) for a in arts if a.engine == "sklearn"
    }
    return {n: m for n, m in models.items() if is_surprise_knn(m) or is_surprise_factors(m)}


def _engines(
    workdir: Path,
    arts: list[Artifact],
    X: Any,
    data_path: Path,
    ref: np.ndarray | None,
    y: np.ndarray | None,
    task: str,
    settings: _Settings,
) -> dict[str, Engine]:
    """The engines of this run: the Python probe and the C driver, sharing one spec."""
    common = _common_spec(workdir, data_path=data_path, ref=ref, y=y, task=task, settings=settings)
    # The C driver's rows file and class labels are made when a target first runs one.
    make_context = functools.partial(
        engine_c.driver_context,
        workdir=workdir,
        arts=arts,
        X=X,
        ref=ref,
        y=y,
        task=task,
        common=common,
    )
    return {
        "probe": ProbeEngine(common),
        "c": engine_c.DriverEngine(make_context),
    }


def _bench_targets(
    tgts: list[Any],
    arts: list[Artifact],
    engines: dict[str, Engine],
    workdir: Path,
    ssh_options: list[str],
    tracker: Tracker,
    strict: bool,
    settings: _Settings,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every artifact on every target, in order: the result rows and the targets' entries."""
    batch_sizes, timeout_s = settings[0], settings[4]
    rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for k, target in enumerate(tgts):
        tdir = workdir / f"target-{k}"
        tdir.mkdir()
        outcomes = _run_target(target, arts, engines, tdir, timeout_s, ssh_options, tracker)
        for art in arts:
            rows.extend(_checked_rows(target, art, outcomes[art.name], batch_sizes, strict))
        entries.append(target_entry(target=target, outcomes=[outcomes[a.name] for a in arts]))
    return rows, entries


def _run_target(
    target: Any,
    arts: list[Artifact],
    engines: dict[str, Engine],
    tdir: Path,
    timeout_s: float,
    ssh_options: list[str],
    tracker: Tracker,
) -> dict[str, Outcome]:
    """Every artifact on one target: each engine's group through its own transport (its own
    work dir, and on a board its own remote temp dir)."""
    outcomes: dict[str, Outcome] = {}
    groups: dict[str, list[Artifact]] = {key: [] for key in engines}
    for art in arts:
        why = _skip_reason(art, target)
        if why is not None:
            outcomes[art.name] = Outcome(status="skipped", error=why)
            tracker.advance()
            continue
        groups["c" if art.engine == "c" else "probe"].append(art)
    for key, group in groups.items():
        if group:
            wd = tdir / key
            wd.mkdir()
            transport = open_transport(target, wd, timeout_s=timeout_s, ssh_options=ssh_options)
            outcomes.update(run_engine(engines[key], transport, group, tracker=tracker))
    return outcomes


def _skip_reason(art: Artifact, target: Any) -> str | None:
    """Why ``art`` is not run on ``target`` (a row that says so), or None."""
    if art.engine == "sklearn" and target.kind != "host":
        return "scikit-learn models run on the host only (the baseline)"
    if art.engine == "surprise" and target.kind != "host":
        return recommender.SURPRISE_HOST_ONLY
    return None


def _checked_rows(
    target: Any, art: Artifact, outcome: Outcome, batch_sizes: Sequence[int], strict: bool
) -> list[dict[str, Any]]:
    if strict and outcome.status == "failed":
        raise TargetError(
            f"{target.name}: {art.name}: {outcome.error} (--strict stops here; "
            "drop --strict to record failures and go on)"
        )
    return result_rows(
        target=target, artifact=art.declaration(), outcome=outcome, batch_sizes=batch_sizes
    )


# The five run settings every part shares: batch sizes, runs, warmup, threads, timeout.
_Settings = tuple[Sequence[int], int, int, int, float]


def _common_spec(
    workdir: Path,
    *,
    data_path: Path,
    ref: np.ndarray | None,
    y: np.ndarray | None,
    task: str,
    settings: _Settings,
) -> dict[str, Any]:
    """The spec fields every probe shares (local paths; reference and labels saved here)."""
    batch_sizes, runs, warmup, threads, timeout_s = settings
    ref_path, labels_path = workdir / "reference.npy", workdir / "labels.npy"
    if ref is not None:
        np.save(ref_path, ref, allow_pickle=False)
    if y is not None:
        np.save(labels_path, y, allow_pickle=False)
    return {
        "data": str(data_path),
        "reference": str(ref_path) if ref is not None else None,
        "labels": str(labels_path) if y is not None else None,
        "task": task,
        "batch_sizes": [int(b) for b in batch_sizes],
        "runs": int(runs),
        "warmup": int(warmup),
        "threads": int(threads),
        "deadline_s": float(timeout_s) + _ALARM_GRACE_S,
    }


def _settings(
    data: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    y: np.ndarray | None,
    settings: _Settings,
) -> dict[str, Any]:
    batch_sizes, runs, warmup, threads, timeout_s = settings
    return {
        "runs": int(runs),
        "warmup": int(warmup),
        "batch_sizes": [int(b) for b in batch_sizes],
        "threads": int(threads),
        "data": str(data),
        # Labels given with --labels, or the y stored in the --data .npz.
        "labels": (
            str(labels) if labels is not None else (f"{data} (y)" if y is not None else None)
        ),
        "timeout_s": float(timeout_s),
    }
