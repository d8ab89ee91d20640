# era never-miss property on a real dm-era stack over a raw device of odd
# size (last era block partial). A "snapshot" here is a copy of the era
# device taken while nothing writes; writes after the copy and before the
# changed set is computed belong to the next interval and must be caught
# there. Mid-way the stack is removed and re-assembled over its metadata
# (as at boot). Loss: the stack rebuilt with fresh metadata.
. "$CBTD_SRC/tests/vm/lib.sh"
. "$CBTD_SRC/tests/vm/cases/cbt_lib.sh"
CBTCTL="$CBTD_BIN/cbtctl"
ROUNDS=${CBT_ROUNDS:-6}
SEED=${CBTD_VM_SEED}
log "seed $SEED, $ROUNDS rounds"

# 40 MiB + 7 sectors of origin, 8 MiB of metadata, both on /dev/vda.
dmsetup create cbt-origin --table "0 81927 linear /dev/vda 0"
dmsetup create cbt-meta --table "0 16384 linear /dev/vda 100000"
ERA=cbt-era
stack() { "$CBTCTL" era-stack "$1" $ERA --origin /dev/mapper/cbt-origin \
  --metadata /dev/mapper/cbt-meta --block-sectors 128; }
stack create
changes() { "$CBTCTL" changes $ERA --method era --metadata /dev/mapper/cbt-meta --since "$1" --json; }
cbt_workload /dev/mapper/$ERA "$SEED" 60
cp /dev/mapper/$ERA /tmp/prev.img
changes 0 > /tmp/j.json
since=$(cbt_field /tmp/j.json next_since_era)
for r in $(seq 1 "$ROUNDS"); do
  cbt_workload /dev/mapper/$ERA "$((SEED * 100 + r))" 40
  cp /dev/mapper/$ERA /tmp/new.img
  # After the "snapshot": these writes belong to the next round.
  cbt_workload /dev/mapper/$ERA "$((SEED * 100 + r + 50))" 3
  start=$(date +%s%N)
  changes "$since" > /tmp/j.json
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  assert_eq false "$(cbt_field /tmp/j.json lost)" "round $r lost"
  log "round $r (since era $since): $(cbt_check /tmp/prev.img /tmp/new.img /tmp/j.json) ${ms}ms"
  (( r == 1 )) && cbt_check_catches /tmp/prev.img /tmp/new.img
  since=$(cbt_field /tmp/j.json next_since_era)
  mv /tmp/new.img /tmp/prev.img
  if (( r == ROUNDS / 2 )); then
    log "re-assembling the stack over its metadata"
    stack remove
    stack assemble
  fi
done

log "stale metadata snapshot is dropped by the next run"
dmsetup message $ERA 0 take_metadata_snap
changes "$since" > /tmp/j.json 2> /tmp/err.txt
assert_contains "$(cat /tmp/err.txt)" "stale metadata snapshot" "stale drop logged"
assert_eq "-" "$(dmsetup status $ERA | awk '{print $7}')" "era metadata snap left held"
since=$(cbt_field /tmp/j.json next_since_era)

log "loss: era stack rebuilt with fresh metadata"
stack remove
stack create
changes "$since" > /tmp/j.json
assert_eq true "$(cbt_field /tmp/j.json lost)" "rebuilt stack not lost"
assert_contains "$(cbt_field /tmp/j.json lost_reason)" "rebuilt" "reason"
stack remove
log "PASS: era never missed a byte in $ROUNDS rounds (seed $SEED)"
