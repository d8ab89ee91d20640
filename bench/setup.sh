#!/usr/bin/env bash
# Installs the peer tools and helpers the benchmark needs, from Debian 12
# packages only. Idempotent; run as root. bench/run.sh calls it.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "bench/setup.sh: run as root (it installs Debian packages)" >&2
  exit 2
fi

packages=(
  rsync restic borgbackup   # the peers
  fio                       # the machine's sequential read/write limits
  time                      # /usr/bin/time -v: wall, CPU, peak RSS
  python3 python3-matplotlib  # bench/bench.py and its plots
  jq openssl util-linux iproute2 coreutils
  python3-libnbd            # bench/nbd_bench.py: timed NBD reads
)

. "$(cd "$(dirname "$0")/.." && pwd)/scripts/apt-install.sh"
apt_install bench/setup.sh "${packages[@]}"
