"""Blobs and data files whose reading would cost far more than their size
(tests/attacks/make_reader_attacks.py): each ends, through the real CLI under 1.5 GiB of
address space and 60 s of CPU, in exactly the ``Error:`` line its manifest gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attacks import make_reader_attacks
from tests.conftest import run_cli_limited


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
    proc = run_cli_limited(
        [c.format(**fill) for c in attack["command"]],
        unset=("EDGESPARSE_MAX_ARRAY_BYTES", "EDGESPARSE_MAX_DATA_BYTES"),
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    expected = attack["error"].format(**fill, size=path.stat().st_size)
    assert proc.stderr == f"Error: {expected}\n"
