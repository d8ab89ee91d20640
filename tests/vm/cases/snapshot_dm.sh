# Device-mapper snapshots of dm devices that are not LVs (dm_snapshotter.h):
# a linear dm device made with dmsetup is snapshotted with a writer running
# and the snapshot holds one instant; removal gives the origin its table
# back and leaves no cbtd-* device; a group of two dm devices is one
# instant; a missing or small COW store is refused with nothing changed;
# cleanup removes only devices with the CBTD- uuid mark.
. "$CBTD_SRC/tests/vm/cases/snapshot_lib.sh"

# Origins on /dev/vda (not LVM), COW stores on /dev/vdb.
dmsetup create dma --table "0 131072 linear /dev/vda 0"        # 64 MiB
dmsetup create dmb --table "0 65536 linear /dev/vda 131072"    # 32 MiB
dmsetup create cowa --table "0 65536 linear /dev/vdb 0"        # 32 MiB
dmsetup create cowb --table "0 65536 linear /dev/vdb 65536"    # 32 MiB
table_a=$(dmsetup table dma)
table_b=$(dmsetup table dmb)

dm_state() {  # every dm device with its uuid and table
  for n in $(dmsetup ls | awk '{print $1}' | sort); do
    echo "$n $(dmsetup info -c --noheadings -o uuid "$n") $(dmsetup table "$n")"
  done
}
cbtd_devices() {
  dmsetup ls | awk '{print $1}' | grep '^cbtd-' | sort | tr '\n' ' ' || true
}
snap_dev() {  # snap_dev JSON INDEX
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])["snapshots"][int(sys.argv[2])]["device_path"])' "$1" "$2"
}

log "discovery"
d=$("$CBTCTL" snapshot discover --json /dev/mapper/dma)
python3 - "$d" <<'PY'
import json, sys
v = json.loads(sys.argv[1])["volumes"][0]
assert v["kind"] == "dm" and v["snapshottable"], v
PY

log "snapshot of a dm device with a writer running"
rand_bytes "$CBTD_VM_SEED" $((64 << 20)) >/tmp/a.img
dd if=/tmp/a.img of=/dev/mapper/dma bs=1M oflag=direct status=none
tail_hash=$(tail -c +$((1048576 + 1)) /tmp/a.img | sha256sum | cut -d' ' -f1)
# The writer's MiB starts zeroed: a block it has not reached yet at the
# instant (a slow, loaded machine) reads as "nothing", not as random bytes.
dd if=/dev/zero of=/dev/mapper/dma bs=1M count=1 oflag=direct status=none
seq_writer /dev/mapper/dma 256 &   # the first MiB
wpid=$!
sleep 2
out=$("$CBTCTL" snapshot create --json --cow-device /dev/mapper/cowa /dev/mapper/dma)
echo "$out"
dev=$(snap_dev "$out" 0)
name=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["snapshots"][0]["name"])' "$out")
assert_eq "/dev/mapper/$name" "$dev" "device path"
dmsetup table
m1=$(check_seq "$dev" 256)
# Writes after the instant, beyond the writer's MiB, must not show.
dd if=/dev/urandom of=/dev/mapper/dma bs=1M seek=32 count=2 oflag=direct status=none
sleep 1
m2=$(check_seq "$dev" 256)
# The origin is read with the writer paused between two writes: read while
# it writes, the origin need not look like any one instant.
kill -STOP $wpid
live=$(check_seq /dev/mapper/dma 256)
kill -CONT $wpid
log "snapshot holds n=$m1; origin went on to n=$live"
assert_eq "$m1" "$m2" "snapshot changed after it was taken"
[ "$m1" -gt 0 ] && [ "$live" -gt "$m1" ] || fail "writer did not run across the snapshot"
assert_eq "$tail_hash" "$(tail -c +$((1048576 + 1)) "$dev" | sha256sum | cut -d' ' -f1)" \
  "snapshot's bytes beyond the writer's MiB are not the origin's at the instant"
[ "$(hash_of /dev/mapper/dma)" != "$(hash_of "$dev")" ] || fail "origin writes did not happen"
if dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct status=none 2>/dev/null; then
  fail "snapshot is writable"
fi
assert_eq "0 131072 snapshot-origin" "$(dmsetup table dma | cut -d' ' -f1-3)" "origin table while snapshotted"
list=$("$CBTCTL" snapshot list --json)
echo "$list"
python3 - "$list" "$name" <<'PY'
import json, sys
s = json.loads(sys.argv[1])["snapshots"]
assert len(s) == 1, s
x = s[0]
assert x["kind"] == "dm" and x["name"] == sys.argv[2] and x["origin"] == "dma", x
assert x["cow_dm_path"] == "/dev/mapper/cbtd-dma-cow-" + x["timestamp"], x
assert x["cow_fill_percent"] > 0 and not x["invalid"] and x["active"], x
assert x["size_bytes"] == 64 << 20, x
PY
assert_contains "$("$CBTCTL" snapshot list)" "dm/$name" "plain list"
"$CBTCTL" snapshot remove "dm/$name"   # the writer is still running
kill $wpid; wait $wpid || true
assert_eq "$table_a" "$(dmsetup table dma)" "origin table after remove"
assert_eq "" "$(cbtd_devices)" "cbtd devices after remove"
assert_eq "" "$("$CBTCTL" snapshot list)" "snapshots after remove"
final=$(check_seq /dev/mapper/dma 256)
[ "$final" -ge "$live" ] || fail "origin lost writes: $final < $live"

log "group of two dm devices: raw writer n to A, then n to B"
pair_writer /dev/mapper/dma /dev/mapper/dmb &
wpid=$!
sleep 2
prev=0
for i in $(seq 1 4); do
  out=$("$CBTCTL" snapshot create --json --group ab \
    --cow-device /dev/mapper/dma=/dev/mapper/cowa \
    --cow-device /dev/mapper/dmb=/dev/mapper/cowb /dev/mapper/dma /dev/mapper/dmb)
  sa=$(first_number "$(snap_dev "$out" 0)")
  sb=$(first_number "$(snap_dev "$out" 1)")
  log "group $i: A_snap=$sa B_snap=$sb"
  [ "$sa" -ge "$sb" ] && [ $((sa - sb)) -le 1 ] ||
    fail "group snapshot $i is not one instant: A=$sa B=$sb"
  [ "$sb" -gt "$prev" ] || fail "writer did not progress between group snapshots"
  prev=$sa
  "$CBTCTL" snapshot cleanup >/dev/null
  assert_eq "" "$(cbtd_devices)" "cbtd devices after group $i"
  sleep 1.1  # one snapshot name per second
done
kill $wpid; wait $wpid || true
assert_eq "$table_a" "$(dmsetup table dma)" "dma table after the groups"
assert_eq "$table_b" "$(dmsetup table dmb)" "dmb table after the groups"

log "refusals change nothing"
before=$(dm_state)
expect_refused "/dev/mapper/dma" "$CBTCTL" snapshot create /dev/mapper/dma
expect_refused "--cow-device" "$CBTCTL" snapshot create /dev/mapper/dma
expect_refused "is 32.0 MiB" "$CBTCTL" snapshot create --cow-size 40M \
  --cow-device /dev/mapper/cowa /dev/mapper/dma
expect_refused "/dev/mapper/dmb" "$CBTCTL" snapshot create \
  --cow-device /dev/mapper/dma=/dev/mapper/cowa /dev/mapper/dma /dev/mapper/dmb
expect_refused "of its own" "$CBTCTL" snapshot create \
  --cow-device /dev/mapper/dma=/dev/mapper/cowa \
  --cow-device /dev/mapper/dmb=/dev/mapper/cowa /dev/mapper/dma /dev/mapper/dmb
assert_eq "$before" "$(dm_state)" "dm devices changed by refused commands"

log "orphan cleanup removes only devices with the CBTD- mark"
"$CBTCTL" snapshot create --cow-device /dev/mapper/cowa /dev/mapper/dma >/dev/null
lookalike=cbtd-dmb-20261121T224005Z
dmsetup create $lookalike --table "0 8 error"                                    # no uuid
dmsetup create cbtd-dmb-real --uuid "LVM-not-cbtd" --table "0 8 error"          # foreign mark
expect_refused "not a cbtd snapshot" "$CBTCTL" snapshot remove dm/$lookalike
"$CBTCTL" snapshot cleanup
assert_eq "cbtd-dmb-20261121T224005Z cbtd-dmb-real " "$(cbtd_devices)" "devices after cleanup"
assert_eq "$table_a" "$(dmsetup table dma)" "dma table after cleanup"
assert_eq "$table_b" "$(dmsetup table dmb)" "dmb untouched"
log "PASS"
