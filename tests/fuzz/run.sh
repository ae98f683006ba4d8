#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for SECONDS.
#
#   tests/fuzz/run.sh [SECONDS]          (default 60)
#
# Environment:
#   KRUNLET_FUZZ_BUILD    build directory (default: <repo>/build-fuzz)
#   KRUNLET_FUZZ_JOBS     ninja -j (default 2)
#   KRUNLET_FUZZ_TARGETS  space-separated subset of the targets
#   KRUNLET_FUZZ_KEEP     1: keep the scratch directory (grown corpora, logs)
#
# Steps: configure (once) and build the fuzzers; replay every file in
# tests/fuzz/regressions/<target>/; then fuzz each target for SECONDS on a
# scratch copy of tests/fuzz/corpus/<target>/ (the repository is never
# written). Prints executions, CPU seconds, and libFuzzer's final cov:/ft:
# per target. Exits 1 if any replay or fuzzing run crashed (the reproducer
# is copied to <build>/fuzz-artifacts/<target>/ and its path printed),
# 77 if clang or libFuzzer is missing (ctest counts that as skipped), 2 on a
# build failure.
set -uo pipefail

SECONDS_PER_TARGET=${1:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${KRUNLET_FUZZ_BUILD:-$REPO/build-fuzz}
JOBS=${KRUNLET_FUZZ_JOBS:-2}
ALL_TARGETS="fuzz_virtqueue fuzz_mmio fuzz_fuse fuzz_vsock fuzz_init_config fuzz_control_decoder fuzz_passt"
TARGETS=${KRUNLET_FUZZ_TARGETS:-$ALL_TARGETS}

if ! [[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS]  (seconds of fuzzing per target, a whole number)" >&2
    exit 2
fi

# ---- toolchain -------------------------------------------------------------------------------
if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
    echo "fuzz: clang/clang++ not found; install clang (apt-get install clang) to fuzz" >&2
    exit 77
fi
probe=$(mktemp -d)
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/p.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
    echo "fuzz: clang++ cannot link a libFuzzer target (is libclang_rt.fuzzer installed?):" >&2
    cat "$probe/err" >&2
    rm -rf "$probe"
    exit 77
fi
rm -rf "$probe"

start_all=$(date +%s)

# ---- build -----------------------------------------------------------------------------------
if [[ ! -f $BUILD/build.ninja ]]; then
    echo "fuzz: configuring $BUILD"
    mkdir -p "$BUILD"
    if ! cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DKRUNLET_FUZZ=ON >"$BUILD/configure.log" 2>&1; then
        cat "$BUILD/configure.log" >&2
        echo "fuzz: cmake configure failed (log above)" >&2
        exit 2
    fi
fi
echo "fuzz: building $TARGETS (ninja -j$JOBS)"
build_start=$(date +%s)
# shellcheck disable=SC2086
if ! nice ninja -C "$BUILD" -j"$JOBS" $TARGETS; then
    echo "fuzz: build failed" >&2
    exit 2
fi
echo "fuzz: build took $(($(date +%s) - build_start)) s"

# ---- run -------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/krunlet-fuzz-run.XXXXXX")
if [[ ${KRUNLET_FUZZ_KEEP:-0} != 1 ]]; then
    trap 'rm -rf "$WORK"' EXIT
fi
ARTIFACTS=$BUILD/fuzz-artifacts
failed=0
report=()

# CPU time (user+sys, in seconds) of this shell's finished children, from bash's `times`
# (run in this shell, not a subshell: a subshell has no children of its own yet).
children_cpu() {
    times >"$WORK/times"
    awk 'NR == 2 {
        split($1, u, "m"); split($2, s, "m");
        sub("s", "", u[2]); sub("s", "", s[2]);
        printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$WORK/times"
}

keep_artifacts() {  # target, dir
    local t=$1 dir=$2 f
    mkdir -p "$ARTIFACTS/$t"
    for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir"/slow-unit-*; do
        [[ -e $f ]] || continue
        case $(basename "$f") in slow-unit-*) continue ;; esac
        cp "$f" "$ARTIFACTS/$t/"
        echo "fuzz: $t: reproducer $ARTIFACTS/$t/$(basename "$f")"
        echo "      replay: $BUILD/fuzz/$t $ARTIFACTS/$t/$(basename "$f")"
    done
}

for t in $TARGETS; do
    bin=$BUILD/fuzz/$t
    mkdir -p "$WORK/$t/corpus" "$WORK/$t/artifacts"
    export KRUNLET_FUZZ_TMP=$WORK/$t
    common=(-rss_limit_mb=2048 -timeout=20 -artifact_prefix="$WORK/$t/artifacts/")
    dict=$HERE/dict/$t.dict
    [[ -f $dict ]] && common+=(-dict="$dict")

    # 1. Known bugs must stay fixed.
    status=ok
    regs=()
    if [[ -d $HERE/regressions/$t ]]; then
        while IFS= read -r -d '' f; do regs+=("$f"); done < <(find "$HERE/regressions/$t" -type f ! -name '*.md' -print0 | sort -z)
    fi
    if ((${#regs[@]})); then
        # A hang is a failure too; 10 s is plenty for one input.
        if "$bin" "${common[@]}" -timeout=10 "${regs[@]}" >"$WORK/$t/replay.log" 2>&1; then
            echo "fuzz: $t: ${#regs[@]} regression input(s) pass"
        else
            failed=1
            status=REGRESSION
            echo "fuzz: $t: REGRESSION: a file in tests/fuzz/regressions/$t/ fails:" >&2
            grep -E 'Running:|ERROR|FUZZ CHECK|HELPER CHECK|SUMMARY' "$WORK/$t/replay.log" | head -20 >&2
            keep_artifacts "$t" "$WORK/$t/artifacts"
        fi
    fi

    # 2. Fuzz.
    if [[ -d $HERE/corpus/$t ]]; then cp -r "$HERE/corpus/$t/." "$WORK/$t/corpus/"; fi
    children_cpu >"$WORK/cpu0"
    nice "$bin" "${common[@]}" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        "$WORK/$t/corpus" >"$WORK/$t/fuzz.log" 2>&1
    rc=$?
    children_cpu >"$WORK/cpu1"
    cpu=$(awk -v a="$(cat "$WORK/cpu0")" -v b="$(cat "$WORK/cpu1")" 'BEGIN { printf "%.1f", b - a }')
    execs=$(awk -F: '/stat::number_of_executed_units/ { gsub(/ /, "", $NF); print $NF }' "$WORK/$t/fuzz.log" | tail -1)
    rss=$(awk -F: '/stat::peak_rss_mb/ { gsub(/ /, "", $NF); print $NF }' "$WORK/$t/fuzz.log" | tail -1)
    # The last status line libFuzzer printed ("#N DONE cov: X ft: Y corp: ...", or the last pulse).
    last=$(grep -E '^#[0-9]+' "$WORK/$t/fuzz.log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
    if [[ -z $execs ]]; then execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last"); fi
    if ((rc != 0)); then
        status="CRASH (exit $rc)"
        failed=1
        echo "fuzz: $t crashed; log tail:" >&2
        grep -E 'ERROR|FUZZ CHECK|HELPER CHECK|SUMMARY|Test unit written|#[0-9]+ +in ' "$WORK/$t/fuzz.log" | head -30 >&2
        keep_artifacts "$t" "$WORK/$t/artifacts"
        cp "$WORK/$t/fuzz.log" "$ARTIFACTS/$t/fuzz.log" 2>/dev/null || true
    fi
    line=$(printf '%-22s %-10s execs %-9s cpu %6ss  cov %-6s ft %-6s corpus %-5s rss %sMB' \
        "$t" "$status" "${execs:-?}" "$cpu" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}")
    echo "fuzz: $line"
    report+=("$line")
done

echo
echo "== fuzz summary (${SECONDS_PER_TARGET}s per target, total $(($(date +%s) - start_all)) s incl. build) =="
printf '%s\n' "${report[@]}"
if [[ ${KRUNLET_FUZZ_KEEP:-0} == 1 ]]; then echo "scratch kept in $WORK"; fi
exit $failed
