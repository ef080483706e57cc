#!/usr/bin/env bash
# Not a test: the server CPU the snapshot stream takes, read directly (the capacity figure of
# cost.sh is too noisy on a shared machine to see it). For each dashboard count, a fresh
# `ringcast --workers 1` (pinned to CPU 1) with that many live connections open
# (live-clients.mjs, on CPU 0): the server's CPU time over SECONDS, summed over its threads
# from /proc/PID/task/*/schedstat (ns on CPU). The rounds repeat the counts in turn.
#
#   RINGCAST_BIN=target/ci/ringcast dashboard/tools/snapshot-cpu.sh [SECONDS=20] [ROUNDS=2] [COUNTS="0 10 100 1000"]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${RINGCAST_BIN:?set RINGCAST_BIN to the ringcast binary}"
SECONDS_EACH="${1:-20}"
ROUNDS="${2:-2}"
COUNTS="${3:-0 10 100 1000}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
PORT=$((20000 + RANDOM % 20000))

cpu_ns() { # total ns on CPU of every thread of process $1
    cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%d", s }'
}

for ((r = 1; r <= ROUNDS; r++)); do
    for n in $COUNTS; do
        taskset -c 1 "$RINGCAST_BIN" --listen "127.0.0.1:$PORT" --workers 1 >"$TMP/server.log" 2>&1 &
        server=$!
        timeout 10 bash -c "until grep -q '^listening on' '$TMP/server.log'; do sleep 0.05; done"
        clients=""
        if ((n > 0)); then
            taskset -c 0 node --no-warnings --experimental-websocket "$ROOT/dashboard/tools/live-clients.mjs" \
                "ws://127.0.0.1:$PORT" "$n" >"$TMP/clients.log" 2>&1 &
            clients=$!
            timeout 30 bash -c "until grep -q '^open' '$TMP/clients.log'; do sleep 0.05; done"
        fi
        sleep 2 # past the connection set-up
        a=$(cpu_ns "$server")
        sleep "$SECONDS_EACH"
        b=$(cpu_ns "$server")
        got=""
        if [[ -n "$clients" ]]; then
            kill -TERM "$clients"
            wait "$clients" || true
            got="$(tail -1 "$TMP/clients.log" | awk '{ print $NF }') snapshots on the last connection"
        fi
        kill -TERM "$server"
        wait "$server" || true
        awk -v r="$r" -v n="$n" -v d="$((b - a))" -v s="$SECONDS_EACH" -v got="$got" \
            'BEGIN { printf "round %d  dashboards %4d  server CPU %8.3f ms/s (%.4f %% of a core)  %s\n", r, n, d / s / 1e6, d / s / 1e7, got }'
        PORT=$((PORT + 1))
    done
done
