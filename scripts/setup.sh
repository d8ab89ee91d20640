#!/usr/bin/env bash
# Installs everything cbtd needs to build, test and run its VM rig, from
# Debian 12 packages only. Idempotent; run as root.
#   scripts/setup.sh            build + test dependencies and the VM kernel
#   scripts/setup.sh --no-vm    skip the VM kernel cache
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
want_vm=1
for arg in "$@"; do
  case "$arg" in
    --no-vm) want_vm=0 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 2
fi

packages=(
  # build
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libdevmapper-dev libaio-dev libboost-program-options-dev
  libgtest-dev libgmock-dev libzstd-dev libxxhash-dev libssl-dev
  libsqlite3-dev libsystemd-dev nlohmann-json3-dev libexpat1-dev
  nbdkit nbdkit-plugin-dev   # instant access: nbd/ (cbtctl export)
  clang   # libFuzzer targets (scripts/fuzz.sh)
  # runtime: LVM, device-mapper tools, filesystems, certificates
  lvm2 dmsetup thin-provisioning-tools e2fsprogs xfsprogs util-linux
  openssl
  # VM test rig
  qemu-system-x86 busybox-static kmod cpio
  # tools the tests and the demo use
  python3 xxd
  libnbd-bin qemu-utils nbd-client   # NBD clients: nbdcopy, qemu-img/io
  # the vault on Ceph (receiver/rados_object_store.h) and its test cluster
  # (tests/ceph/ceph-cluster.sh); librados.hpp is in libradospp-dev
  ceph-mon ceph-osd librados-dev libradospp-dev
)

. "$here/apt-install.sh"
apt_install setup.sh "${packages[@]}"

if [ "$want_vm" = 1 ]; then
  "$here/../tests/vm/kernel.sh"
fi
