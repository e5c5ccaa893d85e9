"""Hostile ``.skops`` files and Surprise k-NN pickles (tests/attacks/make_format_attacks.py):
each ends, through the real CLI under 1.5 GiB of address space and 60 s of CPU, in exactly the
``Error:`` line its manifest gives, exit code 1 and no output file."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.attacks import make_format_attacks
from tests.conftest import run_cli_limited

ATTACKS = make_format_attacks.attacks()


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
    proc = run_cli_limited(
        ["compress", str(src), "-o", str(out)],
        unset=("EDGESPARSE_MAX_ARRAY_BYTES", "EDGESPARSE_MAX_UNPACKED_BYTES"),
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert _expected(attack.error, src).fullmatch(proc.stderr.rstrip("\n")), proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not out.exists()
