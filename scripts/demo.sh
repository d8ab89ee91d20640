#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root), builds cbtd, and tells the
# backup story on real LVM inside the VM rig (the host kernel needs no
# device-mapper). See README.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${CBTD_BUILD_DIR:-$root/build}

"$root/scripts/setup.sh"
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j "$(nproc)"

cd "$root"
exec "$root/tests/vm/run-vm.sh" --build "$build" --timeout 1800 --follow \
  --disk 512M --disk 512M -- "$root/scripts/demo-guest.sh"
