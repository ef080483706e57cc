#!/usr/bin/env bash
# The browser tests: the browser client (clients/js/test) and the dashboard (dashboard/test),
# in headless Debian Chromium driven from Node with playwright-core, against the ringcast
# binary in RINGCAST_BIN (the dashboard's also run loadgen: LOADGEN_BIN, default the loadgen
# next to RINGCAST_BIN).
#
#   RINGCAST_BIN=target/ci/ringcast scripts/browser-tests.sh
#   scripts/browser-tests.sh --install-only      # the npm packages only (CI's set-up)
#
# Needs node/npm, curl and /usr/bin/chromium (Debian: apt-get install -y chromium nodejs npm
# curl); it never downloads a browser. Installs the test tooling (clients/js/package-lock.json,
# shared by both) into clients/js/node_modules when it is missing or out of date, then runs
# the tests. Screenshots of the dashboard under load go to target/dashboard/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JS="$ROOT/clients/js"

install() {
    cd "$JS"
    # npm ci only when the installed tree does not match the lock file.
    if ! cmp -s package-lock.json node_modules/.ringcast-lock 2>/dev/null; then
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
        cp package-lock.json node_modules/.ringcast-lock
    fi
}

if [[ "${1:-}" == "--install-only" ]]; then
    install
    exit 0
fi

: "${RINGCAST_BIN:?set RINGCAST_BIN to the ringcast binary}"
RINGCAST_BIN="$(realpath -m "$RINGCAST_BIN")"
export RINGCAST_BIN
[[ -x "$RINGCAST_BIN" ]] || { echo "browser-tests: $RINGCAST_BIN is not an executable" >&2; exit 1; }
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$CHROMIUM" ]] || { echo "browser-tests: $CHROMIUM not found (apt-get install -y chromium)" >&2; exit 1; }
export LOADGEN_BIN="$(realpath -m "${LOADGEN_BIN:-$(dirname "$RINGCAST_BIN")/loadgen}")"
[[ -x "$LOADGEN_BIN" ]] || { echo "browser-tests: $LOADGEN_BIN is not an executable (cargo build --profile ci -p loadgen)" >&2; exit 1; }
for tool in node npm curl; do
    command -v "$tool" >/dev/null || { echo "browser-tests: $tool not found (apt-get install -y nodejs npm curl)" >&2; exit 1; }
done

install

echo "ringcast.js: $(wc -c < ringcast.js) bytes (unminified); dashboard/index.html: $(wc -c < "$ROOT/dashboard/index.html") bytes"
# Bounded: every wait in the tests has its own deadline; this is the outer one. One file at a
# time (each its own browser): the dashboard's load figures need the machine to themselves.
exec timeout --signal=TERM 240 node --test --test-concurrency=1 --test-timeout=60000 \
    test/client.test.mjs "$ROOT/dashboard/test/dashboard.test.mjs"
