#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser a peer controls (fuzz/src/, one target each),
# with libFuzzer through cargo-fuzz, on the stable toolchain.
#
#   scripts/fuzz.sh [--asan] [--merge] [SECONDS] [TARGET...]
#
# Runs each target (default: all of them) for SECONDS (default 60), one after the other,
# starting from the committed seeds (fuzz/corpus/<target>/) plus what earlier local runs
# found (kept under the work directory). Prints execs/s, coverage and corpus size per
# target. Exits non-zero if any target crashed, after printing each crash's input path
# and the commands that reproduce it.
#
#   --asan   also instrument with AddressSanitizer. Needs -Zsanitizer, so this sets
#            RUSTC_BOOTSTRAP=1 on the stable compiler (its ASan runtime ships with the
#            toolchain). Opt-in: a developer tool's use of an unstable flag, nothing that
#            ships is built this way. Catches out-of-bounds reads in the SIMD kernels that
#            leave the result intact; about half the execs/s.
#   --merge  afterwards, rewrite fuzz/corpus/<target>/ as the hand-made seeds (seed-*)
#            plus the fewest inputs that reach every other edge found so far (libFuzzer
#            -merge=1), to commit: the replay test (cargo test -p ringcast-fuzz) then
#            covers what the fuzzer found.
#
# Environment: FUZZ_WORK (default: $CARGO_TARGET_DIR or target/, then /fuzz) holds the
# build, the local corpora, the artifacts and one log per target.
#
# Without sanitizer this is all stable Rust: cargo-fuzz adds only -C flags (SanitizerCoverage
# passes) and --cfg fuzzing. Overflow checks and debug assertions are on (-a).
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

asan=0
merge=0
seconds=60
targets=()
for arg in "$@"; do
    case "$arg" in
        --asan) asan=1 ;;
        --merge) merge=1 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *[!0-9]*) targets+=("$arg") ;;
        *) seconds="$arg" ;;
    esac
done

if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

FUZZ_DIR=fuzz/libfuzzer
WORK="${FUZZ_WORK:-${CARGO_TARGET_DIR:-$ROOT/target}/fuzz}"
sanitizer=none
if ((asan)); then
    sanitizer=address
    export RUSTC_BOOTSTRAP=1
    WORK="$WORK/asan"
fi
mkdir -p "$WORK"
BUILD="$WORK/build"
BIN="$BUILD/$(rustc -vV | sed -n 's/^host: //p')/release"  # cargo fuzz builds for the host

if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
fi

start=$SECONDS
echo "== build (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
    [[ -f "$FUZZ_DIR/fuzz_targets/$t.rs" ]] || { echo "no target $t" >&2; exit 2; }
done
# cargo fuzz builds one target or all of them.
one=()
((${#targets[@]} == 1)) && one=("${targets[0]}")
cargo fuzz build --fuzz-dir "$FUZZ_DIR" --target-dir "$BUILD" -O -a --sanitizer "$sanitizer" "${one[@]}"
echo "   built in $((SECONDS - start)) s"

# The value of a libFuzzer final stat (-print_final_stats=1), or "?".
stat() { grep -m1 "^stat::$1:" "$2" | awk '{print $2}' || echo "?"; }

crashes=()
printf '\n%-14s %8s %10s %8s %8s %7s %6s %s\n' target seconds execs execs/s cov ft corpus result
for t in "${targets[@]}"; do
    corpus="$WORK/corpus/$t"
    artifacts="$WORK/artifacts/$t"
    log="$WORK/$t.log"
    mkdir -p "$corpus" "$artifacts"
    dict=()
    [[ -f "fuzz/dict/$t.dict" ]] && dict=("-dict=fuzz/dict/$t.dict")
    # The first corpus directory receives new inputs; the committed seeds are only read.
    t0=$SECONDS
    set +e
    "$BIN/$t" "$corpus" "fuzz/corpus/$t" "${dict[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    # libFuzzer's last status line: "#N DONE cov: C ft: F corp: K/..."
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
    result=ok
    if ((rc != 0)); then
        result="CRASH (exit $rc)"
        artifact=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -1)
        crashes+=("$t ${artifact:-"(no artifact, see $log)"}")
    fi
    printf '%-14s %8s %10s %8s %8s %7s %6s %s\n' "$t" "$((SECONDS - t0))" \
        "$(stat number_of_executed_units "$log")" "$(stat average_exec_per_sec "$log")" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
    if ((merge)); then
        # A minimal set over the committed corpus and the local one: the hand-made seeds,
        # plus the fewest inputs that reach every edge they do not (-use_counters=0 keeps
        # it to edges, not hit counts: a few dozen KiB per target).
        fresh="$WORK/merge/$t"
        rm -rf "$fresh"
        mkdir -p "$fresh"
        cp fuzz/corpus/"$t"/seed-* "$fresh"/
        "$BIN/$t" -merge=1 -use_counters=0 "$fresh" "fuzz/corpus/$t" "$corpus" \
            >"$WORK/$t.merge.log" 2>&1
        rm -f fuzz/corpus/"$t"/*
        cp "$fresh"/* "fuzz/corpus/$t/"
        echo "   fuzz/corpus/$t: $(find "fuzz/corpus/$t" -type f | wc -l) files," \
            "$(du -sk --apparent-size "fuzz/corpus/$t" | cut -f1) KiB"
    fi
done
echo "logs: $WORK/<target>.log; total $((SECONDS - start)) s"

if ((${#crashes[@]})); then
    echo
    for c in "${crashes[@]}"; do
        t=${c%% *}
        path=${c#* }
        echo "CRASH in $t: $path"
        echo "  reproduce:  $BIN/$t $path"
        echo "          or: FUZZ_REPLAY=$t:$path cargo test -p ringcast-fuzz --test corpus replay_one -- --nocapture"
        echo "  then keep it: cp $path fuzz/regressions/$t/<what-it-found>  (replayed by cargo test)"
    done
    exit 1
fi
