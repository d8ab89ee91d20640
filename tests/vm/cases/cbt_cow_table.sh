# cow-table never-miss property on real dm-snapshot (LVM thick): the base
# snapshot's exception table must cover every byte that differs between it
# and the next snapshot. Then loss cases: overflowed (invalid) snapshot and
# a removed base.
. "$CBTD_SRC/tests/vm/lib.sh"
. "$CBTD_SRC/tests/vm/cases/cbt_lib.sh"
CBTCTL="$CBTD_BIN/cbtctl"
# CI runs 4 rounds (a new seed each run); more: pass the count, e.g.
#   tests/vm/run-vm.sh --disk 256M -- tests/vm/cases/cbt_cow_table.sh 20
ROUNDS=${1:-${CBT_ROUNDS:-4}}
SEED=${CBTD_VM_SEED}
log "seed $SEED, $ROUNDS rounds"

make_vg cbt /dev/vda
lvcreate -q -L 40M -n vol cbt >/dev/null
cbt_workload /dev/cbt/vol "$SEED" 60
lvcreate -q -s -L 40M -n s0 cbt/vol >/dev/null
# The hash method runs on the same rounds, for the precision comparison.
"$CBTCTL" changes /dev/cbt/s0 --method hash --chunk-bytes 4096 --save-hashes /tmp/prev.h >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  cbt_workload /dev/cbt/vol "$((SEED * 100 + r))" 40
  # Alternate chunk sizes: 4 KiB (LVM default) and 16 KiB.
  if (( r % 2 )); then cs=4k; else cs=16k; fi
  lvcreate -q -s -L 40M -c "$cs" -n "s$r" cbt/vol >/dev/null
  start=$(date +%s%N)
  "$CBTCTL" changes cbt/vol --method cow-table --base "cbt/s$((r - 1))" --json > /tmp/j.json
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  assert_eq false "$(cbt_field /tmp/j.json lost)" "round $r lost: $(cbt_field /tmp/j.json lost_reason)"
  log "round $r: $(cbt_check "/dev/cbt/s$((r - 1))" "/dev/cbt/s$r" /tmp/j.json) ${ms}ms"
  "$CBTCTL" changes "/dev/cbt/s$r" --method hash --chunk-bytes 4096 \
    --previous-hashes /tmp/prev.h --save-hashes /tmp/new.h --json > /tmp/h.json
  log "round $r hash: $(cbt_check "/dev/cbt/s$((r - 1))" "/dev/cbt/s$r" /tmp/h.json exact 4096)"
  mv /tmp/new.h /tmp/prev.h
  (( r == 1 )) && cbt_check_catches "/dev/cbt/s$((r - 1))" "/dev/cbt/s$r"
  lvremove -q -y "cbt/s$((r - 1))" >/dev/null
done

log "loss: overflowed snapshot is invalid"
lvcreate -q -s -L 4M -n small cbt/vol >/dev/null
dd if=/dev/urandom of=/dev/cbt/vol bs=1M count=8 oflag=direct status=none 2>/dev/null || true
lvs -o lv_name,lv_attr,snap_percent cbt
"$CBTCTL" changes cbt/vol --method cow-table --base cbt/small --json > /tmp/j.json
assert_eq true "$(cbt_field /tmp/j.json lost)" "overflowed snapshot not lost"
assert_contains "$(cbt_field /tmp/j.json lost_reason)" "invalid" "reason"

log "loss: base snapshot removed"
lvremove -q -y cbt/small >/dev/null
"$CBTCTL" changes cbt/vol --method cow-table --base cbt/small --json > /tmp/j.json
assert_eq true "$(cbt_field /tmp/j.json lost)" "missing base not lost"
assert_contains "$(cbt_field /tmp/j.json lost_reason)" "missing" "reason"
log "PASS: cow-table never missed a byte in $ROUNDS rounds (seed $SEED)"
