# thin-delta never-miss property on real dm-thin: seeded random workloads
# (unaligned writes, overwrites, the last bytes, discards) between thin
# snapshots; every byte differing between consecutive snapshots must be in
# the reported set. Then the loss cases and the hash fallback.
. "$CBTD_SRC/tests/vm/lib.sh"
. "$CBTD_SRC/tests/vm/cases/cbt_lib.sh"
CBTCTL="$CBTD_BIN/cbtctl"
# CI runs 4 rounds (a new seed each run); more: pass the count, e.g.
#   tests/vm/run-vm.sh --disk 256M -- tests/vm/cases/cbt_thin_delta.sh 20
ROUNDS=${1:-${CBT_ROUNDS:-4}}
SEED=${CBTD_VM_SEED}
log "seed $SEED, $ROUNDS rounds"

make_vg cbt /dev/vda
# 192 KiB blocks do not divide the 40 MiB volume: its last block is partial.
if ! lvcreate -q -L 120M -T cbt/pool --chunksize 192k --discards passdown >/dev/null 2>&1; then
  log "192k chunks refused; using 64k"
  lvcreate -q -L 120M -T cbt/pool --chunksize 64k >/dev/null
fi
lvcreate -q -V 40M -T cbt/pool -n vol >/dev/null
lvs -o lv_name,chunk_size,discards cbt
cbt_workload /dev/cbt/vol "$SEED" 60
snap() { lvcreate -q -s -n "$1" cbt/vol >/dev/null; lvchange -q -ay -K "cbt/$1" >/dev/null; }
snap s0
total_reported=0
for r in $(seq 1 "$ROUNDS"); do
  cbt_workload /dev/cbt/vol "$((SEED * 100 + r))" 40 discard
  snap "s$r"
  start=$(date +%s%N)
  "$CBTCTL" changes cbt/vol --method thin-delta --base "cbt/s$((r - 1))" --new "cbt/s$r" --json > /tmp/j.json
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  assert_eq false "$(cbt_field /tmp/j.json lost)" "round $r lost"
  log "round $r: $(cbt_check "/dev/cbt/s$((r - 1))" "/dev/cbt/s$r" /tmp/j.json) zeroed=$(cbt_field /tmp/j.json zeroed_bytes) ${ms}ms"
  (( r == 1 )) && cbt_check_catches "/dev/cbt/s$((r - 1))" "/dev/cbt/s$r"
  lvremove -q -y "cbt/s$((r - 1))" >/dev/null
done
last=s$ROUNDS

log "stale reservation from a killed run is released by the next run"
cbt_workload /dev/cbt/vol "$((SEED + 7))" 10
snap t1
dmsetup message cbt-pool-tpool 0 reserve_metadata_snap
held=$(dmsetup status cbt-pool-tpool | awk '{print $7}')
[ "$held" != "-" ] || fail "reservation not visible in pool status"
"$CBTCTL" changes cbt/vol --method thin-delta --base "cbt/$last" --new cbt/t1 --json > /tmp/j.json \
  2> /tmp/err.txt
assert_contains "$(cat /tmp/err.txt)" "stale metadata snapshot" "stale release logged"
assert_eq "-" "$(dmsetup status cbt-pool-tpool | awk '{print $7}')" "reservation left held"
cbt_check "/dev/cbt/$last" /dev/cbt/t1 /tmp/j.json

log "1% changed on a fully mapped 40 MiB volume: time to compute"
dd if=/dev/urandom of=/dev/cbt/vol bs=1M count=40 oflag=direct status=none
snap p0
python3 - <<'PY'
import os, random
fd = os.open("/dev/cbt/vol", os.O_RDWR); size = os.lseek(fd, 0, 2); r = random.Random(5)
for i in range(size // 100 // 4096):
    os.pwrite(fd, r.randbytes(4096), r.randrange(0, size // 4096) * 4096)
os.fsync(fd)
PY
snap p1
start=$(date +%s%N)
"$CBTCTL" changes cbt/vol --method thin-delta --base cbt/p0 --new cbt/p1 --json > /tmp/j.json
log "TIMING thin-delta 1%: cbtctl changes $(( ($(date +%s%N) - start) / 1000000 )) ms, $(cbt_check /dev/cbt/p0 /dev/cbt/p1 /tmp/j.json)"
# The metadata protocol alone (without the lvs lookups cbtctl does).
ida=$(lvs --noheadings -o thin_id cbt/p0 | tr -d ' ')
idb=$(lvs --noheadings -o thin_id cbt/p1 | tr -d ' ')
start=$(date +%s%N)
dmsetup message cbt-pool-tpool 0 reserve_metadata_snap
thin_delta --metadata-snap --snap1 "$ida" --snap2 "$idb" /dev/mapper/cbt-pool_tmeta > /dev/null
dmsetup message cbt-pool-tpool 0 release_metadata_snap
log "TIMING thin-delta 1%: reserve + thin_delta + release $(( ($(date +%s%N) - start) / 1000000 )) ms"

log "hash fallback finds exactly the differing chunks"
"$CBTCTL" changes /dev/cbt/p0 --method hash --chunk-bytes 65536 --save-hashes /tmp/p0.h > /dev/null
start=$(date +%s%N)
"$CBTCTL" changes /dev/cbt/p1 --method hash --chunk-bytes 65536 --previous-hashes /tmp/p0.h --json > /tmp/h.json
log "TIMING hash 1%: $(( ($(date +%s%N) - start) / 1000000 )) ms"
cbt_check /dev/cbt/p0 /dev/cbt/p1 /tmp/h.json exact 65536

log "loss: base snapshot removed"
lvremove -q -y cbt/p0 >/dev/null
"$CBTCTL" changes cbt/vol --method thin-delta --base cbt/p0 --new cbt/p1 --json > /tmp/j.json
assert_eq true "$(cbt_field /tmp/j.json lost)" "missing base not lost"
assert_contains "$(cbt_field /tmp/j.json lost_reason)" "missing" "reason"
assert_eq "$(cbt_field /tmp/j.json volume_size_bytes)" "$(cbt_field /tmp/j.json changed_bytes)" "lost = whole volume"
log "PASS: thin-delta never missed a byte in $ROUNDS rounds (seed $SEED)"
