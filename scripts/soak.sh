#!/usr/bin/env bash
# Soak: a steady fan-out with churn (RSTs, half-dead peers, abandoned handshakes, garbage,
# huge headers, slow readers, ping floods) against a ringcast it starts and stops itself,
# sampling the server once a second (RSS, open fds, ringcast_buffered_bytes, open
# connections) into a CSV, with loadgen's per-second latency merged in. Fails (exit 1) if
#   - RSS at the end of the churn is more than 10 % above its level after warm-up,
#   - the open fds do not return to their baseline once the churn has stopped (a leak),
#   - a stable (non-churn) subscriber lost or got twice a message,
#   - loadgen's run failed (e.g. a half-dead peer not closed by the idle timeout, or a slow
#     reader not closed by --max-buffered, within its deadline).
# Exit 2: bad usage; 3: could not run (binary missing, server did not start).
#
# Usage: scripts/soak.sh [--duration SECS] [--warmup SECS] [--rss-warmup SECS]
#                        [--out DIR] [--workers N] [-- LOADGEN CHURN FLAGS...]
#   --duration     churn window (default 60; CI runs ~20)
#   --warmup       steady fan-out before the churn starts (default 5)
#   --rss-warmup   how far into the churn the RSS reference is taken (default: a tenth of
#                  the duration, at least 10 s, at most half of it)
#   --out          where the CSV and the reports go (default target/soak)
#   --workers      the server's --workers (default: its own, one per core)
# Binaries: $RINGCAST_BIN and $LOADGEN_BIN, else ${CARGO_TARGET_DIR:-target}/{ci,release}/.
# Anything after `--` is passed to `loadgen churn` (e.g. -- --subscribers 1000 --rate 500).
set -euo pipefail

duration=60
warmup=5
rss_warmup=""
out=target/soak
workers=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --rss-warmup) rss_warmup="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$rss_warmup" ]; then
    # The server's RSS climbs for the first ~10 s of churn (allocator arenas, queues and
    # socket buffers reaching their working size), then stays flat: the reference is taken
    # after that, or a tenth of a long run in.
    rss_warmup=$(( duration / 10 > 10 ? duration / 10 : 10 ))
    if [ "$rss_warmup" -gt $(( duration / 2 )) ]; then rss_warmup=$(( duration / 2 )); fi
fi

here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../target}"
find_bin() {
    local name="$1" env="$2"
    if [ -n "${!env:-}" ]; then echo "${!env}"; return; fi
    for p in ci release; do
        if [ -x "$target/$p/$name" ]; then echo "$target/$p/$name"; return; fi
    done
    echo "soak.sh: no $name binary: set $env or build it (cargo build --profile ci)" >&2
    exit 3
}
ringcast="$(find_bin ringcast RINGCAST_BIN)"
loadgen="$(find_bin loadgen LOADGEN_BIN)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# The server's limits the churn is judged against: short, so every deadline shows within
# a short run.
idle=4s
handshake=4s
max_buffered=256KiB
close_timeout=2s

server_pid=""
loadgen_pid=""
sampler_pid=""
cleanup() {
    # Only the processes this script started, by PID.
    for p in "$sampler_pid" "$loadgen_pid" "$server_pid"; do
        if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT

server_args=(--listen 127.0.0.1:0 --idle-timeout "$idle" --handshake-timeout "$handshake"
    --max-buffered "$max_buffered" --close-timeout "$close_timeout")
if [ -n "$workers" ]; then server_args+=(--workers "$workers"); fi
"$ringcast" "${server_args[@]}" >"$out/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 200); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$out/server.log" 2>/dev/null | head -1 | cut -d: -f2 || true)
    if [ -n "$port" ]; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "soak.sh: ringcast did not start (see $out/server.log)" >&2
    exit 3
fi
echo "soak: ringcast pid $server_pid on port $port; churn ${duration}s after ${warmup}s warm-up; output in $out"

fds() { ls "/proc/$server_pid/fd" 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
metrics() { curl -s --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null || true; }

sleep 1
fd_base=$(fds)
rss_base=$(rss_kb)

csv="$out/soak.csv"
echo "unix_ms,rss_kb,fds,buffered_bytes,connections_open,idle_timeouts_total,slow_consumer_closed_total" >"$csv"
(
    while kill -0 "$server_pid" 2>/dev/null && [ ! -e "$out/.stop" ]; do
        next=$(( $(date +%s%N) / 1000000 + 1000 ))
        m=$(metrics)
        buffered=$(awk '/^ringcast_buffered_bytes / {print $2}' <<<"$m")
        open=$(awk '/^ringcast_connections_open\{/ {s += $2} END {print s + 0}' <<<"$m")
        idle_n=$(awk '/^ringcast_idle_timeouts_total / {print $2}' <<<"$m")
        slow_n=$(awk '/^ringcast_slow_consumer_closed_total / {print $2}' <<<"$m")
        echo "$(( $(date +%s%N) / 1000000 )),$(rss_kb),$(fds),${buffered:-},${open:-},${idle_n:-},${slow_n:-}" >>"$csv"
        now=$(( $(date +%s%N) / 1000000 ))
        if [ "$now" -lt "$next" ]; then sleep "$(awk -v d=$(( next - now )) 'BEGIN {printf "%.3f", d / 1000}')"; fi
    done
) &
sampler_pid=$!
rm -f "$out/.stop"

# The steady load: each default unless the flags after `--` give it.
lg_args=()
default() {
    local flag="$1"
    shift
    for e in "${extra[@]}"; do
        if [ "$e" = "$flag" ] || [[ "$e" == "$flag="* ]]; then return; fi
    done
    lg_args+=("$flag" "$@")
}
default --subscribers 200
default --topics 2
default --publishers 2
default --rate 200
default --size 512
default --payload json
default --deflate
default --deflate-subscribers 50%
set +e
"$loadgen" churn --url "ws://127.0.0.1:$port" --progress never "${lg_args[@]}" \
    --warmup "${warmup}s" --duration "${duration}s" \
    --server-idle-timeout "$idle" --server-handshake-timeout "$handshake" \
    --server-max-buffered "$max_buffered" \
    --server-pid "$server_pid" --json "$out/loadgen.json" "${extra[@]}" \
    >"$out/loadgen.txt" 2>"$out/loadgen.err" &
loadgen_pid=$!
wait "$loadgen_pid"
loadgen_rc=$?
loadgen_pid=""
set -e
loadgen_end_ms=$(( $(date +%s%N) / 1000000 ))

# After the churn: every connection loadgen opened is gone; the server must come back to
# its baseline of descriptors within the longest of its timeouts (and some slack).
cooldown=20
fd_back_ms=""
for _ in $(seq 1 $(( cooldown * 10 ))); do
    if [ "$(fds)" -le "$fd_base" ]; then
        fd_back_ms=$(( $(date +%s%N) / 1000000 - loadgen_end_ms ))
        break
    fi
    sleep 0.1
done
# One more second of samples after the return (or the cooldown).
sleep 1.2
touch "$out/.stop"
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
rm -f "$out/.stop"
fd_end=$(fds)
rss_end=$(rss_kb)

set +e
python3 "$here/soak_summary.py" --csv "$csv" --loadgen-json "$out/loadgen.json" \
    --loadgen-rc "$loadgen_rc" --fd-base "$fd_base" --fd-end "$fd_end" \
    --fd-back-ms "${fd_back_ms:--1}" --cooldown-s "$cooldown" --rss-base-kb "$rss_base" \
    --rss-after-kb "$rss_end" --rss-warmup-s "$rss_warmup" --summary "$out/soak-summary.json"
rc=$?
set -e
echo "soak: CSV $csv; loadgen report $out/loadgen.txt ($out/loadgen.json); summary $out/soak-summary.json"
exit "$rc"
