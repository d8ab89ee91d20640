#!/usr/bin/env bash
# cbtd against rsync, a full copy, restic and borg on the same data and the
# same change, plus the machine's own sequential limits (fio).
#   bench/run.sh --quick              a few minutes: 512 MiB main, 128M/256M/512M
#   bench/run.sh                      the full run: 8 GiB main, 2G/4G/8G
#   bench/run.sh --size 16G --sizes 4G,8G,16G   larger
#   bench/run.sh --vm                 in the VM rig (real dm-thin, dm-snapshot,
#                                     dm-era): thin-delta vs hash time, and the
#                                     write cost of COW snapshots / era stacks
#   bench/run.sh --nbd [--size 2G]    instant access: an NBD export read
#                                     sequentially and at random against a
#                                     full restore (bench/nbd_bench.py)
#   bench/run.sh --ceph [--size 2G]   the vault on a Ceph pool against
#                                     `rados bench` on it, and the local
#                                     vault beside it (bench/ceph_bench.py)
#   bench/run.sh --memory [--size 16T] peak RSS of sender and receiver for a
#                                     16 TiB sparse volume, full and 1000
#                                     changed chunks (bench/memory_bench.py)
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
# CBTD_BENCH_SRC: the cbtd tree whose cbtctl/cbt-receiver are measured
# (default: this one); CBTD_BENCH_NO_BUILD=1: use the builds as they are.
src=${CBTD_BENCH_SRC:-$root}
build=$root/build-bench
cbtd_build=$src/build-bench
if [ -z "${CBTD_BENCH_NO_BUILD:-}" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCBTD_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" --target bench-image
  if [ "$src" != "$root" ]; then
    cmake -S "$src" -B "$cbtd_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCBTD_BUILD_TESTS=OFF >/dev/null
  fi
  # cbtctl / cbt-receiver may lack the paths measured here; the run says so.
  cmake --build "$cbtd_build" --target cbtctl cbt-receiver
  if [ "${1:-}" = "--nbd" ]; then
    cmake --build "$cbtd_build" --target cbtd cbtd_nbdkit_plugin
  fi
  if [ "${1:-}" = "--memory" ]; then
    cmake --build "$cbtd_build" --target cbtd
  fi
fi
if [ "${1:-}" = "--ceph" ]; then
  shift
  exec /usr/bin/python3 "$here/ceph_bench.py" --bin-dir "$cbtd_build/bin" \
    --cluster-script "$src/tests/ceph/ceph-cluster.sh" "$@"
fi
if [ "${1:-}" = "--memory" ]; then
  shift
  exec /usr/bin/python3 "$here/memory_bench.py" --bin-dir "$cbtd_build/bin" \
    --make-certs "$src/scripts/make-certs.sh" "$@"
fi
if [ "${1:-}" = "--nbd" ]; then
  shift
  exec /usr/bin/python3 "$here/nbd_bench.py" \
    --image-tool "$build/bin/bench-image" --bin-dir "$cbtd_build/bin" "$@"
fi
if [ "${1:-}" = "--vm" ]; then
  shift  # the rest: BENCH_VM_*=VALUE knobs of bench/vm/cbt_costs.sh
  stamp=$(date -u +%Y-%m-%dT%H%MZ)
  log=$(mktemp /tmp/cbtd-bench-vm.XXXXXX)
  start=$(date +%s)
  "$root/tests/vm/run-vm.sh" --build "$cbtd_build" --disk 6G --timeout 3600 \
    -- "$root/bench/vm/cbt_costs.sh" "$@" 2>&1 | tee "$log"
  exec /usr/bin/python3 "$here/vm_report.py" "$log" \
    "$here/results/$stamp-vm" "$(( $(date +%s) - start ))"
fi
exec /usr/bin/python3 "$here/bench.py" --image-tool "$build/bin/bench-image" \
  --bin-dir "$cbtd_build/bin" --make-certs "$src/scripts/make-certs.sh" "$@"
