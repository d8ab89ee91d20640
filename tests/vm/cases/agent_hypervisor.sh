# Issue 7, the hypervisor trigger through the real cbtd: a VM's two raw
# disks (thin LVs, no filesystem on the host) form a group whose hooks stand
# in for `virsh domfsfreeze/domfsthaw`; the receiver is on a unix socket.
#  - `cbtctl backup vm1 --point` returns once the snapshots exist, printing
#    them, and the backup finishes in the background;
#  - hooks run pre -> frozen -> post with the group, volumes and phase;
#  - `--snapshot-only` under a raw writer across both disks is one instant;
#  - a frozen hook that outlives freeze_timeout: the watchdog ends the
#    window within the bound, the point fails, nothing is kept;
#  - a failing pre-hook fails the point, post-hooks still run;
#  - a plain dm volume (dm-linear, not an LV) with two cow devices: full,
#    then cow-table incrementals (the COW stores alternate), restored
#    byte-equal to its snapshot;
#  - a volume tracked by hash keeps no snapshot between runs (nothing slows
#    its writes), and its incrementals still restore byte-equal;
#  - rollback in place of a thick and a thin LV: refused while the device
#    is open, only differing chunks written, the next backup compares;
#  - a database's group (data on a thin LV, its WAL on a thick LV, an index
#    on an era-tracked thin LV), an ext4 on each, frozen: a write to each
#    filesystem in the window blocks until the thaw; under a writer that
#    writes n to each in turn, every restored version is one instant and
#    each restored ext4 is clean (frozen: no journal to replay); rollback
#    of the WAL is refused while it is mounted, done once unmounted;
#  - a thick volume's COW snapshot filling during its backup is extended
#    and the backup succeeds; one that cannot grow (a full VG) overflows,
#    and the run says so, naming the settings to change;
#  - the database group's points are group versions: one per point with
#    every member, restored together with `cbtctl restore --group`; a
#    member that fails leaves none (its partners' versions unlisted), the
#    retry commits one on top of them;
#  - a thick volume's next COW snapshot is sized from what its base
#    collected since the last run;
#  - restores and rollbacks have metrics of their own.
. "$CBTD_SRC/tests/vm/cases/snapshot_lib.sh"

make_vg hv /dev/vda
lvcreate -q -L 96M -T hv/pool >/dev/null
lvcreate -q -V 16M -T hv/pool -n vm1-root >/dev/null
lvcreate -q -V 16M -T hv/pool -n vm1-data >/dev/null
lvcreate -q -L 8M -n logs hv >/dev/null
rand_bytes logs $((8 << 20)) | dd of=/dev/hv/logs bs=1M oflag=direct status=none
rand_bytes root $((16 << 20)) | dd of=/dev/hv/vm1-root bs=1M oflag=direct status=none
# A dm volume lvm2 knows nothing about, and a spare device for its COW.
dmsetup create archive --table "0 $((32 << 11)) linear /dev/vdb 0"
rand_bytes archive $((32 << 20)) | dd of=/dev/mapper/archive bs=1M oflag=direct status=none

cbt-receiver serve --vault /tmp/vault --create --insecure \
  --listen unix:/run/cbt-receiver.sock > /tmp/receiver.log 2>&1 &
RECEIVER=$!
mkdir -p /run/cbtd /tmp/cbtd-state && chmod 700 /run/cbtd
CONF=/tmp/cbtd.conf
cat > "$CONF" <<'EOF'
[agent]
state_dir = /tmp/cbtd-state
metrics_file = /tmp/cbtd.prom

[receiver]
address = unix:/run/cbt-receiver.sock

[volume.vm1-root]
path = /dev/hv/vm1-root

[volume.vm1-data]
path = /dev/hv/vm1-data

[volume.logs]
path = /dev/hv/logs
method = hash

[volume.archive]
path = /dev/mapper/archive
cow_device = /dev/vdc /dev/vdd

[group.vm1]
members = vm1-root vm1-data
freeze = no
freeze_timeout = 3s
hook_timeout = 30s
pre_hook = echo "pre $CBTD_GROUP" >> /tmp/hooks.log
frozen_hook = echo "frozen $CBTD_PHASE $CBTD_VOLUMES" >> /tmp/hooks.log
post_hook = echo "post $CBTD_RESULT" >> /tmp/hooks.log
EOF
cbtd --config "$CONF" > /tmp/cbtd.log 2>&1 &
CBTD=$!
trap 'kill $CBTD $RECEIVER ${WRITER:-} 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do cbtctl status >/dev/null 2>&1 && break; sleep 0.2; done

wait_idle() {
  for _ in $(seq 1 150); do
    cbtctl runs --json | grep -q '"result": *"running"' || return 0
    sleep 1
  done
  fail "runs did not finish"
}
cbtd_snapshots() { lvs --noheadings -o lv_name --select 'lv_tags=cbtd' hv | tr -d ' ' | sort; }

# --- the trigger: returns at the point, the backup follows.
out=$(cbtctl backup vm1 --point)
echo "$out"
assert_eq 2 "$(echo "$out" | wc -l)" "one line per member"
assert_contains "$out" "vm1-root" "the point names its snapshots"
wait_idle
cbtctl runs --json > /tmp/runs.json
py_runs() { python3 -c "import json; rs=json.load(open('/tmp/runs.json'))['runs']; $1"; }
assert_eq "succeeded succeeded" "$(py_runs "print(' '.join(r['result'] for r in rs[:2]))")" "both members backed up"
assert_eq "hypervisor hypervisor" "$(py_runs "print(' '.join(r['trigger'] for r in rs[:2]))")" "the runs say who asked"
assert_eq "pre vm1
frozen frozen /dev/hv/vm1-root /dev/hv/vm1-data
post ok" "$(cat /tmp/hooks.log)" "hooks in order, with group, phase and volumes"

# --- --snapshot-only under a raw writer spanning both disks: one instant.
pair_writer /dev/hv/vm1-root /dev/hv/vm1-data &
WRITER=$!
sleep 2
before=$(cbtd_snapshots)
for i in 1 2 3; do
  out=$(cbtctl backup vm1 --snapshot-only)
  a=$(first_number "$(echo "$out" | awk '$1 == "vm1-root" {print $3}')")
  b=$(first_number "$(echo "$out" | awk '$1 == "vm1-data" {print $3}')")
  log "point $i: root=$a data=$b"
  [ "$a" -ge "$b" ] && [ $((a - b)) -le 1 ] || fail "point $i is not one instant: root=$a data=$b"
  for s in $(echo "$out" | awk '{print $2}'); do lvremove -qy "$s" >/dev/null; done
done
kill "$WRITER"; wait "$WRITER" 2>/dev/null || true
assert_eq "$before" "$(cbtd_snapshots)" "snapshot-only points leave the bases alone"

# --- a frozen hook that hangs: the watchdog resumes I/O at the bound while
# the hook still runs; the point then fails and keeps nothing.
sed -i 's|^frozen_hook = .*|frozen_hook = touch /tmp/in-window; sleep 15|' "$CONF"
kill -HUP "$CBTD"; sleep 1
: > /tmp/hooks.log
cbtctl backup vm1 --point > /tmp/point.out 2>&1 &
POINT=$!
for _ in $(seq 1 120); do [ -e /tmp/in-window ] && break; sleep 0.5; done
[ -e /tmp/in-window ] || fail "the frozen hook never ran"
sleep 4  # past freeze_timeout (3s); the hook sleeps on
timeout 5 dd if=/dev/zero of=/dev/hv/vm1-data bs=4k count=1 oflag=direct status=none ||
  fail "vm1-data still held after the freeze bound"
if dmsetup info -c --noheadings --separator ' ' -o name,suspended | awk '$2 == "Suspended"' | grep .; then
  fail "a member stayed suspended past the bound"
fi
if wait "$POINT"; then fail "a hung frozen hook did not fail the point"; fi
out=$(cat /tmp/point.out)
log "hung hook: $out"
assert_contains "$out" "freeze bound" "the error names the bound"
assert_eq "$before" "$(cbtd_snapshots)" "nothing kept by the failed point"
assert_eq "post failed" "$(tail -1 /tmp/hooks.log)" "post-hook ran with the failure"

# --- a failing pre-hook fails the point; post-hooks still run.
sed -i -e 's|^frozen_hook = .*|frozen_hook = true|' \
  -e 's|^pre_hook = .*|pre_hook = echo pre-failing >> /tmp/hooks.log; exit 3|' "$CONF"
kill -HUP "$CBTD"; sleep 1
: > /tmp/hooks.log
if out=$(cbtctl backup vm1 --point 2>&1); then fail "a failing pre-hook did not fail the point"; fi
assert_contains "$out" "hook" "the error names the hook"
assert_eq "pre-failing
post failed" "$(cat /tmp/hooks.log)" "pre failed, post still ran"
assert_eq "$before" "$(cbtd_snapshots)" "nothing kept"

# --- a plain dm volume through cbtd: full, change, cow-table incremental.
cbtctl backup archive --wait > /dev/null
for i in 2 3; do  # the second incremental takes the first store again
  rand_bytes "archive$i" $((1 << 20)) | dd of=/dev/mapper/archive bs=1M seek=$((5 * i)) oflag=direct status=none
  cbtctl backup archive --wait --json > /tmp/runs.json
  py_runs "r=rs[0]; print(r['method'], r['bytes_read'], r['fallback_reason'] or '-')" > /tmp/archive.txt
  log "archive incremental $i: $(cat /tmp/archive.txt)"
  assert_eq "cow-table 1048576 -" "$(cat /tmp/archive.txt)" "the dm volume's incremental reads the 1 MiB written"
done
snap=$(cbtctl volumes --json | python3 -c "import json,sys; print([v for v in json.load(sys.stdin)['volumes'] if v['name']=='archive'][0]['base_snapshot'])")
dev=/dev/mapper/${snap#dm/}
version=$(cbtctl versions archive --json | python3 -c "import json,sys; print(json.load(sys.stdin)['versions'][-1]['version_id'])")
lvcreate -q -L 32M -n restored hv >/dev/null
cbtctl restore archive --version "$version" --target /dev/hv/restored > /dev/null
assert_eq "$(hash_of "$dev")" "$(hash_of /dev/hv/restored)" "restored archive equals its dm snapshot"

# --- a hash-tracked volume: no base snapshot is kept between runs.
cbtctl backup logs --wait > /dev/null
assert_eq "$before" "$(cbtd_snapshots)" "no snapshot kept for a hash volume"
rand_bytes logs2 $((1 << 20)) | dd of=/dev/hv/logs bs=1M seek=3 oflag=direct status=none
cbtctl backup logs --wait --json > /tmp/runs.json
py_runs "r=rs[0]; print(r['result'], r['method'], r['bytes_read'], bool(r['base_version']), r['fallback_reason'] or '-', int(r['bytes_sent']) < (1 << 20) + (1 << 18))" > /tmp/logs.txt
log "logs incremental: $(cat /tmp/logs.txt)"
# The hash method reads the whole volume (bytes_read says so); only the
# 1 MiB that differs from the base version's index travels.
assert_eq "succeeded hash 8388608 True - True" "$(cat /tmp/logs.txt)" "hash incremental against the base version"
assert_eq "$before" "$(cbtd_snapshots)" "still no snapshot kept"
assert_eq "" "$(cbtctl volumes --json | python3 -c "import json,sys; print([v for v in json.load(sys.stdin)['volumes'] if v['name']=='logs'][0].get('base_snapshot', ''))")" "no base snapshot recorded"
version=$(cbtctl versions logs --json | python3 -c "import json,sys; print(json.load(sys.stdin)['versions'][-1]['version_id'])")
lvcreate -q -L 8M -n logs-restored hv >/dev/null
cbtctl restore logs --version "$version" --target /dev/hv/logs-restored > /dev/null
assert_eq "$(hash_of /dev/hv/logs)" "$(hash_of /dev/hv/logs-restored)" "restored logs equal the volume (nothing wrote since)"

# --- rollback in place (cbtctl restore --in-place): a job, refused while
# the device is open (as a VM's qemu holds its disk), only the chunks that
# differ written; the next backup compares every chunk once and is right.
rollback() {  # VOLUME VERSION -> prints "written zeroed"
  cbtctl restore "$1" --version "$2" --in-place --json |
    python3 -c "import json,sys; j=json.load(sys.stdin); print(int(j.get('chunks_written', 0)), int(j.get('chunks_zeroed', 0)))"
}
logs_versions=$(cbtctl versions logs --json | python3 -c "import json,sys; print(' '.join(v['version_id'] for v in json.load(sys.stdin)['versions']))")
set -- $logs_versions
logs_latest=$(hash_of /dev/hv/logs)
rand_bytes logs3 $((2 << 20)) | dd of=/dev/hv/logs bs=1M seek=5 oflag=direct status=none
assert_eq "32 0" "$(rollback logs "$2")" "rollback of the thick LV writes the 2 MiB that differ"
assert_eq "$logs_latest" "$(hash_of /dev/hv/logs)" "logs rolled back to its last version"
assert_eq "16 0" "$(rollback logs "$1")" "rollback to the first version writes the 1 MiB that differs"
cbtctl runs logs --json > /tmp/runs.json
assert_eq "rollback succeeded" "$(py_runs "r=rs[0]; print(r['trigger'], r['result'])")" "the rollback is a run"
cbtctl backup logs --wait --json > /tmp/runs.json
assert_contains "$(py_runs "print(rs[0]['fallback_reason'])")" "rolled back in place to version $1" "the next backup compares, saying why"
version=$(cbtctl versions logs --json | python3 -c "import json,sys; print(json.load(sys.stdin)['versions'][-1]['version_id'])")
cbtctl restore logs --version "$version" --target /dev/hv/logs-restored > /dev/null
assert_eq "$(hash_of /dev/hv/logs)" "$(hash_of /dev/hv/logs-restored)" "the backup after the rollback restores to the volume"
# A thin member of the group, open the way a VM holds its disk: refused;
# closed: rolled back to the group's last version (its kept base snapshot).
base=$(cbtctl volumes --json | python3 -c "import json,sys; print([v for v in json.load(sys.stdin)['volumes'] if v['name']=='vm1-data'][0]['base_snapshot'])")
version=$(cbtctl versions vm1-data --json | python3 -c "import json,sys; print(json.load(sys.stdin)['versions'][-1]['version_id'])")
exec 7< /dev/hv/vm1-data
if out=$(cbtctl restore vm1-data --version "$version" --in-place 2>&1); then fail "rolled back an open device"; fi
assert_contains "$out" "is in use" "an open device is refused"
exec 7<&-
rollback vm1-data "$version" > /tmp/rb.txt
log "vm1-data rollback (written zeroed): $(cat /tmp/rb.txt) of 256 chunks"
assert_eq "$(hash_of "/dev/$base")" "$(hash_of /dev/hv/vm1-data)" "vm1-data equals its snapshot of that version"
sed -i 's|^pre_hook = .*|pre_hook = true|' "$CONF"
kill -HUP "$CBTD"; sleep 1
cbtctl backup vm1 --wait --json > /tmp/runs.json
assert_contains "$(py_runs "print([r for r in rs if r['volume']=='vm1-data'][0]['fallback_reason'])")" "rolled back in place" "the thin member's next run compares"
assert_eq "thin-delta" "$(py_runs "print([r for r in rs if r['volume']=='vm1-root'][0]['method'])")" "the other member's chain is untouched"

# --- a database over three member kinds, an ext4 on each, frozen at once.
lvcreate -q -V 16M -T hv/pool -n db-data >/dev/null
lvcreate -q -L 16M -n db-wal hv >/dev/null
lvcreate -q -V 16M -T hv/pool -n db-eo >/dev/null
lvcreate -q -L 8M -n db-em hv >/dev/null
cbtctl era-stack create era-db --origin /dev/hv/db-eo --metadata /dev/hv/db-em >/dev/null
for d in data:/dev/hv/db-data wal:/dev/hv/db-wal idx:/dev/mapper/era-db; do
  mkfs.ext4 -q -E nodiscard "${d#*:}"
  mkdir -p "/mnt/db-${d%%:*}" && mount "${d#*:}" "/mnt/db-${d%%:*}"
done
# In the window, a write to each filesystem must still be blocked 1 s on.
cat >> "$CONF" <<'EOF'

[volume.db-data]
path = /dev/hv/db-data

[volume.db-wal]
path = /dev/hv/db-wal
cow_size = 8M

[volume.db-idx]
path = /dev/mapper/era-db
method = era

[group.db]
members = db-data db-wal db-idx
freeze_timeout = 30s
frozen_hook = rm -f /tmp/probe-*; for d in data wal idx; do (echo x > /mnt/db-$d/probe; touch /tmp/probe-$d) >/dev/null 2>&1 & done; sleep 1; echo /tmp/probe-* > /tmp/probe.log
EOF
kill -HUP "$CBTD"; sleep 1
# n into data, then wal, then idx, each durable before the next: any one
# instant of the three has data >= wal >= idx >= data - 1.
python3 - <<'PY' &
import os, time
fds = [os.open("/mnt/db-%s/seq" % d, os.O_WRONLY | os.O_CREAT, 0o644)
       for d in ("data", "wal", "idx")]
n = 0
while True:
    n += 1
    for fd in fds:
        os.pwrite(fd, (b"%d\n" % n).ljust(16, b" "), 0)
        os.fsync(fd)
    time.sleep(0.02)
PY
WRITER=$!
sleep 1
declare -A SEQ  # member/round -> the n its restored filesystem holds
declare -A HASH  # member/round -> its version's bytes, restored on its own
for round in 1 2; do
  cbtctl backup db --wait --json > /tmp/runs.json ||
    { cat /tmp/runs.json; tail -20 /tmp/cbtd.log; fail "backup of group db failed"; }
  assert_eq "/tmp/probe-*" "$(cat /tmp/probe.log)" "round $round: every member's write blocked while frozen"
  for d in data wal idx; do
    [ -e "/tmp/probe-$d" ] && [ -e "/mnt/db-$d/probe" ] ||
      fail "round $round: the write to db-$d blocked in the window did not complete after the thaw"
  done
  py_runs "print('\n'.join(r['volume'] + ' ' + r['version_id'] for r in rs if r['volume'].startswith('db-')))" > /tmp/db-versions
  assert_eq 3 "$(wc -l < /tmp/db-versions)" "round $round: a version per member"
  while read -r vol version; do
    cbtctl restore "$vol" --version "$version" --target /dev/hv/restored > /dev/null
    if dumpe2fs -h /dev/hv/restored 2>/dev/null | grep -q needs_recovery; then
      fail "$vol@$version: the restored ext4 needs journal recovery: it was not frozen at the instant"
    fi
    mkdir -p /mnt/check && mount -o ro /dev/hv/restored /mnt/check
    SEQ[$vol/$round]=$(head -n1 /mnt/check/seq)
    HASH[$vol/$round]=$(hash_of /dev/hv/restored $((16 << 20)))  # every db volume is 16 MiB
    umount /mnt/check
  done < /tmp/db-versions
  a=${SEQ[db-data/$round]} b=${SEQ[db-wal/$round]} c=${SEQ[db-idx/$round]}
  log "group db, round $round: data=$a wal=$b idx=$c"
  [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] && [ "$a" -ge "$b" ] && [ "$b" -ge "$c" ] && [ $((a - c)) -le 1 ] ||
    fail "round $round is not one instant: data=$a wal=$b idx=$c"
done
# --- the group as one unit (issue 19): one group version per point with
# every member, restorable together; a failed member leaves none.
db_groups() {
  cbtctl versions db --json | python3 -c "
import json, sys
groups = {}
for v in json.load(sys.stdin).get('versions', []):
    groups.setdefault(v['group_version_id'], []).append(v['volume'] + '@' + v['version_id'])
for g, m in sorted(groups.items()):
    print(g, ' '.join(sorted(m)))"
}
db_groups > /tmp/db-groups
assert_eq 2 "$(wc -l < /tmp/db-groups)" "one group version per group backup"
assert_eq "$(sort /tmp/db-versions | tr ' ' @ | tr '\n' ' ' | sed 's/ $//')" \
  "$(tail -n1 /tmp/db-groups | cut -d' ' -f2-)" "the last group version lists the members its run committed"
gv2=$(tail -n1 /tmp/db-groups | cut -d' ' -f1)
assert_contains "$(cbtctl versions db)" "$gv2" "cbtctl versions db shows the group version"
assert_contains "$(cbtctl versions db-wal)" "group db@$gv2" "a member's listing names its group version"
mkdir -p /tmp/grp
cbtctl restore --group db --version "$gv2" --target-dir /tmp/grp > /tmp/grp.log ||
  { cat /tmp/grp.log; fail "group restore of db@$gv2 failed"; }
assert_eq 3 "$(grep -c '^restored db-' /tmp/grp.log)" "the group restore wrote every member"
for member in $(tail -n1 /tmp/db-groups | cut -d' ' -f2-); do
  vol=${member%@*}
  # Byte-equal to the member's version restored on its own (round 2)...
  assert_eq "${HASH[$vol/2]}" "$(hash_of "/tmp/grp/$vol")" "group restore: $vol equals its version"
  # ...which is the point's: a clean ext4 holding the round's n.
  if dumpe2fs -h "/tmp/grp/$vol" 2>/dev/null | grep -q needs_recovery; then
    fail "group restore: $vol needs journal recovery"
  fi
  mkdir -p /mnt/check && mount -o ro,loop "/tmp/grp/$vol" /mnt/check
  assert_eq "${SEQ[$vol/2]}" "$(head -n1 /mnt/check/seq)" "group restore: $vol holds the point's data"
  umount /mnt/check
done
rm -rf /tmp/grp
# db-idx's tracking fails after the point (its era stack record is gone):
# db-data and db-wal store their versions, the group version is not
# committed, and no listing shows any of them.
mv /etc/cbtd/era-stacks /etc/cbtd/era-stacks.off
if cbtctl backup db --wait --json > /tmp/runs.json; then fail "a group backup with a failing member succeeded"; fi
assert_eq "failed" "$(py_runs "print(' '.join(r['result'] for r in rs if r['volume'] == 'db-idx'))")" "db-idx failed"
assert_eq "succeeded group-commit" "$(py_runs "print(' '.join(r['result'] + ' ' + r['step'] for r in rs if r['volume'] == 'db-data'))")" \
  "db-data's own version is stored, its run names the uncommitted group version"
assert_contains "$(py_runs "print([r for r in rs if r['volume'] == 'db-data'][0]['error'])")" "was not committed" "db-data's run says why"
pending=$(py_runs "print([r for r in rs if r['volume'] == 'db-data'][0]['version_id'])")
db_groups > /tmp/db-groups-after
assert_eq "$(cat /tmp/db-groups)" "$(cat /tmp/db-groups-after)" "no group version for the failed point"
if cbtctl versions db-data | grep -q "$pending"; then fail "the pending member $pending is listed"; fi
assert_contains "$(cbt-receiver versions --vault /tmp/vault)" "@$pending" "the receiver's own listing shows the pending member"
assert_contains "$(cbt-receiver versions --vault /tmp/vault | grep "@$pending")" "not committed" "marked as not a restore point"
mv /etc/cbtd/era-stacks.off /etc/cbtd/era-stacks
cbtctl backup db --wait --json > /tmp/runs.json ||
  { cat /tmp/runs.json; fail "the retry of group db failed"; }
db_groups > /tmp/db-groups
assert_eq 3 "$(wc -l < /tmp/db-groups)" "the retry committed a group version"
assert_eq "$pending" "$(py_runs "print([r for r in rs if r['volume'] == 'db-data'][0]['base_version'])")" \
  "the retry of db-data is an incremental on its pending member"
kill "$WRITER"; wait "$WRITER" 2>/dev/null || true
# Rollback of the WAL to its first version: refused while mounted...
wal_v1=$(cbtctl versions db-wal --json | python3 -c "import json,sys; print(json.load(sys.stdin)['versions'][0]['version_id'])")
if out=$(cbtctl restore db-wal --version "$wal_v1" --in-place 2>&1); then
  fail "rolled back a mounted filesystem's device"
fi
assert_contains "$out" "in use" "a rollback of a mounted device is refused"
[ -e /mnt/db-wal/seq ] || fail "the refused rollback damaged the mounted filesystem"
# ...done once unmounted: the WAL then holds what its first version held.
umount /mnt/db-wal
cbtctl restore db-wal --version "$wal_v1" --in-place > /dev/null
mount /dev/hv/db-wal /mnt/db-wal
assert_eq "${SEQ[db-wal/1]}" "$(head -n1 /mnt/db-wal/seq)" "the rolled-back WAL holds its first version"
umount /mnt/db-wal /mnt/db-data /mnt/db-idx

# --- thick volumes whose COW snapshot fills while their backup reads it
# (the backups held to 1 MiB/s): busy's 8 MiB snapshot takes 8 MiB of new
# writes, so cbtd extends it and the backup succeeds; tight's cannot grow
# (its VG is full), overflows, and the run says so, naming the settings.
lvcreate -q -L 16M -n busy hv >/dev/null
lvcreate -q -L 16M -n tight hv >/dev/null
rand_bytes busy $((16 << 20)) | dd of=/dev/hv/busy bs=1M oflag=direct status=none
rand_bytes tight $((16 << 20)) | dd of=/dev/hv/tight bs=1M oflag=direct status=none
cat >> "$CONF" <<'EOF'

[volume.busy]
path = /dev/hv/busy
cow_size = 8M

[volume.tight]
path = /dev/hv/tight
cow_size = 8M
EOF
sed -i 's|^metrics_file = /tmp/cbtd.prom$|metrics_file = /tmp/cbtd.prom\nbandwidth_limit = 1M|' "$CONF"
kill -HUP "$CBTD"; sleep 1
# VOLUME MIB PAUSE: new data into the first MIB MiB, PAUSE s after each.
overwrite() {
  for i in $(seq 0 $(($2 - 1))); do
    rand_bytes "$1-new-$i" $((1 << 20)) | dd of="/dev/hv/$1" bs=1M seek="$i" oflag=direct status=none
    sleep "$3"
  done
}
cbtctl backup busy --point > /dev/null  # returns once the snapshot exists
overwrite busy 8 0.7  # about 1 MiB/s, done before the 16 s backup
wait_idle
cbtctl runs busy --json > /tmp/runs.json
assert_eq succeeded "$(py_runs "print(rs[0]['result'])")" "busy's backup, its snapshot extended"
grep "extended COW snapshot hv/busy" /tmp/cbtd.log ||
  fail "the busy snapshot was not extended: $(grep -i cow /tmp/cbtd.log | tail -5)"
base=$(cbtctl volumes --json | python3 -c "import json,sys; print([v for v in json.load(sys.stdin)['volumes'] if v['name']=='busy'][0]['base_snapshot'])")
cbtctl restore busy --version "$(py_runs "print(rs[0]['version_id'])")" --target /dev/hv/restored > /dev/null
assert_eq "$(hash_of "/dev/$base")" "$(hash_of /dev/hv/restored $((16 << 20)))" "the extended snapshot's backup restores to its bytes"
cbtctl backup tight --point > /dev/null
lvcreate -q -l 100%FREE -n filler hv >/dev/null  # no room left to extend into
# 5 MiB: past the 60 % mark of the 8 MiB COW, not full. The guard polls
# every 2 s: the pause lets it try (and fail) to extend before the rest
# overflows the snapshot (without it a fast machine filled the COW between
# two polls, and no extension was ever tried).
overwrite tight 5 0
sleep 3
for i in $(seq 5 11); do
  rand_bytes "tight-new-$i" $((1 << 20)) | dd of=/dev/hv/tight bs=1M seek="$i" oflag=direct status=none
done
wait_idle
grep -q "cannot extend COW snapshot hv/tight.*: VG hv has 0.0 MiB free" /tmp/cbtd.log ||
  fail "no note of the extension the full VG refused: $(grep -i 'cow' /tmp/cbtd.log | tail -3)"
lvremove -qy hv/filler >/dev/null
cbtctl runs tight --json > /tmp/runs.json
assert_eq failed "$(py_runs "print(rs[0]['result'])")" "tight's backup, its snapshot overflowed"
error=$(py_runs "print(rs[0]['error'])")
log "overflow: $error"
assert_contains "$error" "of volume 'tight' overflowed" "the error names the overflow and the volume"
assert_contains "$error" "Raise cow_size or cow_max_size" "the error names the settings"
# busy's next snapshot is sized from what its base collected since the
# last run (8 MiB of writes): twice that, bounded by busy's size, instead
# of cow_size's 8 MiB.
lvremove -qy hv/restored hv/logs-restored >/dev/null
cbtctl backup busy --wait > /dev/null || fail "busy's second backup failed"
grep -q "sized the COW snapshot of /dev/hv/busy at 16.0 MiB" /tmp/cbtd.log ||
  fail "busy's snapshot was not sized from its writes: $(grep -i 'cow' /tmp/cbtd.log | tail -3)"
base=$(cbtctl volumes --json | python3 -c "import json,sys; print([v for v in json.load(sys.stdin)['volumes'] if v['name']=='busy'][0]['base_snapshot'])")
assert_eq $((16 << 20)) "$(lvs --noheadings --units b --nosuffix -o lv_size "$base" | tr -d ' ')" \
  "busy's new snapshot has the learned COW size"

# --- restores and rollbacks have metrics of their own (written at exit).
cbtctl runs logs --json > /tmp/runs.json
restores=$(py_runs "print(sum(1 for r in rs if r['trigger'] in ('restore', 'rollback') and r['result'] == 'succeeded'))")
[ "$restores" -ge 4 ] || fail "expected at least 4 restores of logs in its runs, got $restores"
kill "$CBTD"; wait "$CBTD" 2>/dev/null || true
assert_contains "$(cat /tmp/cbtd.prom)" "cbtd_restores_total{volume=\"logs\"} $restores" "restores of logs counted"
assert_contains "$(cat /tmp/cbtd.prom)" "cbtd_restores_total{volume=\"db-wal\"} 4" \
  "two restores, a group restore and a rollback of db-wal"
grep -q '^cbtd_last_restore_written_bytes{volume="db-wal"} [1-9]' /tmp/cbtd.prom ||
  fail "the rollback's written bytes are not in the metrics: $(grep db-wal /tmp/cbtd.prom)"

log "PASS: hypervisor trigger, hook order, freeze bound, hook failure, dm volume, hash volume, rollback, a database group frozen at one instant, group versions all or nothing, COW extension, overflow and learned size, restore metrics"
