"""What the benchmark scripts share (not a benchmark itself): the bundled model names and the
peak-memory measurement.

``peak_rss_kib(body)`` runs ``body`` in a fresh Python process (numpy already imported) and
returns that process's peak resident set size in KiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The models `models/train.py` writes, small ones first; the last two only with --large.
MODELS = (
    "iris_l1_logreg",
    "iris_l2_logreg",
    "iris_sgd_l1",
    "digits_pipeline",
    "diabetes_ridge",
    "synthetic_sgd",
    "text_sgd",
)

# VmHWM, not getrusage: ru_maxrss survives exec and would report the parent's peak.
PEAK_RSS = """
import sys
import numpy as np
{body}
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""

# Children run with bytecode caching on, as an installed package on a device does: without
# .pyc files every import compiles its module, and compiling shows up as peak RSS.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def peak_rss_kib(body: str) -> int:
    """Peak RSS (KiB) of a fresh process that runs ``body`` from the repository root."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS.format(body=body)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=CHILD_ENV,
    )
    return int(out.stdout.strip().splitlines()[-1])
