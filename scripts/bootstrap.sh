#!/usr/bin/env bash
# Creates .venv and installs SoundForge with pinned dependencies.
#   scripts/bootstrap.sh          what `make run` needs
#   scripts/bootstrap.sh --test   also the system packages the tests start
#                                 (PostgreSQL, Redis, Chromium, and the ffmpeg
#                                 programs that check exported files)
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

PYTHON=${PYTHON:-python3}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "bootstrap: please install these system packages: ${missing[*]}" >&2
    return 1
  fi
  echo "bootstrap: installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi

if [[ $want_test -eq 1 ]]; then
  # Tests run against real servers and a real browser. A machine without them
  # still runs the rest; those tests then skip and say why.
  apt_install postgresql redis-server chromium fonts-dejavu-core ffmpeg || \
    echo "bootstrap: continuing without some test services" >&2
fi

if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
extras=""
[[ $want_test -eq 1 ]] && extras="[dev]"
# constraints.txt pins every package, torch to the CPU build (see README).
.venv/bin/python -m pip install -q -c constraints.txt -e ".${extras}"
