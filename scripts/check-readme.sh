#!/usr/bin/env bash
# A new user's first commands, checked: clone this repository's HEAD (committed work only) into
# a temporary folder and run the README's first ```bash block there, line by line, as the
# README tells a user to. The clone builds its own .venv (pip's download/wheel cache is shared,
# the checkout's .venv is not). CI runs this after scripts/test.sh. Keeps the clone on failure
# (its path is printed) and removes it on success.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
head="$(git -C "$root" rev-parse HEAD)"
if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]]; then
  echo "check-readme: note: uncommitted changes are not part of the check (it clones HEAD)" >&2
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/edgesparse-readme.XXXXXX")"
clone="$tmp/edgesparse"
git clone --quiet --no-checkout "$root" "$clone"
git -C "$clone" checkout --quiet --detach "$head"

# The first ```bash block of the README, comments and blank lines dropped.
commands="$(awk '/^```bash$/ {inside = 1; next} inside && /^```/ {exit} inside' "$clone/README.md" |
  sed -e 's/[[:space:]]#.*$//' -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d')"
if [[ -z "$commands" ]]; then
  echo "check-readme: README.md has no \`\`\`bash block" >&2
  exit 1
fi

# Nothing of this checkout's environment may leak in: no venv on PATH, no venv override.
unset VIRTUAL_ENV EDGESPARSE_VENV PYTHONPATH
PATH="$(tr ':' '\n' <<<"$PATH" | grep -v '/\.venv[^/]*/bin$' | paste -sd: -)"
export PATH
# CHECK_README_TESTS=collect (.ci/run): the test command sets up, lints and collects the suite
# here but does not run it a second time: CI's first stage ran it on its own clean clone.
while IFS= read -r line; do
  if [[ "${CHECK_README_TESTS:-run}" == collect && "$line" == *scripts/test.sh* ]]; then
    line="$line --collect-only -q"
  fi
  echo "check-readme: \$ $line   (in a fresh clone of $head)" >&2
  if ! (cd "$clone" && bash -c "$line" </dev/null); then
    echo "check-readme: FAILED: $line (the clone is kept in $clone)" >&2
    exit 1
  fi
done <<<"$commands"
rm -rf "$tmp"
echo "check-readme: every command of the README's first bash block passed on a fresh clone" >&2
