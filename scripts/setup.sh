#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for kpipe, idempotently:
#   - Debian packages (kernel source 6.12.117 where apt has it, build deps, QEMU, virtme-ng's needs)
#   - a Python virtual environment in .venv with kpipe installed (editable) and its dependencies
#   - with --test: the test extras and Debian's chromium for the browser tests
# Usage: scripts/setup.sh [--test]   (--test also installs the test extras)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

APT_PKGS=(
  git make gcc flex bison bc libelf-dev libssl-dev cpio ccache perl python3-venv
  qemu-system-x86 busybox-static kmod udev xz-utils
  bubblewrap  # the sandbox untrusted builds run in (pipeline/build/sandbox.py)
)
# Only for --test: the browser tests drive Debian's chromium with Playwright (no browser download)
TEST_APT_PKGS=(chromium)
KERNEL_PKG=linux-source-6.12
KERNEL_WANT=6.12.117-1~deb12u1

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

missing=()
wanted=("${APT_PKGS[@]}" "$KERNEL_PKG")
[ $want_test -eq 1 ] && wanted+=("${TEST_APT_PKGS[@]}")
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  for i in "${!missing[@]}"; do
    if [ "${missing[$i]}" = "$KERNEL_PKG" ] \
       && apt-cache madison "$KERNEL_PKG" | grep -qF "$KERNEL_WANT"; then
      missing[$i]="$KERNEL_PKG=$KERNEL_WANT"
    fi
  done
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages already installed"
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
# A .venv that is not a working environment (a dangling or looping symlink, a half-made
# directory) is replaced, so that setup can always recover.
if [ -e .venv ] || [ -L .venv ]; then
  if ! .venv/bin/python -c '' 2>/dev/null; then
    echo "setup: .venv is not a working environment; making it again"
    rm -rf .venv
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY"
  "$PY" -m venv .venv
fi
extras=""
[ $want_test -eq 1 ] && extras="[test]"
stamp=".venv/.kpipe-setup$extras"
fresh() { [ -f "$1" ] && ! [ pyproject.toml -nt "$1" ]; }
# An environment set up with the test extras also holds everything a plain setup installs.
if [ $want_test -eq 0 ] && fresh ".venv/.kpipe-setup[test]"; then
  echo "setup: Python environment up to date (with test extras)"
elif ! fresh "$stamp"; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".$extras"
  touch "$stamp"
else
  echo "setup: Python environment up to date"
fi
