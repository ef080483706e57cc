#!/usr/bin/env bash
# The browser client's tests (clients/js): headless Debian Chromium, driven from Node with
# playwright-core, against the ringcast binary in RINGCAST_BIN.
#
#   RINGCAST_BIN=target/ci/ringcast scripts/browser-tests.sh
#   scripts/browser-tests.sh --install-only      # the npm packages only (CI's set-up)
#
# Needs node/npm and /usr/bin/chromium (Debian: apt-get install -y chromium nodejs npm);
# it never downloads a browser. Installs the test tooling (clients/js/package-lock.json)
# into clients/js/node_modules when it is missing or out of date, then runs the tests.
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
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "browser-tests: $tool not found (apt-get install -y nodejs npm)" >&2; exit 1; }
done

install

echo "ringcast.js: $(wc -c < ringcast.js) bytes (unminified)"
# Bounded: every wait in the tests has its own deadline; this is the outer one.
exec timeout --signal=TERM 300 node --test --test-concurrency=1 --test-timeout=60000 test/client.test.mjs
