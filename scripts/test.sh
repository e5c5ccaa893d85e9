#!/usr/bin/env bash
# Set up, then run the linters and the whole test suite. As root it also installs the Debian
# packages of the target tests (scripts/system-deps.sh; EDGESPARSE_NO_SYSTEM_DEPS=1 skips that).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
source "$root/scripts/system-deps.sh"
cd "$root"
ruff check .
ruff format --check .
lint-imports  # the floors (pyproject.toml [tool.importlinter])
# In parallel, one worker per core (scripts/pytest-workers.sh); extra arguments go to pytest
# after these, so `bash scripts/test.sh -n 0 tests/test_cli.py` runs one file serially.
source "$root/scripts/pytest-workers.sh"
python -m pytest -q "${pytest_workers[@]}" "$@"
