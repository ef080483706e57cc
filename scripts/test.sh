#!/usr/bin/env bash
# THE test command: every check ringcast has, in the order CI runs them.
#
#   scripts/test.sh
#
# formatting, clippy (warnings are errors), the unit/property/integration tests in the
# `ci` profile (optimized, no LTO; integration tests start target/ci/ringcast; the cluster
# tests start real nats-server processes, installed by scripts/install-nats.sh; the fuzz
# corpora are replayed through every fuzz target), the browser client's and the dashboard's
# tests in headless Chromium (scripts/browser-tests.sh), a short soak under churn
# (scripts/soak.sh --duration 20), then the Autobahn TestSuite against
# that binary, groups 1-10 and 12-13 (scripts/autobahn.sh; it creates its Python venv under
# target/ on first use).
# Stops at the first failing step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

START=$SECONDS
section() {
    printf '\n==================== %s  [+%ds] ====================\n' "$*" "$((SECONDS - START))"
}
trap 'rc=$?; if ((rc != 0)); then printf "\n==================== FAILED (exit %d) in: %s  [+%ds] ====================\n" "$rc" "$STEP" "$((SECONDS - START))"; fi' EXIT

STEP="cargo fmt"
section "$STEP"
cargo fmt --all -- --check

STEP="cargo clippy"
section "$STEP"
cargo clippy --workspace --all-targets -- -D warnings

STEP="cargo test (profile ci)"
section "$STEP"
# Unit, property and integration tests; the integration tests start target/ci/ringcast.
# loadgen's scenario tests drive the same server binary (RINGCAST_BIN), built by this step.
RINGCAST_BIN="$ROOT/target/ci/ringcast" cargo test --profile ci --workspace

STEP="browser tests (clients/js, dashboard; headless Chromium)"
section "$STEP"
RINGCAST_BIN="$ROOT/target/ci/ringcast" bash scripts/browser-tests.sh

STEP="soak (20 s of churn: RSS flat, no fd leak, no stable subscriber loses a message)"
section "$STEP"
RINGCAST_BIN="$ROOT/target/ci/ringcast" LOADGEN_BIN="$ROOT/target/ci/loadgen" \
    bash scripts/soak.sh --duration 20 --out target/soak-ci

STEP="Autobahn TestSuite"
section "$STEP"
RINGCAST_BIN=target/ci/ringcast bash scripts/autobahn.sh

section "all checks passed"
