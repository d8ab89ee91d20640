# The demo's story, run inside the VM by scripts/demo.sh.
. "$CBTD_SRC/tests/vm/lib.sh"

step() { printf '\n=== %s\n' "$*"; }

step "A volume group on a fresh disk, a thin pool, a thin LV with ext4"
make_vg demo /dev/vda
lvcreate -q -L 256M -T demo/pool >/dev/null
lvcreate -q -V 128M -T demo/pool -n data >/dev/null
mkfs.ext4 -q /dev/demo/data
mkdir -p /mnt/data
mount /dev/demo/data /mnt/data
rand_bytes demo 8388608 > /mnt/data/file.bin
echo "hello from cbtd" > /mnt/data/hello.txt
sync
lvs -o lv_name,lv_size,pool_lv,data_percent demo

step "A crash-consistent thin snapshot, listed"
# lvcreate suspends the origin, which freezes the mounted ext4 itself.
lvcreate -q -s -n data.cbtd-demo --addtag cbtd demo/data >/dev/null
lvchange -q -ay -K demo/data.cbtd-demo
lvs -o lv_name,origin,lv_tags,lv_attr demo
want=$(hash_of /mnt/data/file.bin)

step "The snapshot mounts read-only and holds the files of its instant"
rand_bytes changed 8388608 > /mnt/data/file.bin
sync
mkdir -p /mnt/snap
mount -o ro /dev/demo/data.cbtd-demo /mnt/snap
assert_eq "$want" "$(hash_of /mnt/snap/file.bin)" "snapshot file content"
cat /mnt/snap/hello.txt
umount /mnt/snap
umount /mnt/data
echo
echo "demo: done"
