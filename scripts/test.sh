#!/usr/bin/env bash
# Set up, then run the linters and the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
source "$root/scripts/system-deps.sh"
cd "$root"
ruff check .
ruff format --check .
python -m pytest -q "$@"
