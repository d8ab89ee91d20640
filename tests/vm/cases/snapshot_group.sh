# Consistency groups through `cbtctl snapshot create` with raw writers: a
# writer across two thin LVs is captured at one instant in every group
# snapshot, sequential snapshots are shown not to be (so the check can
# fail), and a thin and a thick LV share the instant too.
. "$CBTD_SRC/tests/vm/cases/snapshot_lib.sh"

make_vg vg /dev/vda
lvcreate -q -L 64M -T vg/pool >/dev/null
lvcreate -q -V 16M -T vg/pool -n a >/dev/null
lvcreate -q -V 16M -T vg/pool -n b >/dev/null

snap_dev() {  # snap_dev JSON INDEX
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])["snapshots"][int(sys.argv[2])]["device_path"])' "$1" "$2"
}
remove_all() {
  "$CBTCTL" snapshot cleanup >/dev/null
}

log "raw writer: n to A, then n to B, n = 1, 2, ..."
pair_writer /dev/vg/a /dev/vg/b &
wpid=$!
sleep 2
prev=0
for i in $(seq 1 4); do
  out=$("$CBTCTL" snapshot create --json --group ab /dev/vg/a /dev/vg/b)
  sa=$(first_number "$(snap_dev "$out" 0)")
  sb=$(first_number "$(snap_dev "$out" 1)")
  log "group $i: A_snap=$sa B_snap=$sb"
  [ "$sa" -ge "$sb" ] && [ $((sa - sb)) -le 1 ] ||
    fail "group snapshot $i is not one instant: A=$sa B=$sb"
  [ "$sb" -gt "$prev" ] || fail "writer did not progress between group snapshots"
  prev=$sa
  remove_all
done
violations=0
for i in $(seq 1 3); do
  sleep 1.1  # one snapshot name per second
  out=$("$CBTCTL" snapshot create --json --sequential /dev/vg/a /dev/vg/b)
  sa=$(first_number "$(snap_dev "$out" 0)")
  sb=$(first_number "$(snap_dev "$out" 1)")
  log "sequential $i: A_snap=$sa B_snap=$sb"
  if [ "$sa" -lt "$sb" ] || [ $((sa - sb)) -gt 1 ]; then violations=$((violations + 1)); fi
  remove_all
done
kill $wpid; wait $wpid || true
[ "$violations" -gt 0 ] || fail "sequential snapshots never broke the invariant: the check cannot fail"
log "sequential snapshots broke the invariant $violations/3 times; the group never did"

log "a thin and a thick LV at one instant: the thick member's lvcreate runs in the window"
lvcreate -q -L 16M -n thick vg >/dev/null
pair_writer /dev/vg/a /dev/vg/thick &
wpid=$!
sleep 2
prev=0
for i in $(seq 1 3); do
  sleep 1.1  # one snapshot name per second
  out=$("$CBTCTL" snapshot create --json --group at /dev/vg/a /dev/vg/thick)
  sa=$(first_number "$(snap_dev "$out" 0)")
  st=$(first_number "$(snap_dev "$out" 1)")
  log "thin+thick group $i: A_snap=$sa THICK_snap=$st"
  [ "$sa" -ge "$st" ] && [ $((sa - st)) -le 1 ] ||
    fail "thin+thick group snapshot $i is not one instant: A=$sa THICK=$st"
  [ "$st" -gt "$prev" ] || fail "writer did not progress between group snapshots"
  prev=$sa
  remove_all
done
kill $wpid; wait $wpid || true
lvs --noheadings -o lv_name vg | grep -q cbtd && fail "group snapshots left behind"

log "PASS"
