#!/usr/bin/env bash
# Not a test: what the dashboard's snapshot stream costs on the fan-out capacity figure.
# Runs `loadgen capacity --subscribers 1000 --slo-p99 50ms --slo-loss 0` against a fresh
# `ringcast --workers 1` (pinned to CPU 1; loadgen --threads 1 and the dashboards on CPU 0)
# with 0 and with N dashboards' live connections open, alternating back to back, the order
# swapped every pair (0,N then N,0 …) so a drift of the machine does not favour one side.
#
#   RINGCAST_BIN=target/ci/ringcast dashboard/tools/cost.sh [PAIRS=3] [DASHBOARDS=10] [OUT=target/dashboard/cost]
#
# LOADGEN_BIN defaults to the loadgen next to RINGCAST_BIN. Prints one line per run and keeps
# each run's loadgen JSON report in OUT.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${RINGCAST_BIN:?set RINGCAST_BIN to the ringcast binary}"
LOADGEN_BIN="${LOADGEN_BIN:-$(dirname "$RINGCAST_BIN")/loadgen}"
PAIRS="${1:-3}"
N="${2:-10}"
OUT="${3:-$ROOT/target/dashboard/cost}"
mkdir -p "$OUT"
PORT=$((20000 + RANDOM % 20000))

run() { # run NUMBER DASHBOARDS
    local log="$OUT/ringcast-$1.log" server clients=""
    taskset -c 1 "$RINGCAST_BIN" --listen "127.0.0.1:$PORT" --workers 1 >"$log" 2>&1 &
    server=$!
    timeout 10 bash -c "until grep -q '^listening on' '$log'; do sleep 0.05; done"
    if (($2 > 0)); then
        taskset -c 0 node --no-warnings --experimental-websocket "$ROOT/dashboard/tools/live-clients.mjs" \
            "ws://127.0.0.1:$PORT" "$2" >"$OUT/clients-$1.log" 2>&1 &
        clients=$!
        timeout 10 bash -c "until grep -q '^open' '$OUT/clients-$1.log'; do sleep 0.05; done"
    fi
    taskset -c 0 "$LOADGEN_BIN" capacity --url "ws://127.0.0.1:$PORT" --threads 1 --subscribers 1000 \
        --slo-p99 50ms --slo-loss 0 --server-pid "$server" --progress never --json "$OUT/run-$1-$2.json" \
        >"$OUT/run-$1-$2.txt" 2>&1 || true
    if [[ -n "$clients" ]]; then
        kill -TERM "$clients"
        wait "$clients" || echo "run $1: a dashboard connection closed early" >&2
    fi
    kill -TERM "$server"
    wait "$server" || true
    python3 - "$OUT/run-$1-$2.json" "$1" "$2" "$OUT/clients-$1.log" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["capacity"]
best = max((s for s in c["steps"] if s["pass"]), key=lambda s: s["value"], default=None)
got = ""
if int(sys.argv[3]):
    got = open(sys.argv[4]).read().strip().splitlines()[-1]
print(f"run {sys.argv[2]:>2}  dashboards {sys.argv[3]:>2}  answer {c['answer']} msgs/s = "
      f"{best['offered_deliveries_per_s'] / 1e6:.3f} M deliveries/s  p99 {best['p99_us'] / 1000:.1f} ms  "
      f"server {best['server_cpu_utilization'] * 100:.0f} %  loadgen saturated {best['loadgen_saturated']}  {got}"
      if best else f"run {sys.argv[2]} dashboards {sys.argv[3]}: no step met the SLO")
EOF
}

n=0
for ((i = 0; i < PAIRS; i++)); do
    if ((i % 2 == 0)); then order=(0 "$N"); else order=("$N" 0); fi
    for d in "${order[@]}"; do
        n=$((n + 1))
        run "$n" "$d"
    done
done
