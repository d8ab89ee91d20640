#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz, then runs each from its seed
# corpus (tests/fuzz/corpus/<target>) for a bounded time, as many at once
# as there are cores.
#   scripts/fuzz.sh                 every target, 20 s each (the CI slice)
#   scripts/fuzz.sh 3600            every target, an hour each
#   scripts/fuzz.sh 600 pack_fuzz   one target
# New inputs that raise coverage go to build-fuzz/corpus/<target> (the seed
# corpus stays as committed); a crash leaves crash-* in build-fuzz/ and
# fails the run: turn it into a regression test and a seed.
# Environment: CBTD_FUZZ_BUILD_DIR (default ./build-fuzz), CBTD_FUZZ_SEED
# (libFuzzer's -seed; the CI slice fixes it so a run repeats; default: a
# new seed every run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CBTD_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stream_records_fuzz index_fuzz pack_fuzz
                                     tracking_fuzz config_fuzz receive_fuzz)

"$root/scripts/clang-build.sh" "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp"
runs_of() {  # TARGET: executions its last run reported
  sed -n 's/^stat::number_of_executed_units: *//p' "$build/$1.log" | tail -1
}
# One target per core at a time: each libFuzzer run is single-threaded.
fuzz_one() {  # TARGET: runs it; prints its line; non-zero if it fails
  local t=$1 seeds=$root/tests/fuzz/corpus/$1 work=$build/corpus/$1
  local log=$build/$1.log
  mkdir -p "$work"
  # -max_len: streams and packs need room for a few chunk records.
  if ! (cd "$build" && "$build/fuzz/$t" -max_total_time="$seconds" \
          -max_len=262144 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
          -seed="${CBTD_FUZZ_SEED:-0}" \
          "$work" "$seeds" > "$log" 2>&1); then
    tail -40 "$log" >&2
    echo "fuzz.sh: $t FAILED (log $log)" >&2
    return 1
  fi
  echo "fuzz.sh: $t: $(runs_of "$t") executions in ${seconds} s, no crash"
}
jobs_max=$(nproc)
failed=0
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs_max" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
[ "$failed" = 0 ] || { echo "fuzz.sh: a target failed (see above)" >&2; exit 1; }
total=0
for t in "${targets[@]}"; do
  runs=$(runs_of "$t")
  total=$(( total + ${runs:-0} ))
done
echo "fuzz.sh: all ${#targets[@]} targets clean, $total executions"
