#!/usr/bin/env bash
# Debian packages the target tests need: qemu-user-static (emulated Raspberry Pi targets, the
# aarch64/armhf C runtime), OpenSSH (the ssh:// target is tested against a real sshd on
# localhost), the aarch64/armhf cross compilers and clang with its sanitizer/libFuzzer runtime
# (the C runtime). Installed only when missing and only when we may (root with apt-get); otherwise
# those tests skip and say which package to install. Sourced by scripts/test.sh.
set -euo pipefail
_edgesparse_missing=()
command -v qemu-aarch64-static >/dev/null 2>&1 || _edgesparse_missing+=(qemu-user-static)
[[ -x /usr/sbin/sshd ]] || _edgesparse_missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || _edgesparse_missing+=(openssh-client)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || _edgesparse_missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v arm-linux-gnueabihf-gcc >/dev/null 2>&1 || _edgesparse_missing+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
command -v clang >/dev/null 2>&1 || _edgesparse_missing+=(clang libclang-rt-14-dev)
if ((${#_edgesparse_missing[@]})); then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${_edgesparse_missing[*]} (Debian packages) for the target tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${_edgesparse_missing[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${_edgesparse_missing[@]}" >/dev/null; }
  else
    echo "note: ${_edgesparse_missing[*]} missing; tests that need them will skip" >&2
  fi
fi
