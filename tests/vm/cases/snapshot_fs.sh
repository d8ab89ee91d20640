# Consistency groups through `cbtctl snapshot create` with filesystems:
# ext4 and xfs members snapshot clean while files are written, hooks see the
# group and run in order, a failing pre-hook aborts cleanly, and the
# watchdog thaws a window that hangs.
. "$CBTD_SRC/tests/vm/cases/snapshot_lib.sh"

make_vg vg /dev/vda
lvcreate -q -L 400M -T vg/pool >/dev/null

snap_dev() {  # snap_dev JSON INDEX
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])["snapshots"][int(sys.argv[2])]["device_path"])' "$1" "$2"
}
remove_all() {
  "$CBTCTL" snapshot cleanup >/dev/null
}

log "ext4 and xfs members with files being written"
lvcreate -q -V 320M -T vg/pool -n fe >/dev/null
lvcreate -q -V 320M -T vg/pool -n fx >/dev/null
mkfs.ext4 -q /dev/vg/fe
mkfs.xfs -q /dev/vg/fx
mkdir -p /mnt/e /mnt/x /mnt/se /mnt/sx
mount /dev/vg/fe /mnt/e
mount /dev/vg/fx /mnt/x
(
  i=0
  while :; do
    i=$((i + 1))
    for d in /mnt/e /mnt/x; do
      head -c 262144 /dev/urandom > $d/f$i.tmp && mv $d/f$i.tmp $d/f$i
    done
  done
) &
fpid=$!
sleep 3
rm -f /tmp/hooks
out=$("$CBTCTL" snapshot create --json --group fs \
  --pre-hook 'echo "$CBTD_PHASE $CBTD_GROUP $CBTD_VOLUMES" >> /tmp/hooks' \
  --frozen-hook 'echo "$CBTD_PHASE $CBTD_SNAPSHOT_TIME" >> /tmp/hooks' \
  --post-hook 'echo "$CBTD_PHASE $CBTD_RESULT" >> /tmp/hooks' \
  /dev/vg/fe /dev/vg/fx)
echo "$out"
sleep 2
kill $fpid; wait $fpid || true
cat /tmp/hooks
mapfile -t hooks < /tmp/hooks
assert_eq "pre fs /dev/vg/fe /dev/vg/fx" "${hooks[0]}" "pre-hook environment"
assert_contains "${hooks[1]}" "frozen 20" "frozen-hook environment"
assert_eq "post ok" "${hooks[2]}" "post-hook environment"
se=$(snap_dev "$out" 0)
sx=$(snap_dev "$out" 1)
# ext4's freeze leaves a clean journal: fsck and a plain read-only mount
# (which fails on a journal that needs recovery) work on the snapshot as is.
fsck.ext4 -n -f "$se" || fail "fsck.ext4 -n found problems in the ext4 snapshot"
mount -o ro "$se" /mnt/se
# xfs's freeze covers the log but keeps the superblock counters in it: the
# read-only snapshot mounts with norecovery, and xfs_repair -n is clean once
# the log is replayed (on a writable thin snapshot of the snapshot).
mount -o ro,norecovery,nouuid "$sx" /mnt/sx
xname=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["snapshots"][1]["name"])' "$out")
lvcreate -q -s -K -n xcheck "vg/$xname" >/dev/null
mkdir -p /mnt/xc
mount -o nouuid /dev/vg/xcheck /mnt/xc
umount /mnt/xc
xfs_repair -n /dev/vg/xcheck || fail "xfs_repair -n found problems in the xfs snapshot"
lvremove -q -y vg/xcheck >/dev/null
for d in /mnt/se /mnt/sx; do
  n=$(ls $d | grep -c '^f[0-9]*$')
  [ "$n" -gt 0 ] || fail "no files in the snapshot at $d"
  for f in $d/f*; do
    case $f in *.tmp) continue ;; esac
    assert_eq 262144 "$(stat -c %s "$f")" "size of $f"
  done
  log "$d: $n complete files"
done
umount /mnt/se /mnt/sx
echo probe > /mnt/e/after && echo probe > /mnt/x/after || fail "origins not writable after the group"
remove_all

log "a pre-hook that times out aborts cleanly; post-hooks still run"
rm -f /tmp/hooks
rc=0
out=$("$CBTCTL" snapshot create --hook-timeout 2 --pre-hook 'sleep 30' \
  --post-hook 'echo "$CBTD_PHASE $CBTD_RESULT" >> /tmp/hooks' /dev/vg/fe 2>&1) || rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "a timed-out pre-hook did not fail the group"
assert_contains "$out" "pre-hook" "error names the hook"
assert_eq "post failed" "$(cat /tmp/hooks)" "post-hook after a failed pre-hook"
assert_eq "" "$("$CBTCTL" snapshot list vg)" "snapshots left after a failed pre-hook"

log "watchdog: a frozen-hook that hangs; filesystems thawed within the bound"
rm -f /tmp/in_window
# The hook would hang for 20 s (its timeout); the watchdog must end the
# window after 2 s.
"$CBTCTL" snapshot create --freeze-bound 2 --hook-timeout 20 \
  --frozen-hook 'touch /tmp/in_window; sleep 60' /dev/vg/fe /dev/vg/fx > /tmp/wd.out 2>&1 &
cpid=$!
for _ in $(seq 1 600); do [ -e /tmp/in_window ] && break; sleep 0.05; done
start=$(date +%s.%N)
[ -e /tmp/in_window ] || fail "the frozen-hook never ran"
# Frozen now: a write blocks. It must complete once the watchdog thaws.
timeout 30 sh -c 'echo x > /mnt/e/probe && sync /mnt/e/probe && echo x > /mnt/x/probe && sync /mnt/x/probe'
end=$(date +%s.%N)
rc=0
wait $cpid || rc=$?
cat /tmp/wd.out
thawed=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$end")
log "writes went through ${thawed}s after the frozen-hook started; cbtctl exit $rc"
# 2 s bound plus slack for a slow emulated guest, well below the 20 s hook.
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 8.0 else 1)" "$thawed" ||
  fail "filesystems were thawed after ${thawed}s, the bound is 2s"
[ "$rc" = 1 ] || fail "the watchdog case should fail with exit 1, got $rc"
assert_contains "$(cat /tmp/wd.out)" "freeze bound" "watchdog error message"
assert_eq "" "$("$CBTCTL" snapshot list vg)" "snapshots left after the watchdog fired"
if dmsetup info | grep -q SUSPENDED; then fail "a device was left suspended"; fi
lvs -a vg
log "PASS"
