#!/usr/bin/env bash
# The unit tests of the code that parses bytes from the network and from
# files (label `asan`: common, cbt, transport, receiver, restore; see
# tests/CMakeLists.txt) built with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, and run. Any report fails the test that
# caused it. Part of scripts/test.sh; alone:
#   scripts/asan-tests.sh [extra ctest arguments]
# Environment: CBTD_FUZZ_BUILD_DIR (default ./build-fuzz, shared with
# scripts/fuzz.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CBTD_FUZZ_BUILD_DIR:-$root/build-fuzz}
start=$(date +%s)
"$root/scripts/clang-build.sh" asan_unit_tests

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp"
cd "$build"
# IndexMemoryTest measures peak RSS, which ASan's shadow memory and
# quarantine inflate: it runs in the normal build only.
ctest -L asan -E IndexMemoryTest --no-tests=error --output-on-failure -j "$(nproc)" \
  --timeout 900 "$@"
echo "asan-tests.sh: passed in $(( $(date +%s) - start )) s"
