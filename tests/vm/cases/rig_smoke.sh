# The VM rig's first test: real LVM on a virtio disk. A VG, a thin pool, a
# thin LV and a thick LV; data written; a thin snapshot and a COW snapshot
# taken; the data then overwritten on the origins; the snapshots must still
# read back exactly the bytes of the snapshot instant.
. "$CBTD_SRC/tests/vm/lib.sh"

log "kernel $(uname -r); device-mapper targets: $(dmsetup targets | awk '{print $1}' | tr '\n' ' ')"
for t in thin-pool snapshot era flakey; do
  dmsetup targets | grep -q "^$t " || fail "dm target $t missing"
done

make_vg rig /dev/vda
lvcreate -q -L 64M -T rig/pool >/dev/null
lvcreate -q -V 32M -T rig/pool -n thin >/dev/null
lvcreate -q -L 32M -n thick rig >/dev/null
[ -b /dev/rig/thin ] && [ -b /dev/rig/thick ] || fail "LV device nodes missing (no udev)"

rand_bytes one 33554432 > /tmp/one
rand_bytes two 33554432 > /tmp/two
dd if=/tmp/one of=/dev/rig/thin bs=1M oflag=direct status=none
dd if=/tmp/one of=/dev/rig/thick bs=1M oflag=direct status=none
want=$(hash_of /tmp/one)

lvcreate -q -s -n thin_snap rig/thin >/dev/null
lvchange -q -ay -K rig/thin_snap >/dev/null
lvcreate -q -s -L 40M -n thick_snap rig/thick >/dev/null

dd if=/tmp/two of=/dev/rig/thin bs=1M oflag=direct status=none
dd if=/tmp/two of=/dev/rig/thick bs=1M oflag=direct status=none

assert_eq "$want" "$(hash_of /dev/rig/thin_snap)" "thin snapshot bytes"
assert_eq "$want" "$(hash_of /dev/rig/thick_snap)" "COW snapshot bytes"
assert_eq "$(hash_of /tmp/two)" "$(hash_of /dev/rig/thin)" "thin origin bytes"
assert_eq "$(hash_of /tmp/two)" "$(hash_of /dev/rig/thick)" "thick origin bytes"
lvs --reportformat json -o lv_name,lv_attr,origin,data_percent rig
log "PASS: thin and COW snapshots hold the bytes of their instant"
