"""Test-session settings shared by every module."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis would otherwise keep its cache in ./.hypothesis: tests must not write into the
# checkout. The fuzz tests are derandomized, so nothing of value is lost with the temp dir.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="edgesparse-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _c_build_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The session's compiled C programs (tests/cbuild.py), in this run's pytest temporary
    directory: under xdist the workers' folders (popen-gwN) share their parent, this run's."""
    from tests import cbuild

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cbuild.set_cache_dir(root / "cbuild")


def require_tool(available: bool, *, what: str, install: str) -> None:
    """Skip when a system tool is truly absent, unless CI demands it (then fail loudly).

    ``.ci/run`` sets ``EDGESPARSE_REQUIRE_TARGETS=1`` after installing the Debian packages, so a
    broken install can never turn into a green run of skips.
    """

    if available:
        return
    message = f"{what} is not available here; install it with: {install}"
    if os.environ.get("EDGESPARSE_REQUIRE_TARGETS") == "1":
        pytest.fail(f"EDGESPARSE_REQUIRE_TARGETS=1 but {message}")
    pytest.skip(message)


ROOT = Path(__file__).resolve().parents[1]
BUDGET_AS = 3 << 29
"""1.5 GiB of address space: the budget SECURITY.md promises for any input file."""
BUDGET_SECONDS = 60
"""CPU seconds of that budget (RLIMIT_CPU): the bound on the work, whatever the machine's load."""
HANG_SECONDS = 5 * BUDGET_SECONDS
"""Wall-clock guard against a child that blocks without using CPU (RLIMIT_CPU cannot see that).
Generous, so that a child within its CPU budget is not cut short on a loaded machine (2 cores
shared by several test runs stretch wall time several-fold); not the budget itself."""


def _limited() -> None:  # runs in the child, before exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (BUDGET_AS, BUDGET_AS))
    # Past the soft limit the kernel sends SIGXCPU (which ends the child); the hard limit,
    # a second later, SIGKILL. No core file from that end.
    resource.setrlimit(resource.RLIMIT_CPU, (BUDGET_SECONDS, BUDGET_SECONDS + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_cli_limited(
    args: Sequence[str], *, unset: Sequence[str] = (), cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m edgesparse ARGS`` under the hostile-input budget (1.5 GiB of address space,
    60 CPU seconds; :data:`HANG_SECONDS` of wall clock against a blocked child), one BLAS
    thread, with the environment variables ``unset`` removed (the caps' overrides), so that a
    test sees the defaults a user gets. A child past either bound fails the test, saying which."""
    import pytest

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    for var in unset:
        env.pop(var, None)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edgesparse", *args],
            capture_output=True,
            text=True,
            timeout=HANG_SECONDS,
            cwd=cwd,
            env=env,
            preexec_fn=_limited,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"edgesparse {' '.join(args)} ran {HANG_SECONDS} s of wall clock within its CPU "
            "budget: blocked, not computing"
        )
    if proc.returncode == -signal.SIGXCPU:
        pytest.fail(f"edgesparse {' '.join(args)} used more than {BUDGET_SECONDS} CPU seconds")
    return proc
