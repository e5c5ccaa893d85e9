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
