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
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "bench/setup.sh: all packages present"
fi
