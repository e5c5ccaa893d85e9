"""Building a bench results dict (the harness's side of the ``results.json`` schema,
:mod:`edgesparse.bench.results_schema`): one :class:`Outcome` per artifact and target,
:func:`result_rows` and :func:`target_entry` from them, :func:`new_results` around them all.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

from edgesparse.bench.results_schema import RECOMMENDER_METRICS, SCHEMA, SCHEMA_VERSION
from edgesparse.version import __version__

__all__ = ["ROW_METRICS", "Outcome", "new_results", "result_rows", "target_entry"]


@dataclasses.dataclass
class Outcome:
    """What one artifact on one target gave: the probe-like result dict (its ``rows`` one per
    batch size), or why there is none (``status`` "failed" or "skipped")."""

    result: dict[str, Any] | None = None
    error: str | None = None
    status: str = "failed"


#: Row fields copied from an artifact's result as they are.
ROW_METRICS = (
    "cold_start_ms",
    "cold_start_method",
    "startup_ms",
    "load_ms",
    "peak_rss_bytes",
    "model_rss_bytes",
    "memory_method",
    "agreement",
    "accuracy",
    "r2",
)


def result_rows(
    *,
    target: Any,
    artifact: dict[str, Any],
    outcome: Outcome,
    batch_sizes: Sequence[int],
) -> list[dict[str, Any]]:
    """The ``results`` rows of one artifact (its ``artifacts`` entry) on one target: one per
    batch size, with the outcome's reason when it has no result."""
    head = {
        "target": target.name,
        "engine": artifact["engine"],
        "artifact": artifact["artifact"],
        "emulated": bool(target.emulated),
    }
    result = outcome.result
    if result is None:
        return [
            {
                **head,
                "batch_size": int(b),
                "status": outcome.status,
                "error": outcome.error,
                "latency_us": None,
                "throughput_rows_per_s": None,
                "runs": None,
                **dict.fromkeys(ROW_METRICS),
                "model_bytes": artifact["model_bytes"],
            }
            for b in batch_sizes
        ]
    kept = ("memory_detail", "max_abs_diff", "c_program", *RECOMMENDER_METRICS)
    extra = {k: result[k] for k in kept if k in result}
    return [
        {
            **head,
            "batch_size": r["batch_size"],
            "status": "ok",
            "error": None,
            "latency_us": r["latency_us"],
            "throughput_rows_per_s": r["throughput_rows_per_s"],
            "runs": r["runs"],
            **{k: result.get(k) for k in ROW_METRICS},
            "model_bytes": artifact["model_bytes"],
            **extra,
        }
        for r in result["rows"]
    ]


def target_entry(*, target: Any, outcomes: list[Outcome]) -> dict[str, Any]:
    """The ``targets`` entry of one target from its artifacts' outcomes: ok if any ran, else
    the first failure, else skipped; the environment the probe saw."""
    ok = [o for o in outcomes if o.status == "ok"]
    failed = [o for o in outcomes if o.status == "failed"]
    if ok:
        status, error = "ok", None
    elif failed:
        status, error = "failed", failed[0].error
    else:
        status, error = "skipped", outcomes[0].error if outcomes else "nothing to run"
    # The Python probe's environment says more (versions) than the C driver's: prefer it.
    ok = sorted(ok, key=lambda o: bool(o.result and o.result.get("engine") == "c"))
    environment = ok[0].result.get("environment") if ok and ok[0].result else None
    env = environment or {}
    # A board reached over ssh is only known once probed: its facts come from the probe.
    probed = target.kind == "ssh"
    return {
        "target": target.name,
        "kind": target.kind,
        "description": getattr(target, "description", None),
        "emulated": bool(target.emulated),
        "arch": (env.get("machine") if probed else None) or target.arch or None,
        "cpu": (env.get("cpu_model") if probed else None) or target.cpu or None,
        "cores": (env.get("cpu_count") if probed else None) or target.cores,
        "ram_bytes": (env.get("mem_total_bytes") if probed else None) or target.ram_bytes,
        "dotprod": target.dotprod,
        "notes": target.notes,
        "status": status,
        "error": error,
        "environment": environment,
    }


def new_results(
    *,
    command: str | None,
    settings: dict[str, Any],
    artifacts: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    reference: dict[str, Any],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """A results dict of the newest schema version, stamped with the time and the version."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "edgesparse_version": __version__,
        "command": command,
        "settings": settings,
        "artifacts": artifacts,
        "targets": targets,
        "reference": reference,
        "results": rows,
    }
