# Single-volume snapshots through `cbtctl snapshot`: discovery, thin and
# thick snapshots taken while a writer runs hold exactly one instant of the
# volume, safety checks refuse without changing anything, and orphan
# cleanup removes only cbtd's own snapshots.
. "$CBTD_SRC/tests/vm/cases/snapshot_lib.sh"

make_vg vg /dev/vda
lvcreate -q -L 64M -T vg/pool >/dev/null
lvcreate -q -V 32M -T vg/pool -n thin >/dev/null
lvcreate -q -L 32M -n thick vg >/dev/null

log "discovery"
d=$("$CBTCTL" snapshot discover --json /dev/vg/thin vg/thick /dev/vdb)
echo "$d"
python3 - "$d" <<'PY'
import json, sys
v = json.loads(sys.argv[1])["volumes"]
assert [x["kind"] for x in v] == ["thin", "thick", "block"], v
assert v[0]["pool_lv"] == "pool" and v[0]["thin_id"] >= 1, v[0]
assert v[0]["pool_dm_name"] == "vg-pool-tpool", v[0]
assert v[0]["pool_metadata_dm_path"] == "/dev/mapper/vg-pool_tmeta", v[0]
assert v[0]["size_bytes"] == 32 << 20 and len(v[0]["uuid"]) == 38, v[0]
assert v[1]["snapshottable"] and not v[2]["snapshottable"], v
PY
[ -b /dev/mapper/vg-pool-tpool ] && [ -b /dev/mapper/vg-pool_tmeta ] ||
  fail "discovered pool devices do not exist"

log "thin and thick snapshots of a volume with a writer running"
for lv in thin thick; do
  seq_writer /dev/vg/$lv 256 &
  wpid=$!
  sleep 2
  out=$("$CBTCTL" snapshot create --json --cow-percent 50 /dev/vg/$lv)
  echo "$out"
  dev=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["snapshots"][0]["device_path"])' "$out")
  m1=$(check_seq "$dev" 256)
  sleep 2
  kill $wpid; wait $wpid || true
  m2=$(check_seq "$dev" 256)
  live=$(check_seq /dev/vg/$lv 256)
  log "$lv: snapshot holds instant n=$m1; origin went on to n=$live"
  assert_eq "$m1" "$m2" "$lv snapshot changed after it was taken"
  [ "$m1" -gt 0 ] && [ "$live" -gt "$m1" ] || fail "$lv: writer did not run across the snapshot"
  # The snapshot is read-only.
  if dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct status=none 2>/dev/null; then
    fail "$lv snapshot is writable"
  fi
done
lvs -o lv_name,lv_attr,origin,lv_tags,data_percent vg
list=$("$CBTCTL" snapshot list --json vg)
python3 - "$list" <<'PY'
import json, sys
s = json.loads(sys.argv[1])["snapshots"]
assert sorted(x["origin"] for x in s) == ["thick", "thin"], s
thick = [x for x in s if x["kind"] == "thick"][0]
assert thick["cow_dm_path"].endswith("-cow") and thick["cow_fill_percent"] > 0, thick
assert [x for x in s if x["kind"] == "thin"][0]["thin_id"] >= 1, s
PY
for n in $("$CBTCTL" snapshot list vg | awk '{print $1}'); do "$CBTCTL" snapshot remove "$n"; done
assert_eq "" "$("$CBTCTL" snapshot list vg)" "snapshots left after remove"

log "refusals change nothing"
before=$(lvm_state vg)
expect_refused "does not exist" "$CBTCTL" snapshot create /dev/vg/missing
expect_refused "plain block device" "$CBTCTL" snapshot create /dev/vdb
expect_refused "internal layer" "$CBTCTL" snapshot create /dev/mapper/vg-pool-tpool
expect_refused "is a thin pool" "$CBTCTL" snapshot create /dev/mapper/vg-pool
# A COW snapshot bigger than the VG's free space.
expect_refused "free" "$CBTCTL" snapshot create --cow-size 1G /dev/vg/thick
# A thin pool over the fill limit: 64M pool, 40 MiB written.
lvcreate -q -V 64M -T vg/pool -n big >/dev/null
dd if=/dev/urandom of=/dev/vg/big bs=1M count=52 oflag=direct status=none
before=$(lvm_state vg)
lvs -o lv_name,data_percent,metadata_percent vg/pool
expect_refused "% full" "$CBTCTL" snapshot create /dev/vg/thin
expect_refused "over the 50% limit" "$CBTCTL" snapshot create --pool-limit 50 /dev/vg/thin
# A group with one refused member creates nothing for the others.
expect_refused "full" "$CBTCTL" snapshot create /dev/vg/thick /dev/vg/thin
assert_eq "$before" "$(lvm_state vg)" "LVs changed by refused commands"
lvremove -q -y vg/big >/dev/null

log "orphan cleanup removes only cbtd's snapshots"
"$CBTCTL" snapshot create /dev/vg/thin
sleep 1.1
"$CBTCTL" snapshot create /dev/vg/thin /dev/vg/thick
lookalike=thin.cbtd-20261121T224005Z
lvcreate -q -s -n $lookalike vg/thin >/dev/null             # untagged
lvcreate -q -s -n other --addtag cbtd vg/thin >/dev/null    # tagged, not our name
expect_refused "not a cbtd snapshot" "$CBTCTL" snapshot remove vg/$lookalike
mapfile -t ours < <("$CBTCTL" snapshot list vg | awk '{print $1}')
assert_eq 3 "${#ours[@]}" "cbtd snapshots listed"
"$CBTCTL" snapshot cleanup --keep "${ours[0]}"
left=$(lvs --noheadings -o lv_name vg | tr -d ' ' | sort | tr '\n' ' ')
assert_eq "$(printf '%s\n' other pool thick thin "${ours[0]#vg/}" $lookalike | sort | tr '\n' ' ')" \
  "$left" "LVs after cleanup"
log "PASS"
