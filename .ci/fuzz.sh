#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes in modelvault, and sequences of vault operations checked
# against a model of the vault (op_sequence); targets in fuzz/fuzz_targets/.
#
#   bash .ci/fuzz.sh                       # CI: 60 s per target (11 targets, about 13 min + build)
#   FUZZ_SECONDS=600 bash .ci/fuzz.sh      # long mode: 10 min per target
#   FUZZ_TARGETS="pickle_scan analyze" FUZZ_SECONDS=3600 bash .ci/fuzz.sh   # some targets only
#
# Installs cargo-fuzz 0.13.2 if missing, builds the seeds (fuzz/seed.sh), replays the saved
# crash reproducers in fuzz/regressions/<target>/, then runs each target for FUZZ_SECONDS with
# -rss_limit_mb=2048. Prints one summary line per target and exits non-zero if any target
# crashed (panic, sanitizer error, leak, OOM over the RSS limit, or a per-input timeout of
# FUZZ_TIMEOUT seconds, default 30). Crash inputs land in fuzz/artifacts/<target>/; minimise one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin <target> fuzz/artifacts/<target>/crash-...
# (run from fuzz/) and save it under fuzz/regressions/<target>/.
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# Builds use FUZZ_BUILD_JOBS (default 1) jobs; the corpus stays in fuzz/corpus/ between runs.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-30}"
# Leaks count as failures (LeakSanitizer); FUZZ_DETECT_LEAKS=0 turns that off, e.g. to keep
# fuzzing a target past a known leak.
FUZZ_DETECT_LEAKS="${FUZZ_DETECT_LEAKS:-1}"
if [ "$FUZZ_DETECT_LEAKS" = 0 ]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"  # also at exit of a replay
fi
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${FUZZ_BUILD_JOBS:-1}"
export CARGO_TERM_COLOR=never
ALL_TARGETS="safetensors_header gguf_header numpy_header onnx_model detect_format pickle_scan manifest_decode slot_record records analyze op_sequence"
TARGETS="${FUZZ_TARGETS:-$ALL_TARGETS}"

if ! cargo fuzz --version 2>/dev/null | grep -q '0\.13\.2'; then
    echo "== installing cargo-fuzz 0.13.2"
    cargo install cargo-fuzz@0.13.2 --locked || { echo "fuzz.sh: cannot install cargo-fuzz" >&2; exit 2; }
fi
echo "== $(cargo fuzz --version); $(rustc --version)"

echo "== seeds"
SEED_JOBS="$CARGO_BUILD_JOBS" bash fuzz/seed.sh || { echo "fuzz.sh: seeding failed" >&2; exit 2; }

# Extra libFuzzer flags per target. op_sequence reads operation sequences, which mean little in
# the few bytes libFuzzer's length control starts with: it gets full-length inputs at once.
extra_flags() {
    case "$1" in
        op_sequence) echo "-len_control=0 -max_len=256" ;;
    esac
}

LOGS="$REPO/fuzz/artifacts/logs"
mkdir -p "$LOGS"
failed=()
summary=()
cd fuzz
for t in $TARGETS; do
    echo "== build $t"
    if ! cargo fuzz build "$t" >"$LOGS/$t.build.log" 2>&1; then
        tail -30 "$LOGS/$t.build.log"
        summary+=("$(printf '%-20s BUILD FAILED (see fuzz/artifacts/logs/%s.build.log)' "$t" "$t")")
        failed+=("$t")
        continue
    fi
    dirs=("corpus/$t")
    reg_ok=1
    if compgen -G "regressions/$t/*" >/dev/null; then
        echo "== replay regressions/$t"
        if ! cargo fuzz run "$t" regressions/$t/* -- -runs=1 -rss_limit_mb=2048 -detect_leaks="$FUZZ_DETECT_LEAKS" \
                -timeout="$FUZZ_TIMEOUT" >"$LOGS/$t.regressions.log" 2>&1; then
            grep -m5 -E "panicked|ERROR|SUMMARY" "$LOGS/$t.regressions.log"
            reg_ok=0
        fi
    fi
    echo "== fuzz $t for ${FUZZ_SECONDS}s"
    mkdir -p "artifacts/$t"
    marker="$LOGS/$t.start"
    touch "$marker"
    cargo fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout="$FUZZ_TIMEOUT" \
        -detect_leaks="$FUZZ_DETECT_LEAKS" -print_final_stats=1 $(extra_flags "$t") >"$LOGS/$t.log" 2>&1
    rc=$?
    # Scratch directories a target's processes left (libFuzzer exits without destructors).
    for d in /dev/shm/mvault-op-sequence-* "${TMPDIR:-/tmp}"/mvault-op-sequence-*; do
        [ -d "$d" ] && [ ! -e "/proc/${d##*-}" ] && rm -rf "$d"
    done
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$LOGS/$t.log" | grep -oE '[0-9]+$' | tail -1)
    [ -z "$runs" ] && runs=$(grep -oE '^#[0-9]+' "$LOGS/$t.log" | tail -1 | tr -d '#')
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$LOGS/$t.log" | tail -1)
    corp=$(grep -oE 'corp: [0-9]+/[0-9A-Za-z]+' "$LOGS/$t.log" | tail -1)
    crashes=$(find "artifacts/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) -newer "$marker" 2>/dev/null | wc -l)
    status=ok
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ "$reg_ok" -eq 0 ]; then
        status=FAILED
        failed+=("$t")
        grep -m3 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)" "$LOGS/$t.log" | sed 's/^/    /'
        [ "$reg_ok" -eq 0 ] && echo "    a saved reproducer in fuzz/regressions/$t still fails"
    fi
    summary+=("$(printf '%-20s %-6s runs=%-10s %-22s %-16s crashes=%s' "$t" "$status" "${runs:-?}" "${cov:-cov: ?}" "${corp:-}" "$crashes")")
done

echo "== summary (${FUZZ_SECONDS}s per target; logs in fuzz/artifacts/logs/)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)"
    exit 1
fi
echo "fuzz.sh: all targets ran crash-free"
