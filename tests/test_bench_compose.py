"""Transports x engines composed by one runner: ``run_engine`` on a real ``LocalTransport``
(real child processes) with small engines written here, and the results module's row
builders. What an engine's set-up failure does to its artifacts, the spawn timestamp every
command gets, the process group killed on timeout."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgesparse.bench.engines import Artifact, Tracker, run_engine
from edgesparse.bench.results_build import Outcome, result_rows, target_entry
from edgesparse.bench.targets import get_target
from edgesparse.bench.transports import LocalTransport, StepFailed, Transport, open_transport
from tests.test_harness import _pid_alive


def _arts(tmp_path: Path, n: int) -> list[Artifact]:
    out = []
    for i in range(n):
        path = tmp_path / f"m{i}.esb"
        path.write_bytes(b"x" * (i + 1))
        out.append(Artifact(f"m{i}.esb", path, "esb", i + 1, "0" * 64))
    return out


@dataclasses.dataclass
class _EchoSession:
    """Runs the host Python, which prints the spawn stamp it was given and the staged path."""

    transport: Transport
    paths: list[str]

    def measure(self, index: int, art: Artifact) -> Outcome:
        code = (
            "import os, sys; print(os.environ['EDGESPARSE_PROBE_T0_CLOCK'], "
            "os.environ['EDGESPARSE_PROBE_T0_NS'], sys.argv[1])"
        )
        res = self.transport.run(
            [sys.executable, "-c", code, self.paths[index]], env={}, log=f"e{index}"
        )
        clock, stamp, path = res.stdout().split()
        result = {"clock": clock, "t0": int(stamp), "path": path, "rc": res.rc}
        return Outcome(result=result, status="ok")


@dataclasses.dataclass
class _EchoEngine:
    fail_with: str | None = None

    def failure(self, reason: str) -> str:
        return f"engine echo: {reason}"

    def prepare(
        self, transport: Transport, arts: Sequence[Artifact], *, tracker: Tracker
    ) -> _EchoSession:
        transport.open()
        paths = [transport.stage(f"a{i}", art.path) for i, art in enumerate(arts)]
        transport.push()
        if self.fail_with:
            raise StepFailed(self.fail_with)
        return _EchoSession(transport, paths)


def test_local_transport_runs_each_artifact_with_a_spawn_stamp(tmp_path: Path) -> None:
    arts = _arts(tmp_path, 2)
    calls: list[tuple[str, int, int]] = []
    tracker = Tracker(lambda m, d, t: calls.append((m, d, t)), total=2)
    transport = open_transport(get_target("host"), tmp_path, timeout_s=60, ssh_options=[])
    assert isinstance(transport, LocalTransport)
    before = time.monotonic_ns()
    outcomes = run_engine(_EchoEngine(), transport, arts, tracker=tracker)
    after = time.monotonic_ns()
    for art in arts:
        result = outcomes[art.name].result
        assert result is not None and result["rc"] == 0
        # Files are used in place locally; the stamp is the host's monotonic clock at spawn.
        assert result["path"] == str(art.path)
        assert result["clock"] == "monotonic" and before <= result["t0"] <= after
    assert calls == [("host: m0.esb", 0, 2), ("host: m1.esb", 1, 2)]
    assert tracker.done == 2


def test_a_failed_set_up_fails_every_artifact_with_the_engines_words(tmp_path: Path) -> None:
    arts = _arts(tmp_path, 3)
    tracker = Tracker(None, total=3)
    transport = LocalTransport(get_target("host"), tmp_path, timeout_s=60)
    outcomes = run_engine(_EchoEngine(fail_with="no compiler"), transport, arts, tracker=tracker)
    assert [(o.status, o.error) for o in outcomes.values()] == [
        ("failed", "engine echo: no compiler")
    ] * 3
    assert tracker.done == 3  # every artifact counted once, so progress reaches the total


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    transport = LocalTransport(get_target("host"), tmp_path, timeout_s=1.0)
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    res = transport.run(
        ["/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; sleep 300"], env={}, log="hang"
    )
    assert res.rc is None and time.monotonic() - started < 30
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(child)  # the backgrounded grandchild went with its group


def test_result_rows_and_target_entry_from_outcomes(tmp_path: Path) -> None:
    (art,) = _arts(tmp_path, 1)
    host = get_target("host")
    failed = Outcome(error="exit code 3: boom")
    rows = result_rows(target=host, artifact=art.declaration(), outcome=failed, batch_sizes=(1, 8))
    assert [(r["batch_size"], r["status"], r["error"]) for r in rows] == [
        (1, "failed", "exit code 3: boom"),
        (8, "failed", "exit code 3: boom"),
    ]
    assert all(r["latency_us"] is None and r["model_bytes"] == 1 for r in rows)
    entry: dict[str, Any] = target_entry(target=host, outcomes=[failed])
    assert (entry["status"], entry["error"]) == ("failed", "exit code 3: boom")
    skipped = Outcome(status="skipped", error="host only")
    assert target_entry(target=host, outcomes=[skipped])["status"] == "skipped"
