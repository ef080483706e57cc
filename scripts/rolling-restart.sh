#!/usr/bin/env bash
# A rolling restart of a 3-node ringcast cluster under load, on one machine: the answer to
# "what does a deploy cost my users" (issue "Scale-out", README "Scaling out").
#
#   scripts/rolling-restart.sh [SECONDS]          # default 30
#
# Starts one nats-server (JetStream, scripts/install-nats.sh), three `ringcast --cluster`
# nodes on loopback, and `loadgen fanout` with ringcast.v1 subscribers spread over the
# three URLs (--reconnect: they resume with `since` on another node) and publishers that
# POST (each acknowledged message is counted exactly). While it runs, each node in turn is
# SIGTERMed (it drains with --drain-window), waited for, and started again on its port.
# Passes only if loadgen reports 0 lost, 0 duplicates and 0 announced gaps or resets.
#
# Knobs (environment): RINGCAST_BIN, LOADGEN_BIN (default target/release/*),
# SUBSCRIBERS (300), RATE (200 msgs/s), DRAIN_WINDOW (2s), OUT (target/rolling-restart).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${1:-30}"
RINGCAST_BIN="${RINGCAST_BIN:-target/release/ringcast}"
LOADGEN_BIN="${LOADGEN_BIN:-target/release/loadgen}"
SUBSCRIBERS="${SUBSCRIBERS:-300}"
RATE="${RATE:-200}"
DRAIN_WINDOW="${DRAIN_WINDOW:-2s}"
OUT="${OUT:-$ROOT/target/rolling-restart}"
mkdir -p "$OUT"

log() { printf '[rolling %4ds] %s\n' "$SECONDS" "$*"; }
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

NATS="$(bash scripts/install-nats.sh)"
NATS_PORT="$(free_port)"
rm -rf "$OUT/nats-store"
"$NATS" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$OUT/nats-store" >"$OUT/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done

PORTS=()
NODE_PIDS=()
start_node() { # index
    local i=$1
    "$RINGCAST_BIN" --listen "127.0.0.1:${PORTS[$i]}" --workers 1 --node-id "node$i" \
        --cluster "nats://127.0.0.1:$NATS_PORT" --cluster-stream rolling \
        --drain-window "$DRAIN_WINDOW" --shutdown-timeout 5s >>"$OUT/node$i.log" 2>&1 &
    NODE_PIDS[$i]=$!
    PIDS+=($!)
    for _ in $(seq 200); do
        curl -fsS "http://127.0.0.1:${PORTS[$i]}/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    log "node$i did not become healthy"; tail -20 "$OUT/node$i.log"; exit 1
}
for i in 0 1 2; do
    PORTS[$i]="$(free_port)"
    : >"$OUT/node$i.log"
    start_node "$i"
done
URLS=()
for i in 0 1 2; do URLS+=(--url "ws://127.0.0.1:${PORTS[$i]}"); done
log "nats :$NATS_PORT, nodes :${PORTS[*]}"

"$LOADGEN_BIN" fanout "${URLS[@]}" --subscribers "$SUBSCRIBERS" --topics 3 --publishers 3 \
    --rate "$RATE" --size 64 --warmup 2s --duration "${DURATION}s" \
    --protocol ringcast.v1 --reconnect --publish-via post --threads 1 --progress never \
    --json "$OUT/report.json" --plot "$OUT/report.svg" >"$OUT/loadgen.txt" 2>&1 &
LG=$!
PIDS+=($LG)

# Restart each node in turn, spread over the run.
step=$((DURATION / 4))
for i in 0 1 2; do
    sleep "$step"
    log "SIGTERM node$i (pid ${NODE_PIDS[$i]}), drain window $DRAIN_WINDOW"
    kill -TERM "${NODE_PIDS[$i]}"
    wait "${NODE_PIDS[$i]}" || true
    start_node "$i"
    log "node$i back"
done

rc=0
wait "$LG" || rc=$?
cat "$OUT/loadgen.txt"
log "loadgen exit $rc; report: $OUT/report.json, chart: $OUT/report.svg"
exit "$rc"
