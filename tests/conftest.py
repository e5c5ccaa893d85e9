"""Test-session settings shared by every module."""

from __future__ import annotations

import atexit
import os
import shutil
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
"""CPU seconds (and wall-clock timeout) of that budget."""


def _limited() -> None:  # runs in the child, before exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (BUDGET_AS, BUDGET_AS))
    resource.setrlimit(resource.RLIMIT_CPU, (BUDGET_SECONDS, BUDGET_SECONDS))


def run_cli_limited(
    args: Sequence[str], *, unset: Sequence[str] = (), cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m edgesparse ARGS`` under the hostile-input budget (1.5 GiB, 60 s), one BLAS
    thread, with the environment variables ``unset`` removed (the caps' overrides), so that a
    test sees the defaults a user gets."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    for var in unset:
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "edgesparse", *args],
        capture_output=True,
        text=True,
        timeout=BUDGET_SECONDS,
        cwd=cwd,
        env=env,
        preexec_fn=_limited,
    )
