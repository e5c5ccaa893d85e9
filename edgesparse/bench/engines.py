"""Engines: what a bench measures on a target, independent of how the target is reached.

An :class:`Engine` says what to build and stage, the command to run per artifact and how to
read what the command leaves; a :class:`~edgesparse.bench.transports.Transport` carries it out.
The runner (:mod:`edgesparse.bench.harness`) composes the two with :func:`run_engine`.

- :class:`ProbeEngine`: the Python probe (:mod:`edgesparse.bench.probe`), one process per
  artifact, reading a JSON spec and writing a JSON result. On a remote transport the
  edgesparse package travels too (``.py`` files only) and is byte-compiled once up front.
- The C driver (``c:model.esb``) is :class:`edgesparse.bench.engine_c.DriverEngine`.

This module also holds what both engines and the runner share: :class:`Artifact` and the
progress :class:`Tracker` (an artifact's :class:`~edgesparse.bench.results_build.Outcome` is the
schema module's).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from edgesparse.bench.results_build import Outcome
from edgesparse.bench.transports import Command, StepFailed, Transport, failure
from edgesparse.errors import ToolMissingError

#: ``progress(message, done, total)``.
Progress = Callable[[str, int, int], None]
PROBE_MODULE = "edgesparse.bench.probe"


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One artifact to time: its row label, file, engine (``esb``, ``onnx``, ``sklearn``,
    ``surprise``, ``c``), size and hash; ``knn`` marks a recommender blob (k-NN or matrix
    factorization), ``text`` a blob (or ONNX model) whose model starts with a text featurizer,
    ``tabular`` one with a tabular input stage."""

    name: str
    path: Path
    engine: str
    model_bytes: int
    sha256: str
    knn: bool = False
    text: bool = False
    tabular: bool = False

    def declaration(self) -> dict[str, Any]:
        """The artifact's entry in the results' ``artifacts`` list."""
        return {
            "artifact": self.name,
            "path": str(self.path),
            "engine": self.engine,
            "model_bytes": self.model_bytes,
            "sha256": self.sha256,
        }


class Tracker:
    """Counts finished artifacts for the ``progress(message, done, total)`` callback."""

    def __init__(self, progress: Progress | None, *, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def report(self, message: str) -> None:
        """Tell the callback what starts now."""
        if self.progress is not None:
            self.progress(message, self.done, self.total)

    def advance(self) -> None:
        """One more artifact x target finished."""
        self.done += 1


class Session(Protocol):
    """An engine set up on one transport: measures one artifact at a time."""

    def measure(self, index: int, art: Artifact) -> Outcome:
        """Run ``art`` (the ``index``-th of the engine's artifacts) and read its outcome."""


class Engine(Protocol):
    """What to build and stage, what to run, how to read it (see the module docstring)."""

    def failure(self, reason: str) -> str:
        """The row's error text for a reason this engine failed for."""

    def prepare(
        self, transport: Transport, arts: Sequence[Artifact], *, tracker: Tracker
    ) -> Session:
        """Build and stage on ``transport``; raises StepFailed or ToolMissingError."""


def run_engine(
    engine: Engine, transport: Transport, arts: Sequence[Artifact], *, tracker: Tracker
) -> dict[str, Outcome]:
    """Prepare ``engine`` on ``transport`` and measure each artifact; failures of the set-up
    (a missing tool, an unreachable board, a failed build) fail the artifacts not yet run."""
    outcomes: dict[str, Outcome] = {}

    def fail_rest(reason: str) -> dict[str, Outcome]:
        for art in arts:
            if art.name not in outcomes:
                outcomes[art.name] = Outcome(error=engine.failure(reason))
                tracker.advance()
        return outcomes

    why = transport.ready()
    if why is not None:
        return fail_rest(why)
    try:
        session = engine.prepare(transport, arts, tracker=tracker)
        for i, art in enumerate(arts):
            tracker.report(f"{transport.target.name}: {art.name}")
            outcomes[art.name] = session.measure(i, art)
            tracker.advance()
    except (StepFailed, ToolMissingError) as exc:
        return fail_rest(str(exc))
    finally:
        transport.close()
    return outcomes


def read_result(path: Path) -> dict[str, Any] | None:
    """A probe's JSON result file as a dict (None when missing or not a JSON object)."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def probe_outcome(rc: int | None, stderr: str, result_path: Path, timeout_s: float) -> Outcome:
    """The outcome of one probe process: its result when it says ok, its own error, or why
    the process left none."""
    result = read_result(result_path) if rc is not None else None
    if result is not None and result.get("status") == "ok" and rc == 0:
        return Outcome(result=result, status="ok")
    if result is not None and result.get("error"):
        return Outcome(error=str(result["error"]))
    return Outcome(error=failure(rc, stderr, timeout_s))


def package_files() -> list[tuple[str, Path]]:
    """The edgesparse package's ``.py`` files (no caches, no data), as (name, path) pairs
    with names like ``edgesparse/bench/probe.py``."""
    src = Path(__file__).resolve().parents[1]
    return [
        ((Path("edgesparse") / path.relative_to(src)).as_posix(), path)
        for path in sorted(src.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]


# ---------------------------------------------------------------------------------------------
# The Python probe
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ProbeEngine:
    """The Python probe. ``common`` holds the spec fields every probe of a run shares, with
    local paths for ``data``, ``reference`` and ``labels`` (None where absent)."""

    common: dict[str, Any]

    def failure(self, reason: str) -> str:
        """The reason as it is."""
        return reason

    def prepare(
        self, transport: Transport, arts: Sequence[Artifact], *, tracker: Tracker
    ) -> ProbeSession:
        """Stage package (remote only), data, reference, labels, artifacts and one spec per
        artifact; send them; compile the package on the board."""
        target = transport.target
        if transport.remote:
            tracker.report(f"{target.name}: connecting")
        transport.open()
        shared = self._stage_inputs(transport)
        specs = []
        for i, art in enumerate(arts):
            spec = {
                **self.common,
                **shared,
                "artifact": transport.stage(f"artifact-{i}{art.path.suffix}", art.path),
                "engine": art.engine,
                "memory": "guest-heap" if target.emulated else "proc",
                "result": transport.output(f"result-{i}.json"),
            }
            specs.append(transport.stage_text(f"spec-{i}.json", json.dumps(spec)))
        if transport.remote:
            tracker.report(f"{target.name}: copying package, data and artifacts")
        transport.push()
        python = transport.python()
        if transport.remote:
            # Compile once up front, so that no artifact's cold start pays for byte-compiling.
            argv = [*python.argv, "-m", "compileall", "-q", transport.output("edgesparse")]
            res = transport.run(argv, env=python.env, log="compile")
            if res.rc != 0:
                reason = failure(res.rc, res.stderr, transport.timeout_s)
                raise StepFailed(f"{python.argv[0]} on the board: {reason}")
        facts = transport.facts()
        return ProbeSession(transport=transport, python=python, specs=specs, facts=facts)

    def _stage_inputs(self, transport: Transport) -> dict[str, str | None]:
        if transport.remote:
            for name, path in package_files():
                transport.stage(name, path)
        data = Path(self.common["data"])
        shared: dict[str, str | None] = {"data": transport.stage("data" + data.suffix, data)}
        for key in ("reference", "labels"):
            local = self.common.get(key)
            shared[key] = transport.stage(f"{key}.npy", Path(local)) if local else None
        return shared


@dataclasses.dataclass
class ProbeSession:
    """The probe staged on one transport: one process per artifact."""

    transport: Transport
    python: Command
    specs: list[str]
    facts: dict[str, Any]

    def measure(self, index: int, art: Artifact) -> Outcome:
        """Run the probe on the ``index``-th spec and read (fetch) its result."""
        t = self.transport
        argv = [*self.python.argv, "-m", PROBE_MODULE, self.specs[index]]
        res = t.run(argv, env=self.python.env, log=f"p{index}")
        name = f"result-{index}.json"
        local = t.workdir / name
        if res.rc in (0, 1):
            # The probe writes a result (ok or its own failure) in both cases.
            try:
                local = t.fetch(name)
            except StepFailed:
                pass  # no result file: the outcome says why the process left none
        outcome = probe_outcome(res.rc, res.stderr, local, t.timeout_s)
        if outcome.result is not None and self.facts:
            outcome.result.setdefault("environment", {}).update(self.facts)
        return outcome
