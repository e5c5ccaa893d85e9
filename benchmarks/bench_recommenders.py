"""Every recommender kind on every target: the README's recommender table (issue 21, item 5).

The committed example table (``models/train_knn.py``: 120 users x 80 items, seeded; nothing
downloaded) and its held-out pairs (``models/knn_ratings.test.csv``). Models: the bundled
``KNNWithMeans`` pickle and ``SVD``, ``SVDpp`` (5 epochs), ``NMF`` and ``BaselineOnly``
trained here on the same training rows (Surprise defaults, seeded). Each is compressed with
``edgesparse compress`` (defaults) and measured by ``edgesparse bench`` itself, the product's
own command, on the host and the emulated Raspberry Pi 4 (``--target``), with the numpy
runtime (``model.esb``), the C runtime (``c:model.esb``) and Surprise (the pickle, host only).
A row the bench lists as skipped keeps its reason.

Prints a Markdown table (bytes, RMSE against the ratings, batch-1 ``predict``,
``predict_many`` per pair, ``recommend(user, n=10)``, cold start) and writes JSON (``--out``,
default benchmarks/results/recommenders.json) with the bench's own rows. Compare ratios within
a target, not absolute times: emulated figures are QEMU on the host, and the machine is shared.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"SVD": {}, "SVDpp": {"n_epochs": 5}, "NMF": {}, "BaselineOnly": {}}
PAIRS = ROOT / "models" / "knn_ratings.test.csv"


def _train_module() -> Any:
    spec = importlib.util.spec_from_file_location("train_knn", ROOT / "models" / "train_knn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pickles(workdir: Path) -> dict[str, Path]:
    """The bundled k-NN pickle and the factor models trained on the same training rows."""
    import surprise

    t = _train_module()
    train, _ = t.split(t.make_ratings())
    out = {"KNNWithMeans": ROOT / "models" / "knn_means.pkl"}
    for cls, extra in MODELS.items():
        options = {"verbose": False} if cls == "BaselineOnly" else {"random_state": 0}
        algo = getattr(surprise, cls)(**options, **extra).fit(t.trainset(train))
        path = workdir / f"{cls.lower()}.pkl"
        path.write_bytes(pickle.dumps(algo))
        out[cls] = path
    return out


def _edgesparse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgesparse", *args], capture_output=True, text=True, cwd=ROOT
    )


def bench_one(name: str, pkl: Path, workdir: Path, targets: list[str]) -> dict[str, Any]:
    """Compress one model and bench its blob (numpy and C) and pickle on ``targets``."""
    blob = workdir / f"{pkl.stem}.esb"
    done = _edgesparse("compress", str(pkl), "-o", str(blob))
    if done.returncode != 0:
        raise SystemExit(f"{name}: compress failed: {done.stderr.strip()}")
    report = workdir / f"report-{pkl.stem}"
    args = ["bench", str(blob), f"c:{blob}", str(pkl), "--data", str(PAIRS)]
    for target in targets:
        args += ["--target", target]
    done = _edgesparse(*args, "--batch", "1", "--batch", "64", "-o", str(report))
    out = {"model": name, "pickle_bytes": pkl.stat().st_size, "esb_bytes": blob.stat().st_size}
    if done.returncode != 0:  # listed in the table with the bench's own words
        return {**out, "rows": [], "error": done.stderr.strip()}
    return {**out, "rows": json.loads((report / "results.json").read_text())["results"]}


def _cell(row: dict[str, Any] | None, key: str, fmt: str, scale: float = 1.0) -> str:
    if row is None or row.get("status") != "ok":
        return "—"
    value = row.get(key)
    if isinstance(value, dict):
        value = value.get("p50")
    return "—" if value is None else format(value * scale, fmt)


def table(measured: list[dict[str, Any]]) -> list[str]:
    """The Markdown table: one line per model, target and engine."""
    lines = [
        "| model | target | engine | bytes (pickle → .esb) | RMSE vs ratings | predict p50 µs "
        "| predict_many(64) µs/pair | recommend n=10 p50 µs | cold start ms | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in measured:
        if m.get("error"):
            lines.append(f"| {m['model']} | — | — | {m['esb_bytes']:,} | | | | | | {m['error']} |")
            continue
        rows = m["rows"]
        keys = sorted({(r["target"], r["engine"], r["artifact"]) for r in rows})
        for target, engine, artifact in keys:
            one = next(
                (
                    r
                    for r in rows
                    if (r["target"], r["artifact"], r["batch_size"]) == (target, artifact, 1)
                ),
                None,
            )
            many = next(
                (
                    r
                    for r in rows
                    if (r["target"], r["artifact"], r["batch_size"]) == (target, artifact, 64)
                ),
                None,
            )
            size = f"{m['pickle_bytes']:,}" if engine == "surprise" else f"{m['esb_bytes']:,}"
            status = (one or {}).get("status", "?")
            if status != "ok":
                status = f"{status}: {(one or {}).get('error') or ''}"[:90]
            lines.append(
                f"| {m['model']} | {target} | {engine} | {size} | {_cell(one, 'rmse', '.4f')} "
                f"| {_cell(one, 'latency_us', '.1f')} "
                f"| {_cell(many, 'latency_us', '.1f', 1 / 64)} "
                f"| {_cell(one, 'recommend_latency_us', '.0f')} "
                f"| {_cell(one, 'cold_start_ms', '.0f')} | {status} |"
            )
    return lines


def main() -> None:
    """Compress and bench every model, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append", help="bench targets (default: host, rpi4)")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "recommenders.json"
    )
    args = ap.parse_args()
    targets = args.target or ["host", "rpi4"]
    with tempfile.TemporaryDirectory(prefix="edgesparse-recs-") as tmp:
        work = Path(tmp)
        measured = [bench_one(n, p, work, targets) for n, p in pickles(work).items()]
    print("\n".join(table(measured)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(measured, indent=2) + "\n")


if __name__ == "__main__":
    main()
