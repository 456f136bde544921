#!/usr/bin/env bash
# Installs every Debian package attnlab needs to build, test and run. Idempotent: when all
# packages are already installed it changes nothing and needs no network or root.
# Works as root or through sudo. Usage: ./setup.sh
set -euo pipefail

# Build tools, the fixed dependencies, and nothing else (see README "Dependencies").
packages=(
  g++ make cmake                  # compiler and build system
  xtensor-dev libxsimd-dev xtl-dev # tensors and SIMD
  libboost-program-options-dev    # the attnlab CLI
  doctest-dev                     # the test suite
)

say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

command -v dpkg-query >/dev/null 2>&1 || fail "dpkg-query not found: this script supports Debian 12 (bookworm) and derivatives"

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  say "all ${#packages[@]} required packages are installed; nothing to do"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
  say "not root: using sudo"
else
  fail "need root to install: ${missing[*]} (run as root, or install sudo)"
fi

say "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q || fail "apt-get update failed (network or sources.list problem?)"
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" \
  || fail "apt-get install failed for: ${missing[*]}"

for p in "${missing[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || fail "package $p is still not installed after apt-get"
done
say "done: installed ${#missing[@]} package(s)"
