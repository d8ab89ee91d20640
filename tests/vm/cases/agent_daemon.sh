# Issue 7 end to end: the real cbtd daemon on real LVM, backing up a group
# (thin LV with a mounted ext4 under a running writer + a thick raw LV + a
# dm-era stack over a thin LV, at one instant, the ext4 frozen: a write in
# the window blocks) to a cbt-receiver over mutual TLS.
#  - the control socket is root only; a non-root caller is refused;
#  - full, then incrementals by thin-delta, cow-table and era that read a
#    small fraction of the volumes; a rebuilt era stack (new generation)
#    falls back to hash saying why, and the next run trusts it again;
#  - retention (keep_last = 2) leaves exactly the newest two group
#    versions of the group, whole, and
#    every retained version restores to the bytes of its snapshot;
#  - cbtd SIGKILLed in the middle of a run (fault_cbtd_crash kills it at
#    chosen points): nothing stays frozen or suspended, no snapshot leaks
#    beyond the bases, the next run succeeds;
#  - the schedule fires on its own;
#  - a receiver that lost the base gets a full in the same run;
#  - hooks run in order, and a failing hook fails the run and keeps nothing.
. "$CBTD_SRC/tests/vm/cases/snapshot_lib.sh"  # lib.sh, pair_writer

SEED=${CBTD_VM_SEED:-1}
RUNTIME=/run/cbtd
STATE=/tmp/cbtd-state
VAULT=/tmp/vault
CONF=/tmp/cbtd.conf
HOST=vmhost

make_vg ag /dev/vda
lvcreate -q -L 160M -T ag/pool --chunksize 64k >/dev/null
lvcreate -q -V 48M -T ag/pool -n data >/dev/null
lvcreate -q -L 16M -n raw ag >/dev/null
lvcreate -q -L 48M -n scratch ag >/dev/null
# An era stack (cbtctl era-stack) over a thin LV: the daemon snapshots the
# LV below while the era device is held with the group.
lvcreate -q -V 16M -T ag/pool -n eo >/dev/null
lvcreate -q -L 8M -n em ag >/dev/null
# Filled before the stack exists: era reports what it saw written since
# the era before the last run's checkpoint (the last two intervals), so a
# fill through the stack would be re-read by the first incremental.
rand_bytes "$SEED-era" $((16 << 20)) | dd of=/dev/ag/eo bs=1M oflag=direct status=none
cbtctl era-stack create era-e --origin /dev/ag/eo --metadata /dev/ag/em >/dev/null
# An image file on XFS (reflinks; mkfs.xfs's test override for a small
# filesystem) and two partitions of a plain disk, one mounted.
lvcreate -q -L 100M -n imgfs ag >/dev/null
TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q /dev/ag/imgfs
mkdir -p /mnt/img && mount /dev/ag/imgfs /mnt/img
rand_bytes "$SEED-img" $((16 << 20)) > /mnt/img/vm.img
python3 - <<'PY'  # an MBR with two 16 MiB Linux partitions (no sfdisk in the rig)
import struct
mbr = bytearray(512)
for i, start in enumerate((2048, 2048 + 32768)):
    mbr[446 + 16 * i:462 + 16 * i] = struct.pack("<B3sB3sII", 0, b"\xff" * 3, 0x83, b"\xff" * 3, start, 32768)
mbr[510:512] = b"\x55\xaa"
with open("/dev/vdb", "r+b") as f:
    f.write(mbr)
PY
blockdev --rereadpt /dev/vdb
for _ in $(seq 1 50); do [ -b /dev/vdb2 ] && break; sleep 0.1; done
rand_bytes "$SEED-part" $((16 << 20)) | dd of=/dev/vdb1 bs=1M oflag=direct status=none
mkfs.ext4 -q /dev/vdb2 && mkdir -p /mnt/busy && mount /dev/vdb2 /mnt/busy
mkfs.ext4 -q -E nodiscard /dev/ag/data
mkdir -p /mnt/data && mount /dev/ag/data /mnt/data
rand_bytes "$SEED-raw" $((16 << 20)) | dd of=/dev/ag/raw bs=1M oflag=direct status=none
for i in $(seq 1 8); do rand_bytes "$SEED-f$i" $((1 << 20)) > /mnt/data/f$i; done
sync

"$CBTD_SRC/scripts/make-certs.sh" /tmp/certs --host "$HOST" >/dev/null
cbt-receiver serve --vault "$VAULT" --create --listen 127.0.0.1:7443 \
  --tls-cert /tmp/certs/server.crt --tls-key /tmp/certs/server.key \
  --client-ca /tmp/certs/ca.crt > /tmp/receiver.log 2>&1 &
RECEIVER=$!

# Inside the window (thin data and thick raw held at one instant, data's
# ext4 frozen), a write to data's filesystem must block until the thaw.
FROZEN_PROBE='rm -f /tmp/probe-done; (echo x > /mnt/data/frozen-probe; touch /tmp/probe-done) >/dev/null 2>&1 & sleep 1; if [ -e /tmp/probe-done ]; then echo "frozen: probe written" >> /tmp/hooks.log; else echo "frozen: probe blocked" >> /tmp/hooks.log; fi'
cat > "$CONF" <<EOF
[agent]
state_dir = $STATE
socket = $RUNTIME/cbtd.sock
metrics_file = /tmp/cbtd.prom

[receiver]
address = 127.0.0.1:7443
ca_file = /tmp/certs/ca.crt
cert_file = /tmp/certs/$HOST.crt
key_file = /tmp/certs/$HOST.key

[volume.data]
path = /dev/ag/data
keep_last = 2

[volume.raw]
path = /dev/ag/raw
cow_size = 8M
keep_last = 2

[volume.era]
path = /dev/mapper/era-e
method = era
keep_last = 2

[volume.img]
path = /mnt/img/vm.img

[volume.part]
path = /dev/vdb1
snapshot = none
method = external
changes_file = /tmp/part-changes.json

[volume.busy]
path = /dev/vdb2
snapshot = none

[group.g]
members = data raw era
freeze_timeout = 30s
pre_hook = echo "pre \$CBTD_GROUP" >> /tmp/hooks.log
frozen_hook = $FROZEN_PROBE
post_hook = echo "post \$CBTD_RESULT" >> /tmp/hooks.log
EOF
mkdir -p "$STATE" "$RUNTIME"
cbtd --config "$CONF" --check-config

CBTD_PID=
start_cbtd() {
  cbtd --config "$CONF" >> /tmp/cbtd.log 2>&1 &
  CBTD_PID=$!
  for _ in $(seq 1 100); do
    [ -S "$RUNTIME/cbtd.sock" ] && cbtctl status >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  cat /tmp/cbtd.log
  fail "cbtd did not come up"
}
stop_all() {
  [ -n "$CBTD_PID" ] && kill "$CBTD_PID" 2>/dev/null || true
  kill "$RECEIVER" "${WRITER:-}" 2>/dev/null || true
}
trap stop_all EXIT
start_cbtd

# --- the control socket is root's only
assert_eq 600 "$(stat -c %a "$RUNTIME/cbtd.sock")" "socket mode"
if out=$(setpriv --reuid 65534 --regid 65534 --clear-groups cbtctl status 2>&1); then
  fail "a non-root user could call the control API: $out"
fi
log "non-root caller refused: $out"

# A writer keeps changing files on the thin volume during every backup.
( i=0; while :; do
    i=$((i + 1))
    dd if=/dev/urandom of=/mnt/data/w$((i % 4)) bs=64k count=4 conv=fsync status=none 2>/dev/null
    sleep 0.3
  done ) &
WRITER=$!

py() { /usr/bin/python3 -c "$@"; }
# backup_group: runs group g to the end; prints its runs as JSON.
backup_group() {
  cbtctl backup g --wait --json > /tmp/runs.json || {
    cat /tmp/runs.json; tail -20 /tmp/cbtd.log; fail "backup of g failed"; }
}
run_field() {  # VOLUME FIELD
  py "import json; r=[r for r in json.load(open('/tmp/runs.json'))['runs'] if r['volume']=='$1'][0]; print(r['$2'])"
}
base_snapshot() {  # VOLUME -> VG/LV of its kept base
  cbtctl volumes --json | py "import json,sys; print([v for v in json.load(sys.stdin)['volumes'] if v['name']=='$1'][0]['base_snapshot'])"
}
# After every run, the hash of each kept base snapshot by version id (era
# keeps none: nothing but this script writes to it, so its live bytes).
declare -A SNAP_HASH
record_versions() {
  SNAP_HASH[era/$(run_field era version_id)]=$(hash_of /dev/mapper/era-e)
  for vol in data raw; do
    local v snap
    v=$(run_field $vol version_id)
    snap=$(base_snapshot $vol)
    [ -n "$v" ] && [ -n "$snap" ] || fail "$vol: no version or base after a run"
    SNAP_HASH[$vol/$v]=$(hash_of "/dev/$snap")
  done
}
cbtd_snapshots() { lvs --noheadings -o lv_name --select 'lv_tags=cbtd' ag | tr -d ' ' | sort; }

# --- 1: full
backup_group
assert_eq succeeded "$(run_field data result)" "first run of data"
assert_eq "" "$(run_field data base_version)" "first run of data has no base"
record_versions
# A thin full reads only what the pool has mapped for the snapshot (from
# its metadata, thin_dump): ext4's metadata and files, not the 48 MiB.
# Every version restores to its snapshot's bytes (below), so the rest was
# rightly sent as zeros.
full_read=$(run_field data bytes_read)
mapped=$(lvs --noheadings --units b --nosuffix -o lv_size,data_percent "$(base_snapshot data)" |
  awk '{ printf "%d", $1 * $2 / 100 }')
log "thin full of data read $full_read bytes; the pool maps $mapped of $((48 << 20))"
[ "$mapped" -gt 0 ] && [ "$mapped" -lt $((40 << 20)) ] || fail "data maps $mapped bytes: the case needs a sparse thin LV"
[ "$full_read" -le $((mapped * 11 / 10)) ] || fail "thin full read $full_read bytes, $mapped mapped"
[ "$full_read" -ge $((mapped * 9 / 10)) ] || fail "thin full read $full_read bytes, less than the $mapped mapped"
assert_eq "pre g
frozen: probe blocked
post ok" "$(cat /tmp/hooks.log)" "hooks ran in order, the write blocked while frozen"
[ -e /tmp/probe-done ] && [ -e /mnt/data/frozen-probe ] ||
  fail "the write blocked in the window did not complete after the thaw"

# --- 2: incrementals
rand_bytes "$SEED-r2" $((1 << 20)) | dd of=/dev/ag/raw bs=1M seek=5 oflag=direct status=none
rand_bytes "$SEED-e2" $((1 << 20)) | dd of=/dev/mapper/era-e bs=1M seek=9 oflag=direct status=none
backup_group
assert_eq thin-delta "$(run_field data method)" "data tracked by thin-delta"
assert_eq cow-table "$(run_field raw method)" "raw tracked by cow-table"
assert_eq era "$(run_field era method)" "era tracked by era"
assert_eq "" "$(run_field data fallback_reason)" "no fallback for data"
assert_eq "" "$(run_field era fallback_reason)" "no fallback for era"
era_read=$(run_field era bytes_read)
[ "$era_read" -le $((2 << 20)) ] || fail "era incremental read $era_read bytes for a 1 MiB change"
data_read=$(run_field data bytes_read)
raw_read=$(run_field raw bytes_read)
log "incremental read: data $data_read of $((48 << 20)), raw $raw_read of $((16 << 20))"
[ "$data_read" -lt $((16 << 20)) ] || fail "thin-delta incremental read $data_read bytes"
[ "$raw_read" -lt $((4 << 20)) ] || fail "cow-table incremental read $raw_read bytes"
record_versions

# --- one instant across the thick member and the era member (the thin LV
# below its era device), under a raw writer that writes n to raw, then to
# the era device: every point has raw >= era >= raw - 1.
pair_writer /dev/ag/raw /dev/mapper/era-e &
PAIR=$!
sleep 1
for i in 1 2; do
  out=$(cbtctl backup g --snapshot-only)
  a=$(first_number "$(echo "$out" | awk '$1 == "raw" {print $3}')")
  b=$(first_number "$(echo "$out" | awk '$1 == "era" {print $3}')")
  log "point $i: raw=$a era=$b"
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" -ge "$b" ] && [ $((a - b)) -le 1 ] ||
    fail "point $i is not one instant: raw=$a era=$b"
  for s in $(echo "$out" | awk '{print $2}'); do lvremove -qy "$s" >/dev/null; done
done
kill "$PAIR"; wait "$PAIR" 2>/dev/null || true

# --- an image file (read from a reflink copy, tracked by hash) and a raw
# partition (read live, held exclusively, tracked by an external list):
# full, then incrementals that read and send about what changed; a stale
# list is not trusted (hash compare, reason given); both restore to their
# bytes; a mounted partition is refused for a live read, naming why.
backup_one() {  # VOLUME
  cbtctl backup "$1" --wait --json > /tmp/runs.json || {
    cat /tmp/runs.json; tail -20 /tmp/cbtd.log; fail "backup of $1 failed"; }
}
changes() {  # GENERATION NEXT EXTENTS
  echo "{\"generation\": \"$1\", \"next_generation\": \"$2\", \"extents\": [$3]}" > /tmp/part-changes.json
}
changes boot g1 ""
backup_one img
backup_one part
rand_bytes "$SEED-i2" $((1 << 20)) | dd of=/mnt/img/vm.img bs=1M seek=3 conv=notrunc,fsync status=none
rand_bytes "$SEED-p2" $((1 << 20)) | dd of=/dev/vdb1 bs=1M seek=7 oflag=direct status=none
changes g1 g2 "[$((7 << 20)), $((1 << 20))]"
sent_little() {  # VOLUME: the last run sent about the 1 MiB that changed
  local sent
  sent=$(run_field "$1" bytes_sent)
  [ "$sent" -lt $((3 << 20)) ] || fail "$1 incremental sent $sent bytes for a 1 MiB change"
}
backup_one img
assert_eq hash "$(run_field img method)" "img tracked by hash"
sent_little img
backup_one part
assert_eq external "$(run_field part method)" "part tracked by its external list"
assert_eq "" "$(run_field part fallback_reason)" "the list was trusted"
read=$(run_field part bytes_read)
[ "$read" -le $((1 << 20)) ] || fail "external incremental read $read bytes for a 1 MiB list"
sent_little part
# The list left from the last run is stale now: not trusted, whole compare.
rand_bytes "$SEED-p3" $((1 << 20)) | dd of=/dev/vdb1 bs=1M seek=11 oflag=direct status=none
backup_one part
assert_eq hash "$(run_field part method)" "a stale list falls back to hash"
assert_contains "$(run_field part fallback_reason)" "generation 'g1' does not match 'g2'" "the fallback says why"
grep -q "run [0-9]* of part succeeded: hash.*fell back to hash: external list not used" /tmp/cbtd.log ||
  fail "the run's end with its fallback is not logged: $(grep 'of part' /tmp/cbtd.log)"
# A list handed in through the control API (BackupNow changes) instead of
# the file: trusted by the same rule (it names the generation the last run
# stored, g2); one for a volume not tracked by lists is refused.
rand_bytes "$SEED-p4" $((1 << 20)) | dd of=/dev/vdb1 bs=1M seek=13 oflag=direct status=none
echo "{\"generation\": \"g2\", \"next_generation\": \"g3\", \"extents\": [[$((13 << 20)), $((1 << 20))]]}" > /tmp/api-list.json
cbtctl backup part --changes part=/tmp/api-list.json --wait --json > /tmp/runs.json ||
  fail "backup of part with a handed-in list failed: $(cat /tmp/runs.json)"
assert_eq external "$(run_field part method)" "the handed-in list was used"
assert_eq "" "$(run_field part fallback_reason)" "the handed-in list was trusted"
[ "$(run_field part bytes_read)" -le $((1 << 20)) ] || fail "read $(run_field part bytes_read) bytes for a 1 MiB list"
if out=$(cbtctl backup img --changes img=/tmp/api-list.json 2>&1); then fail "a list for a hash volume was accepted"; fi
assert_contains "$out" "not tracked by external lists" "the refusal says why"
ls -a /mnt/img | grep -q '^\.vm\.img\.cbtd-' && fail "a reflink copy was left: $(ls -a /mnt/img)"
for pair in img:/mnt/img/vm.img part:/dev/vdb1; do
  vol=${pair%%:*} src=${pair#*:}
  v=$(cbtctl versions "$vol" --json | py "import json,sys; print(json.load(sys.stdin)['versions'][-1]['version_id'])")
  cbtctl restore "$vol" --version "$v" --target /dev/ag/scratch > /dev/null
  assert_eq "$(hash_of "$src")" "$(hash_of /dev/ag/scratch $((16 << 20)))" "restore of $vol equals its source"
done
if cbtctl backup busy --wait --json > /tmp/runs.json; then fail "a mounted partition was read live"; fi
assert_contains "$(run_field busy error)" "/dev/vdb2 is in use" "the refusal names the mounted partition"
grep -q "run [0-9]* of busy failed at step consistency-point: .*is in use" /tmp/cbtd.log ||
  fail "the failed run is not logged"
log "image file and raw partitions: backed up, restored, a stale list and a mounted one refused"

# --- SIGKILL at a random point of a run, then restart and back up.
before=$(cbtd_snapshots | wc -l)
cbtctl backup g > /dev/null
sleep "0.$(( (SEED * 37 + 53) % 10 ))1"
kill -9 "$CBTD_PID"; wait "$CBTD_PID" 2>/dev/null || true
log "killed cbtd during a run"
# Nothing may stay suspended or frozen, even before cbtd is back...
start_cbtd
if dmsetup info -c --noheadings --separator ' ' -o name,suspended | awk '$2 == "Suspended"' | grep .; then
  fail "a device stayed suspended after the restart"
fi
timeout 20 touch /mnt/data/after-kill || fail "the filesystem stayed frozen"
# ...and only the bases (one per volume, era keeps none) survive the
# restart's cleanup.
assert_eq 2 "$(cbtd_snapshots | wc -l)" "snapshots after restart (was $before while running)"
backup_group
assert_eq succeeded "$(run_field data result)" "run after the kill"
record_versions
cbtctl runs --json | grep -q '"result": *"interrupted"' ||
  log "note: the kill landed before a run row existed"

# --- retention: keep_last = 2 for every member of g: the group keeps its
# two newest group versions, whole.
versions() { cbtctl versions "$1" --json |
  py "import json,sys; print(' '.join(v['version_id'] for v in json.load(sys.stdin)['versions']))"; }
group_versions() { cbtctl versions "$1" --json |
  py "import json,sys; print(' '.join(v.get('group_version_id', '-') for v in json.load(sys.stdin)['versions']))"; }
data_versions=$(versions data)
assert_eq 2 "$(echo $data_versions | wc -w)" "data keeps exactly two versions ($data_versions)"
assert_eq 2 "$(echo $(versions raw) | wc -w)" "raw keeps exactly two versions"
assert_eq "$(group_versions data)" "$(group_versions raw)" "data and raw keep the same two group versions"
assert_eq 6 "$(cbtctl versions g --json | py "import json,sys; print(len(json.load(sys.stdin)['versions']))")" \
  "cbtctl versions g: two group versions of three members"

# Encrypted by default: cbtd created its key at the first backup, and
# every version in the vault names that key, none is stored plaintext.
[ -s /var/lib/cbtd/keys/default.key ] || fail "cbtd did not create its key"
fp=$(cbtctl key show --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["fingerprint"])')
listing=$(cbt-receiver versions --vault "$VAULT")
if echo "$listing" | grep -q "encryption none"; then fail "a version is stored unencrypted: $listing"; fi
echo "$listing" | grep -q "key $fp" || fail "versions do not name cbtd's key $fp: $listing"

# Every retained version restores (through cbtd) to its snapshot's bytes:
# data's two in full then incrementally onto the same LV, raw's in full.
check_restore() {  # VOLUME VERSION
  local size
  size=$(blockdev --getsize64 "/dev/$(base_snapshot "$1")")
  assert_eq "${SNAP_HASH[$1/$2]}" "$(hash_of /dev/ag/scratch "$size")" "restore of $1@$2 equals its snapshot"
}
set -- $data_versions
cbtctl restore data --version "$1" --target /dev/ag/scratch --state /tmp/scratch.state
check_restore data "$1"
cbtctl restore data --version "$2" --from "$1" --target /dev/ag/scratch --state /tmp/scratch.state --verify --json > /tmp/inc.json
check_restore data "$2"
written=$(py "import json; j=json.load(open('/tmp/inc.json')); print(int(j['chunks_written']) + int(j['chunks_zeroed']))")
[ "$written" -lt 64 ] || fail "incremental restore wrote $written chunks"

# --- instant access: data@$2 served over NBD by `cbtctl export` (nbdkit
# with cbtd's plugin, chunks fetched from the receiver over mutual TLS and
# opened with the host's key) and attached with the kernel's NBD client:
# the device reads as the snapshot, its ext4 mounts read-only with the same
# files as the restore on scratch; a writable export is fsck'd and written
# into its overlay, and the vault does not change by one byte.
modprobe -d "$CBTD_VM_KROOT" -S "$CBTD_VM_KVER" nbd
vault_sums() {
  (cd "$VAULT" && find . -type f ! -path './locks/*' ! -name '*-shm' -print0 |
    sort -z | xargs -0 sha256sum)
}
export_socket() {  # NAME -> its unix socket
  cbtctl exports --json | py "import json,sys; print([e for e in json.load(sys.stdin) if e['name']=='$1'][0]['uri'].split('socket=')[1])"
}
vault_before=$(vault_sums)
cbtctl export data --version "$2" --name ro > /dev/null  # through cbtd
nbd-client -unix "$(export_socket ro)" /dev/nbd0 -readonly > /dev/null
size=$(blockdev --getsize64 "/dev/$(base_snapshot data)")
assert_eq "$size" "$(blockdev --getsize64 /dev/nbd0)" "the export has the volume's size"
assert_eq "${SNAP_HASH[data/$2]}" "$(hash_of /dev/nbd0)" "the NBD export of data@$2 reads as its snapshot"
mkdir -p /mnt/exp /mnt/res
mount -o ro,noload /dev/nbd0 /mnt/exp
mount -o ro,noload /dev/ag/scratch /mnt/res
diff -r /mnt/exp /mnt/res || fail "files of the exported data@$2 differ from its restore"
[ "$(ls /mnt/exp | grep -c '^f[0-9]')" -ge 8 ] || fail "the exported filesystem lacks the test files"
umount /mnt/exp /mnt/res
cbtctl export data --version "$2" --local --config "$CONF" --name rw --writable > /dev/null
assert_contains "$(cbtctl exports)" "rw  data@$2  writable" "cbtctl exports lists the writable export"
nbd-client -unix "$(export_socket rw)" /dev/nbd1 > /dev/null
e2fsck -fy /dev/nbd1 > /tmp/fsck.log 2>&1 || [ $? -le 1 ] || fail "e2fsck of the writable export: $(cat /tmp/fsck.log)"
mount /dev/nbd1 /mnt/exp
echo "written through NBD" > /mnt/exp/nbd-note
rm -f /mnt/exp/f1
umount /mnt/exp
e2fsck -fn /dev/nbd1 > /tmp/fsck.log 2>&1 || fail "the written export is not clean: $(cat /tmp/fsck.log)"
nbd-client -d /dev/nbd1 > /dev/null
nbd-client -d /dev/nbd0 > /dev/null
cbtctl export --stop rw > /dev/null
cbtctl export --stop ro > /dev/null
assert_eq "no exports" "$(cbtctl exports)" "stopped exports are gone"
assert_eq "$vault_before" "$(vault_sums)" "the vault is unchanged by the exports, the written one included"
log "NBD exports: read-only and writable, attached by the kernel, the vault untouched"
# raw's every version; era's newest (its chain: a full and incrementals).
for vol in raw era; do
  vs=$(versions $vol)
  [ $vol = era ] && vs=$(echo $vs | awk '{print $NF}')
  for v in $vs; do
    # A killed run may have committed at the receiver before cbtd recorded
    # it; that version has no snapshot hash here (and is never a base).
    [ -n "${SNAP_HASH[$vol/$v]:-}" ] || continue
    cbtctl restore $vol --version "$v" --target /dev/ag/scratch > /dev/null
    assert_eq "${SNAP_HASH[$vol/$v]}" "$(hash_of /dev/ag/scratch $((16 << 20)))" "restore of $vol@$v equals its snapshot"
  done
done
cbtctl verify data "$2"  # before the runs below prune it (keep_last = 2)
# A rebuilt era stack (fresh metadata, new generation) is not trusted: the
# run compares hashes and says why; the next one trusts the new stack.
cbtctl era-stack remove era-e
cbtctl era-stack create era-e --origin /dev/ag/eo --metadata /dev/ag/em --force >/dev/null
rand_bytes "$SEED-e3" $((1 << 20)) | dd of=/dev/mapper/era-e bs=1M seek=2 oflag=direct status=none
backup_one era  # a member backed up on its own
assert_eq hash "$(run_field era method)" "a rebuilt era stack falls back to hash"
assert_contains "$(run_field era fallback_reason)" "era stack era-e was rebuilt: its generation is" "the fallback says why"
rand_bytes "$SEED-e4" $((1 << 20)) | dd of=/dev/mapper/era-e bs=1M seek=12 oflag=direct status=none
backup_one era
assert_eq era "$(run_field era method)" "the rebuilt stack is trusted from its first run"
# The 1 MiB written before the fallback run and the 1 MiB since.
[ "$(run_field era bytes_read)" -le $((2 << 20)) ] || fail "era read $(run_field era bytes_read) bytes after the rebuild"
SNAP_HASH[era/$(run_field era version_id)]=$(hash_of /dev/mapper/era-e)
v=$(versions era | awk '{print $NF}')
cbtctl restore era --version "$v" --target /dev/ag/scratch > /dev/null
assert_eq "${SNAP_HASH[era/$v]}" "$(hash_of /dev/ag/scratch $((16 << 20)))" "restore of era@$v after the rebuild"
log "era through the daemon: incrementals read what changed, a rebuilt stack is caught"
v=$(versions raw | awk '{print $NF}')
if out=$(cbtctl restore raw --version "$v" --target /dev/ag/raw 2>&1); then
  fail "cbtctl restored over the live volume"
fi
assert_contains "$out" "restore to a new LV" "restore onto the volume itself is refused"
# ...also under its other names (the check is by device, not by path)...
for alias in /dev/mapper/ag-raw "/dev/dm-$(dmsetup info -c --noheadings -o minor ag-raw | tr -d ' ')"; do
  if out=$(cbtctl restore raw --version "$v" --target "$alias" 2>&1); then
    fail "cbtctl restored over the live volume through $alias"
  fi
  assert_contains "$out" "is volume 'raw'" "restore onto $alias, an alias of raw, is refused"
done
# ...and onto a device with a mounted filesystem (exclusive open).
if out=$(cbtctl restore raw --version "$v" --target /dev/ag/imgfs 2>&1); then
  fail "cbtctl restored onto a mounted filesystem"
fi
assert_contains "$out" "is in use" "restore onto a mounted device is refused"
[ -e /mnt/img/vm.img ] || fail "the refused restore damaged the mounted filesystem"

# --- the schedule fires by itself (every 1m), after a reload adds it.
echo "schedule = every 1m" >> "$CONF"
kill -HUP "$CBTD_PID"
for _ in $(seq 1 75); do
  cbtctl runs --json | grep -q '"trigger": *"schedule"' && break
  sleep 2
done
cbtctl runs --json | grep -q '"trigger": *"schedule"' || fail "no scheduled run within 150 s"
log "a scheduled run started"

# --- the receiver lost the base (its vault was replaced): the run notices
# and sends against nothing at once, saying why.
sed -i '/^schedule = /d' "$CONF"
kill -HUP "$CBTD_PID"
for _ in $(seq 1 150); do  # let the scheduled run finish first
  cbtctl runs --json | grep -q '"result": *"running"' || break
  sleep 2
done
kill "$RECEIVER"; wait "$RECEIVER" 2>/dev/null || true
mv "$VAULT" "$VAULT.old"
cbt-receiver serve --vault "$VAULT" --create --listen 127.0.0.1:7443 \
  --tls-cert /tmp/certs/server.crt --tls-key /tmp/certs/server.key \
  --client-ca /tmp/certs/ca.crt >> /tmp/receiver.log 2>&1 &
RECEIVER=$!
backup_group
assert_eq succeeded "$(run_field raw result)" "run on a replaced vault"
assert_contains "$(run_field raw fallback_reason)" "does not hold base version" "fallback names the missing base"
assert_eq 1 "$(echo $(versions raw) | wc -w)" "the new vault holds the new full"
record_versions
cbtctl restore raw --version "$(versions raw)" --target /dev/ag/scratch > /dev/null
check_restore raw "$(versions raw)"

# --- a failing hook fails the run and keeps nothing.
sed -i 's|^pre_hook = .*|pre_hook = echo failing-pre >> /tmp/hooks.log; exit 7|' "$CONF"
kill -HUP "$CBTD_PID"; sleep 2
before=$(cbtd_snapshots)
if cbtctl backup g --wait --json > /tmp/runs.json; then fail "backup with a failing pre-hook succeeded"; fi
assert_eq consistency-point "$(run_field data step)" "failed step"
assert_contains "$(run_field data error)" "hook" "error names the hook"
assert_eq "$before" "$(cbtd_snapshots)" "no snapshot kept or lost by the failed point"
assert_eq "post failed" "$(tail -1 /tmp/hooks.log)" "post-hooks still run, with the result"

grep -q 'cbtd_' /tmp/cbtd.prom || fail "no metrics written"
cbt-receiver verify --vault "$VAULT"
log "PASS: cbtd daemon backups, kills, retention, schedule and hooks"
