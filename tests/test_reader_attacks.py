"""Blobs and data files whose reading would cost far more than their size
(tests/attacks/make_reader_attacks.py): each ends, through the real CLI under 1.5 GiB of
address space and 60 s of CPU, in exactly the ``Error:`` line its manifest gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.attacks import make_reader_attacks

ROOT = Path(__file__).resolve().parents[1]
BUDGET_AS = 3 << 29  # 1.5 GiB
BUDGET_SECONDS = 60


def _limited() -> None:  # runs in the child, before exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (BUDGET_AS, BUDGET_AS))
    resource.setrlimit(resource.RLIMIT_CPU, (BUDGET_SECONDS, BUDGET_SECONDS))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reader-attacks")
    make_reader_attacks.write_all(out)
    return out


@pytest.mark.parametrize(
    "attack", make_reader_attacks.ATTACKS, ids=[a["name"] for a in make_reader_attacks.ATTACKS]
)
def test_reader_attack_is_one_error_line(attack: dict, fixtures: Path) -> None:
    path = fixtures / attack["file"]
    fill = {"path": str(path), "model": str(fixtures / "model.esb")}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    for var in ("EDGESPARSE_MAX_ARRAY_BYTES", "EDGESPARSE_MAX_DATA_BYTES"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-m", "edgesparse", *(c.format(**fill) for c in attack["command"])],
        capture_output=True,
        text=True,
        timeout=BUDGET_SECONDS,
        env=env,
        preexec_fn=_limited,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    expected = attack["error"].format(**fill, size=path.stat().st_size)
    assert proc.stderr == f"Error: {expected}\n"
