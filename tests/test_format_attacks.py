"""Hostile ``.skops`` files and Surprise k-NN pickles (tests/attacks/make_format_attacks.py):
each ends, through the real CLI under 1.5 GiB of address space and 60 s of CPU, in exactly the
``Error:`` line its manifest gives, exit code 1 and no output file."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.attacks import make_format_attacks

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = make_format_attacks.attacks()
BUDGET_AS = 3 << 29  # 1.5 GiB
BUDGET_SECONDS = 60


def _limited() -> None:  # runs in the child, before exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (BUDGET_AS, BUDGET_AS))
    resource.setrlimit(resource.RLIMIT_CPU, (BUDGET_SECONDS, BUDGET_SECONDS))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("format-attacks")
    make_format_attacks.write_all(out)
    return out


def _expected(template: str, path: Path) -> re.Pattern[str]:
    text = re.escape("Error: " + template.replace("{path}", str(path)))
    return re.compile(text.replace(re.escape("{n}"), r"\d+"))


def test_names_are_unique() -> None:
    assert len({a.name for a in ATTACKS}) == len(ATTACKS) >= 8


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_format_attack_is_one_error_line(attack, fixtures: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec(attack.needs) is None:
        pytest.skip(f"needs {attack.needs}")
    src = fixtures / f"{attack.name}{attack.suffix}"
    out = tmp_path / "o.esb"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    for var in ("EDGESPARSE_MAX_ARRAY_BYTES", "EDGESPARSE_MAX_UNPACKED_BYTES"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-m", "edgesparse", "compress", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=BUDGET_SECONDS,
        env=env,
        preexec_fn=_limited,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert _expected(attack.error, src).fullmatch(proc.stderr.rstrip("\n")), proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not out.exists()
