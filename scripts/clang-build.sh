#!/usr/bin/env bash
# Configures the clang build with AddressSanitizer, UndefinedBehaviorSanitizer
# and libFuzzer's coverage (default ./build-fuzz) and builds the given
# targets. Shared by scripts/fuzz.sh (the fuzzers) and scripts/asan-tests.sh
# (the unit tests labelled `asan`), so the libraries are compiled once.
# Line tables only (-g1): sanitizer reports keep file:line.
#   scripts/clang-build.sh TARGET...
# Environment: CBTD_FUZZ_BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CBTD_FUZZ_BUILD_DIR:-$root/build-fuzz}

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCBTD_BUILD_TESTS=ON -DCBTD_FUZZ=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DCBTD_SANITIZE=address,undefined >/dev/null
cmake --build "$build" -j "$(nproc)" --target "$@"
