#!/usr/bin/env bash
# Creates .venv (once) and installs edgesparse with its test tools into it. Sourced by
# scripts/demo.sh and scripts/test.sh, so each of those is the one command a fresh machine needs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EDGESPARSE_VENV:-$root/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e "$root[dev]"
export PATH="$venv/bin:$PATH"
