# era never-miss property on a real dm-era stack over a raw device of odd
# size (last era block partial). A "snapshot" here is a copy of the era
# device taken while nothing writes; writes after the copy and before the
# changed set is computed belong to the next interval and must be caught
# there. Mid-way the stack is removed and re-assembled over its metadata
# (as at boot, with the command of systemd/cbtd-era-stacks.service), and
# must keep its generation. Loss: the stack rebuilt with fresh metadata,
# also when that metadata has already counted past the stored era (only
# the generation tells); blank metadata is never assembled.
. "$CBTD_SRC/tests/vm/lib.sh"
. "$CBTD_SRC/tests/vm/cases/cbt_lib.sh"
CBTCTL="$CBTD_BIN/cbtctl"
# CI runs 4 rounds (a new seed each run); more: pass the count, e.g.
#   tests/vm/run-vm.sh --disk 256M -- tests/vm/cases/cbt_era.sh 20
ROUNDS=${1:-${CBT_ROUNDS:-4}}
SEED=${CBTD_VM_SEED}
log "seed $SEED, $ROUNDS rounds"

# 40 MiB + 7 sectors of origin, 8 MiB of metadata, both on /dev/vda.
dmsetup create cbt-origin --table "0 81927 linear /dev/vda 0"
dmsetup create cbt-meta --table "0 16384 linear /dev/vda 100000"
ERA=cbt-era
REG=/tmp/era-stacks
create() { "$CBTCTL" era-stack create $ERA --origin /dev/mapper/cbt-origin \
  --metadata /dev/mapper/cbt-meta --block-sectors 128 --registry $REG "$@"; }
# What cbtd-era-stacks.service runs at boot, on this test's registry.
boot_assemble() {
  local cmd
  cmd=$(sed -n 's/^ExecStart=@CMAKE_INSTALL_FULL_BINDIR@\///p' \
    "$CBTD_SRC/systemd/cbtd-era-stacks.service.in")
  # shellcheck disable=SC2086
  "$CBTD_BIN"/$cmd --registry $REG
}
live_uuid() { dmsetup info -c --noheadings -o uuid $ERA; }
create
gen=$("$CBTCTL" era-stack list --registry $REG | sed -n 's/.* generation \([0-9a-f]*\): assembled$/\1/p')
assert_eq 16 "${#gen}" "generation of the new stack"
assert_eq "CBTD-ERA-$gen" "$(live_uuid)" "dm uuid carries the generation"
# --metadata comes from the stack's record.
changes() { "$CBTCTL" changes $ERA --method era --registry $REG --since "$1" \
  --era-generation "$gen" --json; }
cbt_workload /dev/mapper/$ERA "$SEED" 60
cp /dev/mapper/$ERA /tmp/prev.img
changes 0 > /tmp/j.json
assert_eq "$gen" "$(cbt_field /tmp/j.json era_generation)" "generation reported"
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
    log "re-assembling the stack over its metadata, as at boot"
    "$CBTCTL" era-stack remove $ERA
    boot_assemble
    assert_eq "CBTD-ERA-$gen" "$(live_uuid)" "assembly kept the generation"
    assert_contains "$(boot_assemble)" "already assembled" "second boot run"
  fi
done

log "stale metadata snapshot is dropped by the next run"
dmsetup message $ERA 0 take_metadata_snap
changes "$since" > /tmp/j.json 2> /tmp/err.txt
assert_contains "$(cat /tmp/err.txt)" "stale metadata snapshot" "stale drop logged"
assert_eq "-" "$(dmsetup status $ERA | awk '{print $7}')" "era metadata snap left held"
since=$(cbt_field /tmp/j.json next_since_era)

log "loss: era stack rebuilt with fresh metadata that counted past era $since"
"$CBTCTL" era-stack remove $ERA
if create 2> /tmp/err.txt; then fail "create over a recorded stack was not refused"; fi
assert_contains "$(cat /tmp/err.txt)" "--force" "refusal names the way out"
create --force
assert_eq 0 "$(live_uuid | grep -c "$gen" || true)" "rebuilt stack kept the old generation"
for _ in $(seq 0 $((since + 3))); do dmsetup message $ERA 0 checkpoint; done
era=$(dmsetup status $ERA | awk '{print $6}')
(( era - 1 > since )) || fail "rebuilt stack's era $era did not pass $since"
changes "$since" > /tmp/j.json
assert_eq true "$(cbt_field /tmp/j.json lost)" "rebuilt stack (era $era) not lost"
assert_contains "$(cbt_field /tmp/j.json lost_reason)" "was rebuilt: its generation is" "reason"

log "blank metadata is never assembled"
"$CBTCTL" era-stack remove $ERA
dd if=/dev/zero of=/dev/mapper/cbt-meta bs=4096 count=1 oflag=direct status=none
if boot_assemble 2> /tmp/err.txt; then fail "assembled over blank metadata"; fi
assert_contains "$(cat /tmp/err.txt)" "is blank" "blank metadata refusal"
if dmsetup info $ERA >/dev/null 2>&1; then fail "stack loaded over blank metadata"; fi
"$CBTCTL" era-stack create $ERA --origin /dev/mapper/cbt-origin \
  --metadata /dev/mapper/cbt-meta --registry $REG --force >/dev/null
"$CBTCTL" era-stack remove $ERA --forget --registry $REG
assert_eq "" "$("$CBTCTL" era-stack list --registry $REG)" "forgotten stack listed"
log "PASS: era never missed a byte in $ROUNDS rounds (seed $SEED)"
