#!/usr/bin/env bash
# Debian packages the target tests need (README: "System packages"):
#   qemu-user-static                 emulated Raspberry Pi targets; runs the aarch64/armhf C runtime
#   openssh-server, openssh-client   the ssh:// bench target is tested against a real sshd on localhost
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, gcc-arm-linux-gnueabihf, libc6-dev-armhf-cross
#                                    cross-compile the C runtime for the Pis
#   clang, libclang-rt-dev           the C runtime under ASan/UBSan and its libFuzzer target
# Sourced by scripts/test.sh; `bash scripts/system-deps.sh` runs it alone.
#
# Each package is checked with dpkg-query (installed and configured, not merely present on
# PATH); only the missing ones are installed, and only as root with apt-get. Otherwise, or with
# EDGESPARSE_NO_SYSTEM_DEPS=1, nothing is installed: the tests that need a missing tool skip
# and name the package (CI sets EDGESPARSE_REQUIRE_TARGETS=1, which turns those skips into
# failures). An install that was interrupted (dpkg left half-configured) is finished with
# `dpkg --configure -a` before anything else; apt waits for a lock held by another apt/dpkg
# instead of failing. Everything it does is said on stderr.
set -euo pipefail

_edgesparse_system_deps() {
  local say="system-deps:"
  local packages=(
    qemu-user-static
    openssh-server openssh-client
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
    clang libclang-rt-dev
  )
  if [[ "${EDGESPARSE_NO_SYSTEM_DEPS:-}" == 1 ]]; then
    echo "$say EDGESPARSE_NO_SYSTEM_DEPS=1: not checking or installing Debian packages;" \
      "tests that need them will skip" >&2
    return 0
  fi
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "$say no dpkg here (not Debian/Ubuntu): tests that need ${packages[*]} will skip" \
      "unless their tools are installed" >&2
    return 0
  fi
  local missing=() pkg
  _edgesparse_missing() {
    missing=()
    for pkg in "${packages[@]}"; do
      # "install ok installed" only: "unpacked" or "half-configured" is an interrupted install.
      if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then
        missing+=("$pkg")
      fi
    done
  }
  _edgesparse_missing
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$say missing ${missing[*]}; tests that need them will skip." \
      "Install with: sudo apt-get install ${missing[*]}" >&2
    return 0
  fi
  # Wait up to 10 minutes for another apt/dpkg to release its lock rather than fail at once.
  local apt=(apt-get -q -y -o DPkg::Lock::Timeout=600)
  if [[ -n "$(dpkg --audit 2>/dev/null)" ]] || compgen -G "/var/lib/dpkg/updates/[0-9]*" >/dev/null; then
    echo "$say a previous dpkg run was interrupted; finishing it: dpkg --configure -a" >&2
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >&2
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" --fix-broken install >&2
    _edgesparse_missing
    if ((${#missing[@]} == 0)); then
      echo "$say done" >&2
      return 0
    fi
  fi
  echo "$say installing ${missing[*]} (Debian packages for the target tests)" >&2
  if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    echo "$say no package lists yet: apt-get update" >&2
    "${apt[@]}" update >&2
  fi
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "${missing[@]}" >&2; then
    echo "$say install failed; refreshing the package lists (apt-get update) and retrying" >&2
    if ! { "${apt[@]}" update >&2 &&
      DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "${missing[@]}" >&2; }; then
      echo "$say apt-get failed. Fix apt, or run with EDGESPARSE_NO_SYSTEM_DEPS=1 to test" \
        "without them (the target tests then skip)" >&2
      return 1
    fi
  fi
  echo "$say done" >&2
}
_edgesparse_system_deps
unset -f _edgesparse_system_deps _edgesparse_missing
