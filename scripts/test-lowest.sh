#!/usr/bin/env bash
# The whole test suite against the LOWEST versions pyproject.toml allows, in its own venv
# (.venv-lowest; EDGESPARSE_LOWEST_VENV moves it). The pins are generated from pyproject.toml
# by scripts/lowest_constraints.py, so raising a floor there is the only edit. CI runs this
# after scripts/test.sh: a floor that no longer works fails here before a user finds it.
# Extra arguments go to pytest, which runs in parallel as in scripts/test.sh
# (scripts/pytest-workers.sh). Lint is not repeated (ruff is pinned: same as scripts/test.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EDGESPARSE_LOWEST_VENV:-$root/.venv-lowest}"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
# What scripts/lowest_constraints.py needs before edgesparse is installed.
"$py" -m pip install --quiet --upgrade pip packaging "tomli; python_version < '3.11'"
constraints="$venv/lowest-constraints.txt"
"$py" "$root/scripts/lowest_constraints.py" >"$constraints"
echo "test-lowest: pinning $(tr '\n' ' ' <"$constraints")" >&2
# -c adds to the machine's own pip constraints (pip.conf's "constraint"), it does not replace
# them; pip's build environments (scikit-surprise builds from source) are not pinned by it.
"$py" -m pip install --quiet -c "$constraints" -e "$root[dev]"
# What pip resolved must be exactly the floors: a floor it silently lifted would test nothing.
"$py" "$root/scripts/lowest_constraints.py" --check >&2
source "$root/scripts/system-deps.sh"
export PATH="$venv/bin:$PATH"
source "$root/scripts/pytest-workers.sh"
cd "$root"
python -m pytest -q "${pytest_workers[@]}" "$@"
