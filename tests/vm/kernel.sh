#!/usr/bin/env bash
# Prepares the VM rig's kernel: Debian's current linux-image-6.1.0-NN-amd64
# (resolved from linux-image-amd64), unpacked with dpkg -x into a cache
# outside the repository, modules.dep built with depmod -b, and a small
# initramfs (busybox + the modules needed to reach the host's filesystem
# over 9p). Idempotent; needs root and Debian's package registry the first
# time only.
#   tests/vm/kernel.sh           prepare (or confirm) the cache
#   tests/vm/kernel.sh --print   print the cache's kernel directory
# Environment: CBTD_VM_CACHE (default /var/cache/cbtd-vm).
set -euo pipefail

cache=${CBTD_VM_CACHE:-/var/cache/cbtd-vm}
here=$(cd "$(dirname "$0")" && pwd)

# Modules the initramfs loads to mount the host root; the rest are loaded
# inside the guest from the cache with modprobe -d.
initramfs_modules=(virtio_pci virtio_blk 9pnet_virtio 9p overlay)

current_link() { echo "$cache/current"; }

if [ "${1:-}" = "--print" ]; then
  readlink -f "$(current_link)"
  exit 0
fi

resolve_image_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

pkg=$(resolve_image_package || true)
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(resolve_image_package)
fi
[ -n "$pkg" ] || { echo "kernel.sh: cannot resolve linux-image-amd64's kernel package" >&2; exit 1; }

dir="$cache/$pkg"
if [ -f "$dir/initrd.img" ] && [ -f "$dir/vmlinuz" ] && [ -f "$dir/.complete" ] &&
   [ "$dir/.complete" -nt "$here/kernel.sh" ] && [ "$dir/.complete" -nt "$here/init" ]; then
  ln -sfn "$dir" "$(current_link)"
  echo "kernel.sh: VM kernel ready: $dir"
  exit 0
fi

echo "kernel.sh: preparing $pkg in $dir"
rm -rf "$dir"
mkdir -p "$dir/deb"
(cd "$dir/deb" && apt-get download "$pkg" >/dev/null 2>&1 ||
  { apt-get update -qq && apt-get download "$pkg"; })
dpkg -x "$dir"/deb/*.deb "$dir/root"
rm -rf "$dir/deb"
kver=$(ls "$dir/root/lib/modules")
cp "$dir/root/boot/vmlinuz-$kver" "$dir/vmlinuz"
depmod -b "$dir/root" "$kver"
echo "$kver" > "$dir/kver"

# initramfs: busybox, /init, and the modules (in load order) for 9p root.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,host,ovl,newroot,lib/modules}
cp /bin/busybox "$stage/bin/busybox"
cp "$here/init" "$stage/init"
chmod 755 "$stage/init"
: > "$stage/modules.order"
for m in "${initramfs_modules[@]}"; do
  modprobe -d "$dir/root" -S "$kver" --show-depends "$m" |
    awk '$1 == "insmod" {print $2}' |
    while read -r ko; do
      base=$(basename "$ko")
      if ! grep -qx "$base" "$stage/modules.order"; then
        cp "$ko" "$stage/lib/modules/$base"
        echo "$base" >> "$stage/modules.order"
      fi
    done
done
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$dir/initrd.img"
touch "$dir/.complete"
ln -sfn "$dir" "$(current_link)"
echo "kernel.sh: VM kernel ready: $dir ($kver; initramfs modules: $(tr '\n' ' ' < "$stage/modules.order"))"
