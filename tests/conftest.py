"""Test-session settings shared by every module."""

from __future__ import annotations

import atexit
import shutil
import tempfile

from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis would otherwise keep its cache in ./.hypothesis: tests must not write into the
# checkout. The fuzz tests are derandomized, so nothing of value is lost with the temp dir.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="edgesparse-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)


def require_tool(available: bool, *, what: str, install: str) -> None:
    """Skip when a system tool is truly absent, unless CI demands it (then fail loudly).

    ``.ci/run`` sets ``EDGESPARSE_REQUIRE_TARGETS=1`` after installing the Debian packages, so a
    broken install can never turn into a green run of skips.
    """
    import os

    import pytest

    if available:
        return
    message = f"{what} is not available here; install it with: {install}"
    if os.environ.get("EDGESPARSE_REQUIRE_TARGETS") == "1":
        pytest.fail(f"EDGESPARSE_REQUIRE_TARGETS=1 but {message}")
    pytest.skip(message)
