#!/usr/bin/env bash
# Autobahn TestSuite (RFC 6455 conformance) against ringcast's GET /echo.
#
#   scripts/autobahn.sh                      # start target/release/ringcast and test it
#   scripts/autobahn.sh -- CMD [ARG...]      # start CMD instead (it must print
#                                            #   "listening on HOST:PORT" on stdout)
#   AUTOBAHN_URL=ws://127.0.0.1:9001/echo scripts/autobahn.sh
#                                            # test a server that is already running
#   scripts/autobahn.sh --install-only       # only create the venv (used by .ci/run)
#
# The suite is run by `kosoku` (PyPI), which drives the Autobahn TestSuite's own case
# files on Python 3 with a Rust runner. It is installed, pinned, into a venv under
# target/autobahn-venv (reused while the pinned version matches).
#
# Case groups 1-7, 9 and 10 run, one kosoku invocation per group (so a group that hangs
# costs only itself); groups 12 and 13 (permessage-deflate) are left out: ringcast does
# not implement compression yet. Reports go to target/autobahn/groups/<group>/ (kosoku's
# index.json + per-case JSON/HTML), merged into target/autobahn/index.json;
# scripts/autobahn_summary.py prints the counts and every failed case.
#
# Exit 0 only when cases ran and none FAILED (behavior or behaviorClose FAILED, or any
# other non-passing verdict: ERROR, WRONG CODE, UNCLEAN, FAILED BY CLIENT).
#
# Knobs (environment): AUTOBAHN_URL, AUTOBAHN_GROUPS (default "1 2 3 4 5 6 7 9 10";
# sub-groups "9.1", case ids "5.15" and kosoku globs "6.4.*" work too), AUTOBAHN_BUDGET_SECS (whole run, default 570),
# AUTOBAHN_GROUP_TIMEOUT_SECS (one group, default 240), AUTOBAHN_READY_TIMEOUT_SECS
# (server start, default 30), AUTOBAHN_PARALLELISM (cases at once, default 1),
# AUTOBAHN_OUT (default target/autobahn), AUTOBAHN_VENV (default target/autobahn-venv),
# PYTHON (interpreter that creates the venv, default python3).
set -euo pipefail

KOSOKU_VERSION=0.1.0

START=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="${AUTOBAHN_VENV:-$ROOT/target/autobahn-venv}"
OUT="${AUTOBAHN_OUT:-$ROOT/target/autobahn}"
AB_GROUPS="${AUTOBAHN_GROUPS:-1 2 3 4 5 6 7 9 10 12 13}"
BUDGET="${AUTOBAHN_BUDGET_SECS:-570}"
GROUP_TIMEOUT="${AUTOBAHN_GROUP_TIMEOUT_SECS:-240}"
READY_TIMEOUT="${AUTOBAHN_READY_TIMEOUT_SECS:-30}"
PARALLELISM="${AUTOBAHN_PARALLELISM:-4}"
STOP_TIMEOUT=15
DEADLINE=$((START + BUDGET))

log() { printf '[autobahn %4ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { log "ERROR: $*"; exit 1; }

INSTALL_ONLY=0
# --deflate-min-size 0 compresses every echo: the runner's 12.x/13.x cases hash a text
# message as a str (and fail) when an uncompressed message arrives on a compressed
# connection, which RFC 7692 §6 allows and ringcast does for short messages by default.
SERVER_CMD=("${RINGCAST_BIN:-target/release/ringcast}" --listen 127.0.0.1:0 --max-payload 16MiB --deflate-min-size 0)
while (($#)); do
    case "$1" in
        --install-only) INSTALL_ONLY=1; shift ;;
        --) shift; (($#)) || die "'--' must be followed by a server command"; SERVER_CMD=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (use -- CMD ARGS to give a server command)" ;;
    esac
done

# ---------------------------------------------------------------- venv with kosoku
ensure_venv() {
    local stamp="$VENV/.kosoku-$KOSOKU_VERSION"
    if [[ -f "$stamp" && -x "$VENV/bin/kosoku" ]] && "$VENV/bin/python" -c 'import kosoku' 2>/dev/null; then
        log "reusing venv $VENV (kosoku $KOSOKU_VERSION)"
        return
    fi
    log "creating venv $VENV with kosoku==$KOSOKU_VERSION"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"
    timeout 300 "$VENV/bin/pip" install --disable-pip-version-check --no-input -q \
        --timeout 60 "kosoku==$KOSOKU_VERSION" || die "pip install kosoku==$KOSOKU_VERSION failed"
    "$VENV/bin/python" -c 'import kosoku' || die "kosoku does not import"
    touch "$stamp"
}
ensure_venv
if ((INSTALL_ONLY)); then exit 0; fi

# ---------------------------------------------------------------- server
SERVER_PID=
# alive PID: the process exists and is not a zombie (our own child stays a zombie until
# waited for, and kill -0 succeeds on a zombie).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    local pid=$SERVER_PID rc=0 deadline
    SERVER_PID=
    if alive "$pid"; then
        log "stopping server (pid $pid, SIGTERM)"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + STOP_TIMEOUT))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if alive "$pid"; then
            log "WARNING: server pid $pid still running ${STOP_TIMEOUT}s after SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || rc=$?
    log "server exited with status $rc"
}

cleanup() {
    local rc=$?
    stop_server || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$OUT"
mkdir -p "$OUT/groups"

if [[ -n "${AUTOBAHN_URL:-}" ]]; then
    URL="$AUTOBAHN_URL"
    log "testing the server already running at $URL (AUTOBAHN_URL)"
else
    [[ -x "${SERVER_CMD[0]}" ]] || command -v "${SERVER_CMD[0]}" >/dev/null ||
        die "server command '${SERVER_CMD[0]}' not found (build it: cargo build --release --bin ringcast)"
    log "starting server: ${SERVER_CMD[*]}"
    : >"$OUT/server.stdout"
    : >"$OUT/server.stderr"
    "${SERVER_CMD[@]}" >>"$OUT/server.stdout" 2>>"$OUT/server.stderr" </dev/null &
    SERVER_PID=$!
    ready_deadline=$((SECONDS + READY_TIMEOUT))
    ADDR=
    while [[ -z "$ADDR" ]]; do
        # Only complete lines: `read` fails on a trailing line without its newline.
        while IFS= read -r line; do
            if [[ "$line" =~ ^listening\ on\ ([^[:space:]]+:[0-9]+)$ ]]; then
                ADDR=${BASH_REMATCH[1]}
                break
            fi
        done <"$OUT/server.stdout"
        [[ -n "$ADDR" ]] && break
        if ! alive "$SERVER_PID"; then
            log "server stderr (tail):"; tail -n 20 "$OUT/server.stderr" >&2 || true
            die "server exited before printing 'listening on HOST:PORT'"
        fi
        if ((SECONDS >= ready_deadline)); then
            log "server stdout:"; cat "$OUT/server.stdout" >&2 || true
            log "server stderr (tail):"; tail -n 20 "$OUT/server.stderr" >&2 || true
            die "server printed no 'listening on HOST:PORT' line within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
    URL="ws://$ADDR/echo"
    log "server pid $SERVER_PID listening on $ADDR"
fi

# ---------------------------------------------------------------- the suite
log "kosoku $KOSOKU_VERSION fuzzingclient -> $URL; groups: $AB_GROUPS"
INCOMPLETE=()
read -ra GROUP_LIST <<<"$AB_GROUPS" # (no pathname expansion of globs like "6.4.*")
((${#GROUP_LIST[@]})) || die "AUTOBAHN_GROUPS is empty"
for g in "${GROUP_LIST[@]}"; do
    remaining=$((DEADLINE - SECONDS))
    if ((remaining < 10)); then
        log "group $g: SKIPPED, the ${BUDGET}s budget is spent"
        INCOMPLETE+=("$g")
        continue
    fi
    t=$((remaining < GROUP_TIMEOUT ? remaining : GROUP_TIMEOUT))
    name=${g//\*/x}
    gdir="$OUT/groups/$name"
    glog="$OUT/groups/$name.log"
    # A group or sub-group ("9", "9.1") selects "9.*"; a glob is passed as it is; a single
    # case id ("5.15", "1.1.1") matches no "ID.*" and is retried as itself.
    pattern=$g
    [[ "$g" == *'*'* ]] || pattern="$g.*"
    t0=$SECONDS
    rc=0
    timeout -k 5 "$t" "$VENV/bin/kosoku" -m fuzzingclient "$URL" -i "$pattern" \
        -p "$PARALLELISM" -o "$gdir" >"$glog" 2>&1 </dev/null || rc=$?
    if [[ ! -f "$gdir/index.json" && "$pattern" != "$g" ]] && grep -q 'no cases match pattern' "$glog"; then
        rc=0
        t=$((DEADLINE - SECONDS))
        if ((t > GROUP_TIMEOUT)); then t=$GROUP_TIMEOUT; fi
        if ((t < 10)); then t=10; fi
        timeout -k 5 "$t" "$VENV/bin/kosoku" -m fuzzingclient "$URL" -i "$g" \
            -p "$PARALLELISM" -o "$gdir" >"$glog" 2>&1 </dev/null || rc=$?
    fi
    if [[ -f "$gdir/index.json" ]]; then
        # kosoku exits 1 when a case did not pass; the summary below reports it.
        verdict=$(grep -m 1 -E '^[0-9]+ (of [0-9]+ )?cases (passed|failed)' "$glog" || true)
        log "group $g: ${verdict%:} ($((SECONDS - t0))s)"
    else
        if ((rc == 124 || rc == 137)); then
            log "group $g: TIMED OUT after ${t}s, no report (a case hung; rerun with AUTOBAHN_GROUPS=$g)"
        else
            log "group $g: kosoku exited $rc without a report; its output (tail):"
            tail -n 20 "$glog" || true
        fi
        INCOMPLETE+=("$g")
    fi
    if [[ -n "$SERVER_PID" ]] && ! alive "$SERVER_PID"; then
        log "server stderr (tail):"; tail -n 20 "$OUT/server.stderr" || true
        log "ERROR: the server died during group $g"
        break
    fi
done
log "suite done in $((SECONDS - START))s"
stop_server

# ---------------------------------------------------------------- summary
rc=0
"$VENV/bin/python" "$ROOT/scripts/autobahn_summary.py" "$OUT" \
    --groups "$(IFS=,; echo "${GROUP_LIST[*]}")" --merged-out "$OUT/index.json" || rc=$?
((${#INCOMPLETE[@]} == 0)) || { log "ERROR: groups without a report: ${INCOMPLETE[*]}"; rc=1; }
log "reports: $OUT (index.json; per group under groups/, open groups/<g>/index.html)"
log "total $((SECONDS - START))s, exit $rc"
exit "$rc"
