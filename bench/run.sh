#!/usr/bin/env bash
# cbtd against rsync, a full copy, restic and borg on the same data and the
# same change, plus the machine's own sequential limits (fio).
#   bench/run.sh --quick              a few minutes: 512 MiB main, 128M/256M/512M
#   bench/run.sh                      the full run: 8 GiB main, 2G/4G/8G
#   bench/run.sh --size 16G --sizes 4G,8G,16G   larger
# Other options: bench/bench.py --help. Run as root (it installs packages,
# drops the page cache between steps and attaches a loop device).
# Writes bench/results/<UTC stamp>[-quick].{json,md} and -*.png.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh: run as root" >&2
  exit 2
fi
"$here/setup.sh"
build=${CBTD_BENCH_BUILD:-$root/build}
if [ -z "${CBTD_BENCH_NO_BUILD:-}" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCBTD_BUILD_TESTS=OFF >/dev/null
  # cbtctl / cbt-receiver may lack the paths measured here; the run says so.
  cmake --build "$build" --target bench-image cbtctl cbt-receiver
fi
exec /usr/bin/python3 "$here/bench.py" --bin-dir "$build/bin" "$@"
