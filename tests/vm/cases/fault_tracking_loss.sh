# Issue 13, tracking loss: the source machine goes down uncleanly between
# (and during) runs of the real cbtd, and admins and accidents break the
# change tracking while cbtd is down. Every method cbtd drives is tracked:
#   thin   thin LV             thin-delta
#   thick  thick LV, cow_size  cow-table (lvm2 snapshot)
#   dmvol  plain dm linear     cow-table (cbtd's own dm-snapshot, COW LVs)
#   hashv  thick LV            hash (method = hash)
# (era is not driven by cbtd: `cbtctl changes --method era` only.)
#
# The "source machine's disk" is dm-flakey over /dev/vda with the VG on it;
# cbtd's state dir and key live on ext4 on an LV of that VG, so a power cut
# (the xfstests way: the table swapped for drop_writes, cbtd and its
# children SIGKILLed, every device-mapper device removed, the disk back on
# a pass-through table, the VG activated, the state fs mounted: a file
# written and synced after the cut must be absent) rolls back cbtd's state
# DB together with the LVM metadata, the thin pool and the volumes. The
# receiver's vault is in /tmp: another machine, it survives.
#
# A seeded loop: seeded O_DIRECT writes to every volume, a backup run
# (group g, all four), every version restored from the vault (cbt-receiver
# restore with the host's key: faster than cbtctl restore under TCG) and compared
# with the volume (nothing writes it meanwhile), then a power cut right
# after the run, in the middle of writes (O_DIRECT ones, and buffered ones
# still in the page cache), or in the middle of a run. After each reboot
# the next run either continues the chain (and restores byte-equal) or
# falls back to hash naming why (and restores byte-equal): never a
# silently wrong incremental. dmvol's dm-snapshot does not survive a
# reboot, so its every post-reboot run must fall back, naming the base.
# Then the explicit losses, each after a reboot, each detected with its
# reason, hash fallback, byte-equal restore:
#   A: thin's base snapshot lvremoved by an admin; thick's COW snapshot
#      overflowed while cbtd was down; hashv re-created (UUID changed)
#   B: thin grown (lvextend, new tail written); thick re-created; hashv
#      grown
#   C: cbtd's state dir emptied: its base snapshots are orphans (removed
#      at start), every volume gets a full, and the next run is again an
#      incremental by its own method.
# Arguments: the number of seeded cuts (default 1, or CBTD_TRACK_CUTS),
# then the losses to run (default: A, and B or C by the seed's parity, to
# fit CI's budget; ABC for all):
#   tests/vm/run-vm.sh --disk 512M --timeout 1500 -- \
#     tests/vm/cases/fault_tracking_loss.sh 12 ABC
. "$CBTD_SRC/tests/vm/lib.sh"

SEED=${CBTD_VM_SEED:-1}
CUTS=${1:-${CBTD_TRACK_CUTS:-1}}
LOSSES=${2:-A$([ $((SEED % 2)) = 1 ] && echo B || echo C)}
RANDOM=$SEED
DISK=/dev/vda
DEV=/dev/mapper/srcdisk
SECTORS=$(blockdev --getsz $DISK)
PASS="0 $SECTORS flakey $DISK 0 180 0"
DROP="0 $SECTORS flakey $DISK 0 0 180 1 drop_writes"
SYS=/mnt/sys
STATE=$SYS/state
KEY=$SYS/keys/default.key
RUNTIME=/run/cbtd
VAULT=/tmp/vault
CONF=/tmp/cbtd.conf
HOST=srchost
VOLS=(thin thick dmvol hashv)
declare -A PATH_OF=([thin]=/dev/src/thin [thick]=/dev/src/thick
  [dmvol]=/dev/mapper/dmvol [hashv]=/dev/src/hashv)
declare -A N=([cuts]=0 [cut_idle]=0 [cut_writes]=0 [cut_run]=0 [runs]=0
  [incremental]=0 [full]=0 [fallbacks]=0 [restores]=0 [lost]=0 [corrupted]=0)
declare -A REASONS  # fallback reason (shortened) -> count
WHEN="during setup"
START=$SECONDS

rnd() { R=$(( ((RANDOM << 15) | RANDOM) % $1 )); }
py() { /usr/bin/python3 -c "$@"; }

# LVM must see the VG on srcdisk only, never the same PV on /dev/vda.
sed -i 's#^devices {#devices {\n  global_filter = [ "r|^/dev/vda$|" ]#' /etc/lvm/lvm.conf
grep -q global_filter /etc/lvm/lvm.conf || fail "lvm.conf filter not set"

# --- the source machine's disk
dmsetup create srcdisk --table "$PASS"
make_vg src $DEV
lvcreate -q -L 48M -n sys src >/dev/null
lvcreate -q -L 64M -T src/pool --chunksize 64k >/dev/null
lvcreate -q -V 16M -T src/pool -n thin >/dev/null
lvcreate -q -L 8M -n thick src >/dev/null
lvcreate -q -L 8M -n hashv src >/dev/null
lvcreate -q -L 8M -n dmback src >/dev/null
lvcreate -q -L 8M -n cowa src >/dev/null
lvcreate -q -L 8M -n cowb src >/dev/null
mkfs.ext4 -q -E nodiscard /dev/src/sys
mkdir -p $SYS && mount /dev/src/sys $SYS
mkdir -p $STATE $RUNTIME
dmvol_create() {
  dmsetup create dmvol --table "0 $(blockdev --getsz /dev/src/dmback) linear /dev/src/dmback 0"
}
dmvol_create
for v in "${VOLS[@]}"; do
  rand_bytes "$SEED-$v-0" "$(blockdev --getsize64 "${PATH_OF[$v]}")" |
    dd of="${PATH_OF[$v]}" bs=1M oflag=direct status=none
done

"$CBTD_SRC/scripts/make-certs.sh" /tmp/certs --host "$HOST" >/dev/null
cbt-receiver serve --vault "$VAULT" --create --listen 127.0.0.1:7443 \
  --tls-cert /tmp/certs/server.crt --tls-key /tmp/certs/server.key \
  --client-ca /tmp/certs/ca.crt > /tmp/receiver.log 2>&1 &
RECEIVER=$!

cat > "$CONF" <<EOF
[agent]
state_dir = $STATE
socket = $RUNTIME/cbtd.sock
key_file = $KEY

[receiver]
address = 127.0.0.1:7443
ca_file = /tmp/certs/ca.crt
cert_file = /tmp/certs/$HOST.crt
key_file = /tmp/certs/$HOST.key

[volume.thin]
path = /dev/src/thin

[volume.thick]
path = /dev/src/thick
cow_size = 4M

[volume.dmvol]
path = /dev/mapper/dmvol
cow_device = /dev/src/cowa /dev/src/cowb

[volume.hashv]
path = /dev/src/hashv
method = hash

[group.g]
members = thin thick dmvol hashv
sequential = yes
EOF
cbtd --config "$CONF" --check-config

CBTD_PID=
start_cbtd() {
  # Its own process group: a cut kills it with every child (lvm, ...).
  setsid cbtd --config "$CONF" >> /tmp/cbtd.log 2>&1 &
  CBTD_PID=$!
  for _ in $(seq 1 150); do
    [ -S "$RUNTIME/cbtd.sock" ] && cbtctl status >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -30 /tmp/cbtd.log
  fail "cbtd did not come up $WHEN"
}
kill_cbtd() {
  [ -n "$CBTD_PID" ] || return 0
  kill -9 -- "-$CBTD_PID" 2>/dev/null || true
  wait "$CBTD_PID" 2>/dev/null || true
  CBTD_PID=
}
WRITER=
stop_all() {
  kill_cbtd
  [ -z "$WRITER" ] || kill -9 -- "-$WRITER" 2>/dev/null || true
  kill "$RECEIVER" 2>/dev/null || true
}
trap stop_all EXIT
start_cbtd

reload() {  # TABLE for srcdisk, swapped in without a sync
  dmsetup suspend --nolockfs srcdisk
  dmsetup load srcdisk --table "$1"
  dmsetup resume srcdisk
}

# reboot cut|clean: the source machine goes down (a power cut: writes from
# now on are lost; clean: everything written is flushed first) and comes
# back up: VG activated, dmvol re-created, state fs mounted, cbtd started.
reboot() {
  if [ "$1" = cut ]; then reload "$DROP"; fi
  kill_cbtd
  if [ -n "$WRITER" ]; then
    kill -9 -- "-$WRITER" 2>/dev/null || true; wait "$WRITER" 2>/dev/null || true; WRITER=
  fi
  exec 7>&-  # buffered writes still cached: flushed on this close, lost
  [ "$1" = cut ] || sync
  echo "after the cut" > $SYS/canary; sync
  umount $SYS
  # Every dm device goes, in dependency order (the kernel's remove_all
  # retries), srcdisk last: nothing of the old boot is left.
  dmsetup remove_all
  if dmsetup ls | grep -v "^No devices found"; then
    fail "device-mapper devices left after the reboot's remove_all $WHEN"
  fi
  blockdev --flushbufs $DISK
  dmsetup create srcdisk --table "$PASS"
  vgchange -q -ay src >/dev/null
  vgmknodes src >/dev/null 2>&1 || true
  dmvol_create
  mount /dev/src/sys $SYS
  if [ "$1" = cut ] && [ -e $SYS/canary ]; then
    fail "a write after the cut is on disk: writes were not dropped $WHEN"
  fi
  rm -f $SYS/canary
  start_cbtd
  N[cuts]=$((N[cuts] + 1))
}

# write_regions VOL TAG: 1-4 seeded regions of 4 KiB..256 KiB, O_DIRECT.
write_regions() {
  local dev=${PATH_OF[$1]} size i count len
  size=$(blockdev --getsize64 "$dev")
  rnd 4; count=$((R + 1))
  for i in $(seq 1 $count); do
    rnd 7; len=$((4096 << R))
    rnd $(( (size - len) / 4096 ))
    rand_bytes "$SEED-$1-$2-$i" $len |
      dd of="$dev" bs=4096 seek=$R oflag=direct conv=notrunc status=none
  done
}

# The runs of /tmp/runs.json, one python (slow to start under TCG) a round
# (the guest has no /dev/fd, so no process substitution):
# RUN[vol/field] for result method fallback_reason version_id base_version
# bytes_read.
declare -A RUN
read_runs() {
  local line
  RUN=()
  py "
import json
for r in json.load(open('/tmp/runs.json'))['runs']:
    for f in ('result', 'method', 'fallback_reason', 'version_id', 'base_version', 'bytes_read'):
        print('%s/%s=%s' % (r['volume'], f, str(r.get(f) or '').replace(chr(10), ' ')))" > /tmp/runs.txt
  while IFS= read -r line; do RUN[${line%%=*}]=${line#*=}; done < /tmp/runs.txt
}
run_field() { echo "${RUN[$1/$2]:-}"; }  # VOLUME FIELD
cbtd_snapshots() {
  { lvs --noheadings -o lv_name --select 'lv_tags=cbtd' src | tr -d ' '
    dmsetup ls | awk '$1 ~ /^cbtd-/ && $1 !~ /-(real|cow-.*)$/ {print $1}'; } | sort
}

# backup: runs g to the end with nothing writing the volumes, then checks
# each run and restores each version from the vault, comparing it with the
# volume. Sets METHOD[vol] and WHY[vol].
declare -A METHOD WHY
backup() {
  local v want size ver
  declare -A expect
  for v in "${VOLS[@]}"; do expect[$v]=$(hash_of "${PATH_OF[$v]}"); done
  local t0=$SECONDS
  cbtctl backup g --wait --json > /tmp/runs.json || {
    cat /tmp/runs.json; tail -30 /tmp/cbtd.log; fail "backup of g failed $WHEN"; }
  read_runs
  for v in "${VOLS[@]}"; do
    N[runs]=$((N[runs] + 1))
    assert_eq succeeded "$(run_field $v result)" "run of $v $WHEN"
    METHOD[$v]=$(run_field $v method)
    WHY[$v]=$(run_field $v fallback_reason)
    ver=$(run_field $v version_id)
    size=$(blockdev --getsize64 "${PATH_OF[$v]}")
    if [ -z "$(run_field $v base_version)" ]; then
      N[full]=$((N[full] + 1))
      assert_eq "$size" "$(run_field $v bytes_read)" "a full of $v reads it all $WHEN"
    elif [ -n "${WHY[$v]}" ]; then
      # A fallback says so: the hash method, reading the whole volume.
      N[fallbacks]=$((N[fallbacks] + 1))
      local short=${WHY[$v]%%:*}
      short=$(echo "$v: $short" | sed -E 's/[0-9]{8}T[0-9]{6}[^ ]*/TS/g; s/cbtd-[^ ]*/cbtd-…/g')
      REASONS[$short]=$(( ${REASONS[$short]:-0} + 1 ))
      assert_eq hash "${METHOD[$v]}" "$v falls back to hash (${WHY[$v]}) $WHEN"
      assert_eq "$size" "$(run_field $v bytes_read)" "a fallback of $v reads it all $WHEN"
    else
      N[incremental]=$((N[incremental] + 1))
    fi
    log "$v: ${METHOD[$v]} read $(run_field $v bytes_read) of $size; base '$(run_field $v base_version)' -> $ver${WHY[$v]:+; fallback: ${WHY[$v]}}"
    [ "$1" = check ] || continue
    rm -f /tmp/check.img /tmp/check.img.cbtd-state
    cbt-receiver restore --vault "$VAULT" --host $HOST --volume $v --version "$ver" \
      --target /tmp/check.img --key-file "$KEY" > /tmp/restore.log 2>&1 || {
      N[lost]=$((N[lost] + 1)); cat /tmp/restore.log; fail "LOST: restore of $v@$ver failed $WHEN"; }
    N[restores]=$((N[restores] + 1))
    [ "$(hash_of /tmp/check.img)" = "${expect[$v]}" ] || {
      N[corrupted]=$((N[corrupted] + 1))
      fail "CORRUPTED: $v@$ver (${METHOD[$v]}, base '$(run_field $v base_version)') does not restore to the volume's bytes $WHEN"; }
  done
  log "round done in $((SECONDS - t0)) s"
}
expect_fallback() {  # VOL TEXT: the last run of VOL fell back naming TEXT
  assert_eq hash "${METHOD[$1]}" "method of $1 $WHEN"
  assert_contains "${WHY[$1]}" "$2" "fallback reason of $1 $WHEN"
}
expect_method() {  # VOL METHOD: the last run of VOL was an incremental by it
  assert_eq "$2" "${METHOD[$1]}" "method of $1 $WHEN"
  assert_eq "" "${WHY[$1]}" "no fallback for $1 $WHEN"
}

# --- the first run: fulls (their chunks are checked by every later
# restore).
backup nocheck
log "setup done; $CUTS seeded cuts (seed $SEED)"

# --- seeded power cuts: after a run, during writes, during a run.
for CUT in $(seq 1 "$CUTS"); do
  rnd 3
  case $R in
    0)
      WHEN="after cut $CUT (right after a committed run)"
      N[cut_idle]=$((N[cut_idle] + 1))
      reboot cut
      ;;
    1)
      rnd 30; delay=$(printf '%d.%d' $((R / 10)) $((R % 10)))
      WHEN="after cut $CUT ($delay s into O_DIRECT + buffered writes)"
      N[cut_writes]=$((N[cut_writes] + 1))
      # Buffered writes held in the page cache (fd 7 keeps the device
      # open, so no close flushes them): the cut loses them.
      exec 7<> /dev/src/thick
      rand_bytes "$SEED-buffered-$CUT" $((1 << 20)) | dd of=/proc/self/fd/7 bs=64k seek=$((CUT % 8)) status=none
      # O_DIRECT writes in a loop, in a process group of their own.
      cat > /tmp/writer.sh <<EOF
i=0
while :; do
  i=\$((i + 1))
  for dev in ${PATH_OF[*]}; do
    head -c 65536 /dev/urandom |
      dd of=\$dev bs=4096 seek=\$(( (i * 7919 + $CUT * 104729) % 1900 )) oflag=direct conv=notrunc status=none
  done
done
EOF
      setsid bash /tmp/writer.sh &
      WRITER=$!
      sleep "$delay"
      reboot cut
      ;;
    2)
      for v in "${VOLS[@]}"; do write_regions $v "pre-$CUT"; done
      rnd 60; delay=$(printf '%d.%d' $((R / 10)) $((R % 10)))
      WHEN="after cut $CUT ($delay s into a run)"
      N[cut_run]=$((N[cut_run] + 1))
      cbtctl backup g > /dev/null
      sleep "$delay"
      reboot cut
      cbtctl runs --json | grep -q '"result": *"interrupted"' && log "the cut run was reported interrupted" ||
        log "no interrupted run (it finished, or its row had not reached the disk)"
      ;;
  esac
  # Only bases survive the restart's clean-up (dm snapshots never do).
  left=$(cbtd_snapshots | wc -l)
  [ "$left" -le 2 ] || fail "$left cbtd snapshots after the restart: $(cbtd_snapshots | tr '\n' ' ') $WHEN"
  for v in "${VOLS[@]}"; do write_regions $v "cut-$CUT"; done
  backup check
  # The dm volume's snapshot cannot outlive a reboot: always detected.
  expect_fallback dmvol "is missing"
  log "cut $CUT/$CUTS ok: ${WHEN#after cut $CUT }; thin ${METHOD[thin]}, thick ${METHOD[thick]}, hashv ${METHOD[hashv]}"
done

loss() { [[ $LOSSES == *$1* ]]; }
log "losses to run: $LOSSES"

# --- A: base snapshot removed, COW overflowed, volume re-created.
if loss A; then
WHEN="in loss A (base removed by an admin, COW overflow, re-created)"
kill_cbtd
base=$(lvs --noheadings -o lv_name --select 'lv_tags=cbtd && origin=thin' src | tr -d ' ')
[ -n "$base" ] || fail "thin has no base snapshot $WHEN"
lvremove -q -f "src/$base" >/dev/null
# 6 MiB into an 8 MiB origin whose snapshot holds 4 MiB: it overflows.
rand_bytes "$SEED-overflow" $((6 << 20)) | dd of=/dev/src/thick bs=1M oflag=direct status=none
lvs --noheadings -o lv_name,lv_attr --select 'origin=thick' src | grep -q 'I' ||
  log "note: lvs does not show the thick snapshot invalid: $(lvs --noheadings -o lv_name,lv_attr --select 'origin=thick' src)"
lvremove -q -f src/hashv >/dev/null
lvcreate -q -y -L 8M -n hashv src >/dev/null
rand_bytes "$SEED-hashv-new" $((8 << 20)) | dd of=/dev/src/hashv bs=1M oflag=direct status=none
reboot clean
write_regions dmvol A
backup check
expect_fallback thin "thin-delta tracking lost: base snapshot"
expect_fallback thick "cow-table tracking lost"
expect_fallback hashv "re-created (its UUID changed)"
expect_fallback dmvol "is missing"

fi

# --- B: thin and hashv grown (new tail written), thick re-created.
if loss B; then
WHEN="in loss B (grown, re-created)"
kill_cbtd
lvextend -q -L +4M src/thin >/dev/null
rand_bytes "$SEED-thin-tail" $((4 << 20)) | dd of=/dev/src/thin bs=1M seek=16 oflag=direct status=none
lvextend -q -L +4M src/hashv >/dev/null
rand_bytes "$SEED-hashv-tail" $((4 << 20)) | dd of=/dev/src/hashv bs=1M seek=8 oflag=direct status=none
for s in $(lvs --noheadings -o lv_name --select 'origin=thick' src); do
  lvremove -q -f "src/$s" >/dev/null
done
lvremove -q -f src/thick >/dev/null
lvcreate -q -y -L 8M -n thick src >/dev/null
rand_bytes "$SEED-thick-new" $((8 << 20)) | dd of=/dev/src/thick bs=1M oflag=direct status=none
reboot cut
backup check
expect_fallback thin "not equally sized"
expect_fallback thick "re-created (its UUID changed)"
expect_fallback dmvol "is missing"
assert_eq hash "${METHOD[hashv]}" "method of the grown hashv"

fi

# --- C: cbtd's state is lost (state dir emptied while it is down).
if loss C; then
WHEN="in loss C (state dir emptied)"
kill_cbtd
rm -rf "${STATE:?}"/*
sync  # lost for good: the cut below must not bring the state back
for v in "${VOLS[@]}"; do write_regions $v C; done
reboot cut
assert_eq "" "$(cbtd_snapshots)" "the old bases are orphans to a fresh state, removed at start"
backup check
for v in "${VOLS[@]}"; do
  assert_eq "" "$(run_field $v base_version)" "$v: a full without a state $WHEN"
done
WHEN="after loss C"
for v in "${VOLS[@]}"; do write_regions $v C2; done
backup check
expect_method thin thin-delta
expect_method thick cow-table
expect_method dmvol cow-table
expect_method hashv hash
fi

WHEN="at the end"
cbt-receiver verify --vault "$VAULT" > /dev/null
printf '{"seed": %s' "$SEED"
for k in cuts cut_idle cut_writes cut_run runs full incremental fallbacks restores lost corrupted; do
  printf ', "%s": %s' $k "${N[$k]}"
done
echo ", \"seconds\": $((SECONDS - START))}"
for r in "${!REASONS[@]}"; do echo "fallback ${REASONS[$r]}x: $r"; done | sort
log "PASS: $CUTS seeded cuts and the losses $LOSSES; every loss detected, every version restored byte-equal"
