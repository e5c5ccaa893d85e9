#!/usr/bin/env bash
# CI: does edgesparse work as a user of the wheel gets it? Builds the sdist and, from it, the
# wheel (python -m build), installs the wheel into a fresh venv outside the checkout and, from a
# folder outside the checkout with no PYTHONPATH or EDGESPARSE_DEVICES, runs
#   edgesparse devices list                 (the device profiles ship in the wheel)
#   edgesparse compress <bundled model>     (with --check-data; then export-c: the C sources)
#   edgesparse bench ... --target host      (the numpy runtime, and engine c when cc exists)
# checking exit codes and that the output makes sense. Cleans up after itself.
# PYTHON picks the interpreter (default python3); KEEP=1 keeps the temp folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/edgesparse-wheel-check.XXXXXX")"
work="$(cd "$work" && pwd -P)"
cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then echo "wheel-check: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
started=$SECONDS
step() { printf '[wheel-check %4ss] %s\n' "$((SECONDS - started))" "$*"; }
fail() {
  echo "wheel-check: FAILED: $*" >&2
  exit 1
}
case "$work/" in
  "$(cd "$root" && pwd -P)"/*) fail "the temp folder $work is inside the checkout; set TMPDIR" ;;
esac

step "fresh venv in $work/venv"
"$python" -m venv "$work/venv"
py="$work/venv/bin/python"
es="$work/venv/bin/edgesparse"
pip_install() {
  "$py" -m pip install --quiet "$@" >>"$work/pip.log" 2>&1 ||
    { tail -n 30 "$work/pip.log" >&2; fail "pip install $* (log above)"; }
}
pip_install --upgrade pip build

step "build sdist and wheel"
"$py" -m build --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 ||
  { tail -n 30 "$work/build.log" >&2; fail "python -m build (log above)"; }
wheels=("$work"/dist/edgesparse-*.whl)
[[ ${#wheels[@]} == 1 && -f "${wheels[0]}" ]] || fail "expected one wheel in $work/dist"
wheel="${wheels[0]}"
"$py" - "$wheel" "$root" <<'EOF' || fail "the wheel lacks files the package reads at run time"
import pathlib, sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
root = pathlib.Path(sys.argv[2])
want = [f"edgesparse/devices/{p.name}" for p in sorted((root / "devices").glob("*.toml"))]
want += [f"edgesparse/runtime/c/{n}" for n in ("esb.h", "esb.c", "esb_knn.c", "esb_factors.c", "esb_text.c", "esb_unicode.h", "esb_tabular.c", "esb_main.c", "esb_bench_main.c", "esb_rec_main.c", "esb_tabular_main.c", "esb_text_main.c", "esb_one_row_main.c")]
missing = [n for n in want if n not in names]
if missing or len(want) < 17:
    sys.exit(f"missing from {pathlib.Path(sys.argv[1]).name}: {', '.join(missing) or want}")
print(f"wheel holds the {len(want) - 13} device profiles and the C runtime sources")
EOF

step "install the wheel (not editable)"
pip_install "$wheel"

run="$work/run"
mkdir -p "$run"
cd "$run"
unset PYTHONPATH EDGESPARSE_DEVICES
export EDGESPARSE_CACHE="$work/cache"

installed="$("$py" -c 'import edgesparse, edgesparse.bench.targets as t
print(edgesparse.__file__); print(t.devices_dir())')"
while read -r path; do
  [[ "$path" == "$work/venv/"* ]] || fail "edgesparse reads $path, not the installed package"
done <<<"$installed"

step "edgesparse devices list"
out="$("$es" devices list)" || fail "edgesparse devices list exited $?"
echo "$out"
for name in host rpi3 rpi4 rpi5; do
  grep -q "^$name " <<<"$out" || fail "devices list does not show $name"
done
grep -q "ready (native" <<<"$out" || fail "devices list: host is not ready"

step "edgesparse compress (bundled digits_pipeline) + export-c"
model="$root/models/digits_pipeline.pkl"
data="$root/models/digits_pipeline.test.npz"
out="$("$es" compress "$model" -o digits.esb --check-data "$data")" ||
  fail "edgesparse compress exited $?"
echo "$out"
grep -q "agreement" <<<"$out" || fail "compress printed no agreement figure"
[[ "$(head -c 4 digits.esb | od -An -c | tr -d ' ')" == "211ESB" ]] ||
  fail "digits.esb does not start with the .esb magic"
"$es" export-c digits.esb -o c-out >/dev/null || fail "edgesparse export-c exited $?"
for f in esb.h esb.c main.c model_data.c Makefile; do
  [[ -s "c-out/$f" ]] || fail "export-c wrote no $f"
done

step "edgesparse bench --target host"
artifacts=(digits.esb)
if command -v cc >/dev/null; then artifacts+=(c:digits.esb); fi
"$es" bench "${artifacts[@]}" --target host --data "$data" --runs 200 --warmup 20 -o report ||
  fail "edgesparse bench exited $?"
"$py" - "${#artifacts[@]}" <<'EOF' || fail "bench results are not sane"
import json, sys
doc = json.load(open("report/results.json"))
rows = doc["results"]
if len(rows) != int(sys.argv[1]):
    sys.exit(f"expected {sys.argv[1]} result rows, got {len(rows)}")
for r in rows:
    if r["status"] != "ok":
        sys.exit(f"{r['artifact']}: {r['status']}: {r['error']}")
    # agreement: accuracy against the npz's y here (0.97 for this model)
    if not r["latency_us"]["p50"] > 0 or not r["agreement"] >= 0.95:
        sys.exit(f"{r['artifact']}: p50 {r['latency_us']['p50']} us, agreement {r['agreement']}")
print("bench rows ok:", ", ".join(f"{r['artifact']} p50 {r['latency_us']['p50']:.1f} us" for r in rows))
EOF
[[ -s report/report.md ]] || fail "bench wrote no report.md"

step "passed"
