# Issue 13, source I/O errors: the real cbtd backs up a dm volume whose
# disk returns EIO (dm-flakey, down for good, under one MiB of it) in the
# middle of an incremental.
#  - the run fails, and its error names the device, the offset and the
#    errno;
#  - no version is committed, and tracking is not advanced: the base
#    snapshot and base version stay those of the last good run, no
#    snapshot of the failed run is left;
#  - with the disk healthy again, the next run is an incremental from
#    that base that includes every change (those before the failed run
#    and after it), and its version restores to the snapshot's bytes and
#    to the volume's (nothing writes it meanwhile);
#  - a full backup (no base yet) over the bad MiB fails the same way and
#    leaves no version, and the volume's first good run is then a full.
#  - a thin LV whose pool is 87% full (over the 80% limit) is refused
#    before any snapshot is taken, naming the pool; grown, it backs up.
. "$CBTD_SRC/tests/vm/lib.sh"

SEED=${CBTD_VM_SEED:-1}
MIB=2048  # sectors
SIZE=$((64 * MIB))
BAD=$(( (SEED % 20 + 30) * MIB ))  # the bad MiB, 30-49 MiB in
# The volume cbtd sees, /dev/mapper/src, is linear over `disk`, the stand-in
# for the physical disk whose table the test swaps (cbtd swaps src's own).
dmsetup create disk --table "0 $SIZE linear /dev/vda 0"
dmsetup create src --table "0 $SIZE linear /dev/mapper/disk 0"
dmsetup create disk2 --table "0 $SIZE linear /dev/vda $SIZE"
dmsetup create src2 --table "0 $SIZE linear /dev/mapper/disk2 0"
rand_bytes "$SEED-src" $((64 << 20)) | dd of=/dev/mapper/src bs=1M oflag=direct status=none
rand_bytes "$SEED-src2" $((64 << 20)) | dd of=/dev/mapper/src2 bs=1M oflag=direct status=none
# A thin pool of 32 MiB, 28 MiB of it written (87.5%).
make_vg fv /dev/vdg
lvcreate -q -L 32M -T fv/pool >/dev/null
lvcreate -q -V 64M -T fv/pool -n thin >/dev/null
rand_bytes "$SEED-thin" $((28 << 20)) | dd of=/dev/fv/thin bs=1M oflag=direct status=none

# disk_bad DISK / disk_good DISK: one MiB at BAD returns EIO for every I/O
# (dm-flakey, up 0 s, down 3600 s), or the disk is whole again.
disk_bad() {
  local base=0
  [ "$1" = disk2 ] && base=$SIZE
  dmsetup suspend "$1"
  dmsetup load "$1" <<EOF
0 $BAD linear /dev/vda $base
$BAD $MIB flakey /dev/vda $((base + BAD)) 0 3600
$((BAD + MIB)) $((SIZE - BAD - MIB)) linear /dev/vda $((base + BAD + MIB))
EOF
  dmsetup resume "$1"
}
disk_good() {
  local base=0
  [ "$1" = disk2 ] && base=$SIZE
  dmsetup suspend "$1"
  dmsetup load "$1" --table "0 $SIZE linear /dev/vda $base"
  dmsetup resume "$1"
}

cbt-receiver serve --vault /tmp/vault --create --insecure \
  --listen unix:/run/cbt-receiver.sock > /tmp/receiver.log 2>&1 &
RECEIVER=$!
mkdir -p /run/cbtd /tmp/cbtd-state && chmod 700 /run/cbtd
cat > /tmp/cbtd.conf <<'EOF'
[agent]
state_dir = /tmp/cbtd-state

[receiver]
address = unix:/run/cbt-receiver.sock

[volume.src]
path = /dev/mapper/src
cow_device = /dev/vdb /dev/vdc

[volume.src2]
path = /dev/mapper/src2
cow_device = /dev/vdd /dev/vde

[volume.thin]
path = /dev/fv/thin
EOF
cbtd --config /tmp/cbtd.conf > /tmp/cbtd.log 2>&1 &
CBTD=$!
trap 'kill $CBTD $RECEIVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do cbtctl status >/dev/null 2>&1 && break; sleep 0.2; done

py() { python3 -c "import json,sys; $1"; }
backup() {  # VOLUME: runs it to the end, its run as JSON in /tmp/run.json
  cbtctl backup "$1" --wait --json > /tmp/runs.json 2>/tmp/backup.err || true
  py "print(json.dumps([r for r in json.load(open('/tmp/runs.json'))['runs'] if r['volume']=='$1'][0]))" > /tmp/run.json
}
field() { py "print(json.load(open('/tmp/run.json'))['$1'])"; }
volume_field() {  # VOLUME FIELD
  cbtctl volumes --json | py "print([v for v in json.load(sys.stdin)['volumes'] if v['name']=='$1'][0].get('$2', ''))"
}
versions() {
  cbtctl versions "$1" --json 2>/dev/null |
    py "print(' '.join(v['version_id'] for v in json.load(sys.stdin)['versions']))" || true
}
cbtd_devices() { dmsetup ls | awk '{print $1}' | grep '^cbtd-' | sort | tr '\n' ' ' || true; }
write_mib() {  # VOLUME MIB TAG
  rand_bytes "$SEED-$3" $((1 << 20)) | dd of="/dev/mapper/$1" bs=1M seek="$2" oflag=direct status=none
}
# expect_failed_run VOLUME: the run failed at the bad MiB, naming it.
expect_failed_run() {
  cat /tmp/run.json
  assert_eq failed "$(field result)" "$1: run over the bad MiB"
  local err
  err=$(field error)
  assert_contains "$err" "Input/output error" "$1: the error names the errno"
  assert_contains "$err" "offset $((BAD * 512))" "$1: the error names the offset"
  assert_contains "$err" "/dev/mapper/" "$1: the error names the device"
  log "$1: failed as it should: $err"
}

# --- 1: an incremental over the bad MiB fails and advances nothing.
backup src
assert_eq succeeded "$(field result)" "first run of src"
v1=$(field version_id)
base=$(volume_field src base_snapshot)
devices=$(cbtd_devices)
write_mib src 10 a
write_mib src $((BAD / MIB)) b  # tracking marks the bad MiB as changed
disk_bad disk
backup src
expect_failed_run src
assert_eq "$v1" "$(versions src)" "no version committed by the failed run"
assert_eq "$base" "$(volume_field src base_snapshot)" "the base snapshot is still the last good run's"
assert_eq "$devices" "$(cbtd_devices)" "the failed run's snapshot is gone, the base kept"
disk_good disk
write_mib src 20 c
backup src
cat /tmp/run.json
assert_eq succeeded "$(field result)" "run after the disk is good again"
assert_eq "$v1" "$(field base_version)" "the incremental is from the last good version"
assert_eq cow-table "$(field method)" "still tracked, not a fallback"
[ "$(field bytes_read)" -ge $((3 << 20)) ] || fail "the incremental read $(field bytes_read) bytes, not the 3 MiB changed"
v2=$(field version_id)
snap=$(volume_field src base_snapshot)
want=$(hash_of "/dev/mapper/${snap#dm/}")
assert_eq "$(hash_of /dev/mapper/src)" "$want" "the snapshot holds the volume (no writer)"
dmsetup create restored --table "0 $SIZE linear /dev/vdf 0"
cbtctl restore src --version "$v2" --target /dev/mapper/restored > /dev/null
assert_eq "$want" "$(hash_of /dev/mapper/restored)" "src@$v2 restores to its snapshot's bytes"

# --- 2: a full backup over the bad MiB: no version, nothing kept.
disk_bad disk2
backup src2
expect_failed_run src2
assert_eq "" "$(versions src2)" "no version of src2"
assert_eq "" "$(volume_field src2 base_snapshot)" "no base snapshot for src2"
disk_good disk2
backup src2
assert_eq succeeded "$(field result)" "src2 after the disk is good again"
assert_eq "" "$(field base_version)" "src2's first good run is a full"
cbtctl restore src2 --version "$(field version_id)" --target /dev/mapper/restored > /dev/null
assert_eq "$(hash_of /dev/mapper/src2)" "$(hash_of /dev/mapper/restored)" "src2 restores to the volume's bytes"

# --- 3: the thin pool near full: refused before snapshotting.
backup thin
cat /tmp/run.json
assert_eq failed "$(field result)" "backup of a thin LV in an 87% full pool"
assert_contains "$(field error)" "thin pool fv/pool data is 87." "the error names the pool and its fill"
assert_eq "" "$(lvs --noheadings -o lv_name --select 'lv_tags=cbtd' fv | tr -d ' ')" "no snapshot taken"
assert_eq "" "$(versions thin)" "no version of thin"
lvextend -q -L +16M fv/pool >/dev/null
backup thin
assert_eq succeeded "$(field result)" "thin after the pool was grown"
cbtctl restore thin --version "$(field version_id)" --target /dev/mapper/restored > /dev/null
assert_eq "$(hash_of /dev/fv/thin)" "$(hash_of /dev/mapper/restored)" "thin restores to the volume's bytes"

log "PASS: source I/O errors fail the run naming the offset, advance nothing, lose no change; a near-full pool is refused"
