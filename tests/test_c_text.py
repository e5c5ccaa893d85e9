"""The C runtime's text input stage (runtime/c/esb_text.c) against the numpy runtime and
scikit-learn: its Unicode tables, its verifier and its features."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "edgesparse/runtime/c/esb_unicode.h"


def test_unicode_tables_are_this_pythons() -> None:
    """The committed tables are what the generator writes from this Python's str methods and
    unicodedata (regenerated and compared, when the Unicode versions agree)."""
    head = TABLES.read_text(encoding="utf-8").splitlines()[1]
    if f'"{unicodedata.unidata_version}"' not in head:
        pytest.skip(f"tables are for another Unicode version ({head}); regenerate to compare")
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_unicode_tables.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
