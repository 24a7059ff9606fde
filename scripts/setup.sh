#!/usr/bin/env bash
# One idempotent setup used by both README commands: Debian packages, a virtual environment in
# .venv, and the project installed (editable) with its test extras. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(pcscd vsmartcard-vpcd libpcsclite-dev swig pcsc-tools postgresql tshark chromium)
PYTHON=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PYTHON --version 2>&1)"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    # Debian's own python3 ships venv separately.
    rm -rf .venv
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi

stamp=.venv/.nymi-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing nymi-band-stack and its test tools into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
  echo "$want" > "$stamp"
fi
