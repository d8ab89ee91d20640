# Issue 13: a power cut of the receiver's machine. The vault is on ext4 on
# a dm-flakey device over /dev/vda. A cut (the xfstests way) reloads the
# table with drop_writes, so every write from then on is silently lost,
# SIGKILLs every cbt-receiver, unmounts (the write-back is dropped too) and
# mounts again on a pass-through table: the "reboot". A seeded loop cuts
#  - receives (host enc encrypted, host plain not; full, incremental,
#    hash): at a seeded byte of their input, or a seeded delay after it;
#  - gc --grace-seconds 0 --repack-below 0.9 after a prune: at a delay.
# After every reboot (page cache gone: a file written after the cut must
# be absent): verify exits 0; every version a receive had reported (exit 0)
# before the cut is listed, a version prune had removed is not, nothing
# else is but the cut receive's (then whole); every listed version restores
# byte-equal to its source; the cut operation, retried, succeeds.
# Arguments (run-vm.sh passes no environment but the seed): the number of
# cuts (default 8, or CBTD_POWER_CUTS; docs/reliability.md has bigger runs),
# then `sabotage` (or CBTD_POWER_CUT_SABOTAGE=1): delete a committed
# version's index after the first reboot; the test must fail, naming it.
#   tests/vm/run-vm.sh --disk 512M -- tests/vm/cases/fault_power_cut.sh 30
. "$CBTD_SRC/tests/vm/lib.sh"

SEED=${CBTD_VM_SEED:-1}
CUTS=${1:-${CBTD_POWER_CUTS:-8}}
[ "${2:-}" != sabotage ] || CBTD_POWER_CUT_SABOTAGE=1
DISK=/dev/vda
DEV=/dev/mapper/vaultdev
MNT=/mnt/vault
V=$MNT/vault
W=/tmp/powercut
CHUNK=65536
RANDOM=$SEED
SECTORS=$(blockdev --getsz $DISK)
VOLS=(enc/root plain/data)
declare -A SIZE=([enc/root]=$((3 << 19)) [plain/data]=$(((1 << 20) + 12288)))
declare -A EXP PRUNED NEXT NEWEST  # EXP[host/volume@id] = sha256 of its source
declare -A N=([cut_receive]=0 [cut_gc]=0 [done_before_cut]=0 [committed]=0
  [found_after_cut]=0 [restores]=0 [lost]=0 [corrupted]=0)
EST_RECV=1000 EST_GC=2000  # ms, from complete runs; cuts at 1/4..5/4 of it
CUT=0 WHEN="during setup"
START=$SECONDS
mkdir -p $W $MNT

rnd() { R=$(( ((RANDOM << 15) | RANDOM) % $1 )); }  # R = seeded 0..$1-1
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
ms_sleep() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }
keyargs() { [ "${1%%/*}" != enc ] || echo "--key-file $W/key"; }
cut_fail() { N[$1]=$((N[$1] + 1)); fail "$2 $WHEN"; }
reload() {  # TABLE: dmsetup's table for vaultdev, swapped in
  dmsetup suspend --nolockfs vaultdev  # no sync: what is cached stays there
  dmsetup load vaultdev --table "$1"
  dmsetup resume vaultdev
}
PASS="0 $SECTORS flakey $DISK 0 180 0"  # up 180 s, down 0: every I/O
DROP="0 $SECTORS flakey $DISK 0 0 180 1 drop_writes"  # writes lost, reads ok
alive() {  # PID: running (not exited, not a zombie)
  local s
  read -r _ _ s _ 2> /dev/null < "/proc/$1/stat" && [ "$s" != Z ]
}

# The power goes: writes are dropped from now on, the receivers die, the
# filesystem is unmounted (its write-back lost) and mounted again.
power_cut() {  # PIDS of the cbt-receivers running
  reload "$DROP"
  local pid
  for pid in "$@"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  ! pidof cbt-receiver >/dev/null || fail "a cbt-receiver survived the cut $WHEN"
  echo "after the cut" > $MNT/canary; sync
  umount $MNT
  blockdev --flushbufs $DEV  # (dropped) and no cached block of it left
  reload "$PASS"
  mount $DEV $MNT
  [ ! -e $MNT/canary ] || fail "a write after the cut is on disk: writes were not dropped"
  if [ "${CBTD_POWER_CUT_SABOTAGE:-0}" = 1 ] && [ "$CUT" = 1 ]; then
    local k; k=$(printf '%s\n' "${!EXP[@]}" | sort | head -n 1)
    local h=${k%%/*} rest=${k#*/}
    rm "$V/hosts/$h/${rest%@*}/versions/${rest#*@}.idx"
    log "SABOTAGE: deleted the index of $k"
  fi
}

listed() {  # host/volume@id, one a line
  local key
  cbt-receiver versions --vault $V | while read -r key _; do echo "$key"; done
}
has() { [[ $'\n'$1$'\n' == *$'\n'"$2"$'\n'* ]]; }  # LISTING KEY

restore_compare() {  # KEY WANT_SHA256
  local h=${1%%/*} rest=${1#*/} got
  rm -f $W/check.img $W/check.img.cbtd-state
  cbt-receiver restore --vault $V --host "$h" --volume "${rest%@*}" --version "${rest#*@}" \
    --target $W/check.img $(keyargs "$1") > $W/restore.log 2>&1 ||
    cut_fail corrupted "CORRUPTED: restore of $1 failed: $(cat $W/restore.log)"
  got=$(hash_of $W/check.img)
  N[restores]=$((N[restores] + 1))
  [ "$got" = "$2" ] || cut_fail corrupted "CORRUPTED: $1 restores to sha256 $got, its source has $2"
}

# verify, then the listing against EXP (FLIGHT: the cut receive's version,
# allowed if whole), then every listed version restored and compared.
check_vault() {  # [FLIGHT_KEY FLIGHT_SHA256]
  local key list out
  out=$(cbt-receiver verify --vault $V --key-file $W/key 2>&1) ||
    cut_fail corrupted "verify reports damage: $out"
  list=$(listed)
  for key in "${!EXP[@]}"; do
    has "$list" "$key" || cut_fail lost "LOST version $key (reported committed)"
  done
  for key in $list; do
    if [ -n "${PRUNED[$key]+x}" ]; then
      restore_compare "$key" "${PRUNED[$key]}"
      cut_fail corrupted "RESURRECTED version $key: prune had removed it (exit 0)\
 before the cut; it is back (whole: it restores to its source)"
    elif [ -z "${EXP[$key]+x}" ]; then
      [ "$key" = "${1:-}" ] || cut_fail corrupted "UNEXPECTED version $key (never committed)"
      EXP[$key]=$2
      N[found_after_cut]=$((N[found_after_cut] + 1))
    fi
    restore_compare "$key" "${EXP[$key]}"
  done
}

mutate() {  # IMG SIZE: rewrites 1-4 seeded regions; prints them as extents
  local i len count
  rnd 4; count=$((R + 1))
  echo '# offset length'
  for i in $(seq 1 $count); do
    rnd 6; len=$((4096 << R))
    rnd $((($2 - len) / 4096))
    rand_bytes "$SEED-$CUT-$i-$R" $len |
      dd of="$1" bs=4096 seek=$R conv=notrunc status=none
    echo "$((R * 4096)) $len"
  done
}

# make_version VOL: a new version of VOL's image; its stream in $W/stream,
# KEY and SHA set.
make_version() {
  local vol=$1 host=${1%%/*} img=$W/${1/\//-}.img base=${NEWEST[$1]:-}
  NEXT[$vol]=$(( ${NEXT[$vol]:-0} + 1 ))
  local vid; vid=$(printf 'v%04d' "${NEXT[$vol]}")
  local args=(--host "$host" --volume "${vol#*/}" --version-id "$vid" $(keyargs "$vol"))
  if [ -z "$base" ]; then
    rand_bytes "$SEED-$vol" "${SIZE[$vol]}" > "$img"
    args+=(--chunk-size $CHUNK)
  else
    cbt-receiver versions --vault $V --host "$host" --volume "${vol#*/}" \
      --export-index "$base" > $W/base.idx
    mutate "$img" "${SIZE[$vol]}" > $W/changes
    rnd 4
    if [ $R = 0 ]; then args+=(--base-index $W/base.idx --full)
    else args+=(--base-index $W/base.idx --changes $W/changes); fi
  fi
  cbtctl send "$img" "${args[@]}" -o $W/stream 2>> $W/send.log
  KEY=$vol@$vid SHA=$(hash_of "$img")
}

committed() {  # KEY SHA
  EXP[$1]=$2; NEWEST[${1%@*}]=${1#*@}; N[committed]=$((N[committed] + 1))
}

receive() {  # [--create]: receive $W/stream to the end; sets RC, EST_RECV
  local t; t=$(now_ms); RC=0
  cbt-receiver receive --vault $V "$@" --input $W/stream > $W/recv.log 2>&1 || RC=$?
  [ $RC != 0 ] || EST_RECV=$(( $(now_ms) - t ))
}

# A receive cut at a seeded byte of its input or a seeded delay after it.
cut_receive() {  # VOL
  make_version "$1"
  local size pid rc=-1; size=$(stat -c %s $W/stream)
  rnd 2
  if [ $R = 0 ]; then
    rnd "$size"
    WHEN="in cut $CUT (receive of $KEY, power cut after $R of $size stream bytes)"
    rm -f $W/fifo; mkfifo $W/fifo
    cbt-receiver receive --vault $V < $W/fifo > $W/recv.log 2>&1 &
    pid=$!
    exec 3> $W/fifo
    head -c "$R" $W/stream >&3
    sleep 0.5  # let it consume the last pipe buffer
  else
    rnd "$EST_RECV"; R=$((R + EST_RECV / 4))
    WHEN="in cut $CUT (receive of $KEY, power cut $R ms after its start, ~$EST_RECV ms to run)"
    cbt-receiver receive --vault $V --input $W/stream > $W/recv.log 2>&1 &
    pid=$!
    ms_sleep "$R"
  fi
  if ! alive $pid; then wait $pid && rc=0 || rc=$?; fi
  [ $rc = -1 ] || [ $rc = 0 ] || fail "receive failed before the cut (exit $rc): $(cat $W/recv.log) $WHEN"
  power_cut $pid
  exec 3>&- || true
  N[cut_receive]=$((N[cut_receive] + 1))
  if [ $rc = 0 ]; then
    N[done_before_cut]=$((N[done_before_cut] + 1)); committed "$KEY" "$SHA"
    WHEN="$WHEN [it had exited 0 before the cut]"
    check_vault
  else
    check_vault "$KEY" "$SHA"
  fi
  # The retry completes: it commits, or finds the version there.
  receive
  if [ -n "${EXP[$KEY]+x}" ]; then
    [ $RC = 3 ] && grep -q "already exists" $W/recv.log ||
      fail "retry: expected exit 3 \"already exists\", got $RC: $(cat $W/recv.log) $WHEN"
    [ $rc = 0 ] || N[committed]=$((N[committed] + 1))
    NEWEST[${KEY%@*}]=${KEY#*@}
  else
    [ $RC = 0 ] || fail "retry failed (exit $RC): $(cat $W/recv.log) $WHEN"
    committed "$KEY" "$SHA"
  fi
}

# A prune (run to the end), then a gc cut at a seeded delay.
cut_gc() {  # VOL
  local vol=$1 keep pid rc=-1 key t list
  rnd 2; keep=$((R + 1))
  cbt-receiver prune --vault $V --host "${vol%%/*}" --volume "${vol#*/}" --keep-last $keep > /dev/null
  list=$(listed)
  for key in "${!EXP[@]}"; do
    has "$list" "$key" || { PRUNED[$key]=${EXP[$key]}; unset "EXP[$key]"; }
  done
  rnd "$EST_GC"; R=$((R + EST_GC / 4))
  WHEN="in cut $CUT (gc after prune --keep-last $keep of $vol, power cut $R ms after its start, ~$EST_GC ms to run)"
  cbt-receiver gc --vault $V --grace-seconds 0 --repack-below 0.9 > $W/gc.log 2>&1 &
  pid=$!
  ms_sleep "$R"
  if ! alive $pid; then wait $pid && rc=0 || rc=$?; fi
  [ $rc = -1 ] || [ $rc = 0 ] || fail "gc failed before the cut (exit $rc): $(cat $W/gc.log) $WHEN"
  [ $rc = -1 ] || N[done_before_cut]=$((N[done_before_cut] + 1))
  power_cut $pid
  N[cut_gc]=$((N[cut_gc] + 1))
  check_vault
  t=$(now_ms)
  cbt-receiver gc --vault $V --grace-seconds 0 --repack-below 0.9 > $W/gc.log 2>&1 ||
    fail "retried gc failed: $(cat $W/gc.log) $WHEN"
  EST_GC=$(( $(now_ms) - t ))
}

# --- setup: the vault's filesystem on dm-flakey, a first version each.
dmsetup create vaultdev --table "$PASS"
mkfs.ext4 -q -E nodiscard $DEV
mount $DEV $MNT
cbtctl key create --key-file $W/key 2> /dev/null
for vol in "${VOLS[@]}"; do
  make_version "$vol"
  receive --create
  [ $RC = 0 ] || fail "first receive of $KEY failed: $(cat $W/recv.log)"
  committed "$KEY" "$SHA"
done
check_vault
log "setup done: receive ~${EST_RECV} ms; $CUTS power cuts (seed $SEED)"

# --- the cuts: one in three cuts a gc (after a prune of the volume with
# the most versions, if one has two), the others a receive; a gc as soon
# as more than 4 versions are kept (bounded restores).
versions_of() { printf '%s\n' "${!EXP[@]}" | grep -c "^$1@" || true; }
for CUT in $(seq 1 "$CUTS"); do
  rnd 2; vol=${VOLS[$R]}
  gcv=; most=1
  for v in "${VOLS[@]}"; do
    n=$(versions_of "$v"); [ "$n" -le $most ] || { gcv=$v; most=$n; }
  done
  rnd 3
  if [ -n "$gcv" ] && { [ $R = 0 ] || [ "${#EXP[@]}" -gt 4 ]; }; then
    cut_gc "$gcv"
  else
    cut_receive "$vol"
  fi
  log "cut $CUT/$CUTS ok: ${WHEN#in cut $CUT }; ${#EXP[@]} versions kept"
done

# --- the end: a gc run to the end, verify, every version restored.
WHEN="at the end"
cbt-receiver gc --vault $V --grace-seconds 0 --repack-below 0.9 > /dev/null
check_vault
umount $MNT
dmsetup remove vaultdev
printf '{"seed": %s, "cuts": %s' "$SEED" "$CUTS"
for k in cut_receive cut_gc done_before_cut found_after_cut committed restores lost corrupted; do
  printf ', "%s": %s' $k "${N[$k]}"
done
echo ", \"seconds\": $((SECONDS - START))}"
log "PASS: $CUTS power cuts, no version lost or damaged"
