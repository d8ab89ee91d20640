# Issue 13: cbtd killed at seeded points of its jobs, on real LVM, and
# cbt-receiver killed under a running backup. A kill is what systemd does
# when cbtd's main process dies: SIGKILL to cbtd and to every process it
# started (lvcreate, hooks, thin_delta), so nothing of it runs on.
#
# Volumes: thin t1 (raw data) and thin t2 (ext4, mounted) in group tg, one
# instant with FIFREEZE and pre/frozen/post hooks; thick k1 (cow-table) in
# group kg. keep_last = 2 everywhere, so runs prune too. A seeded loop of
# rounds: change the volumes (seeded), then one kill:
#  - pre:      while tg's pre-hook runs (before the window);
#  - frozen:   while tg's frozen-hook runs: t2's ext4 frozen and t1, t2
#              suspended (both checked before the kill);
#  - delay:    a seeded delay into a backup of tg or kg (snapshots, change
#              computation, upload, commit, retention);
#  - restore:  a seeded delay into a restore through cbtd (full, or
#              incremental onto a target holding the previous version);
#  - receiver: cbt-receiver SIGKILLed a seeded delay into a backup, and
#              started again at once.
# After each kill, cbtd is started again, and before anything else runs:
# no device stays suspended, no filesystem frozen (a write blocked by the
# freeze completes), the only cbtd snapshots left are the kept bases; then
# the next backup succeeds; the thin pool holds no metadata snapshot and no
# hook process is left; every version the vault lists that was not yet
# checked restores through cbtd to its source's bytes (t1, k1: sha256 of
# the volume, unchanged since the round began; t2: fsck clean and the same
# files); the version each successful run reported is listed. At the end
# the vault verifies with the host's key (every chunk by its keyed id).
# Arguments: the number of kills (default 3, or CBTD_CRASH_KILLS;
# docs/reliability.md has bigger runs), then `sabotage`: leave t2 frozen
# after the first restart; the test must then fail, naming it.
#   tests/vm/run-vm.sh --disk 512M --timeout 14400 -- \
#     tests/vm/cases/fault_cbtd_crash.sh 200
. "$CBTD_SRC/tests/vm/lib.sh"

SEED=${CBTD_VM_SEED:-1}
KILLS=${1:-${CBTD_CRASH_KILLS:-3}}
SABOTAGE=0
[ "${2:-}" != sabotage ] || SABOTAGE=1
RANDOM=$SEED
RUNTIME=/run/cbtd
STATE=/tmp/cbtd-state
VAULT=/tmp/vault
CONF=/tmp/cbtd.conf
HOST=vmhost
W=/tmp/crash
T2=/mnt/t2
declare -A SIZE=([t1]=$((8 << 20)) [t2]=$((16 << 20)) [k1]=$((8 << 20)))
declare -A EXP      # EXP[vol@version] = what it must restore to
declare -A N=([pre]=0 [frozen]=0 [delay]=0 [restore]=0 [receiver]=0
  [restore_landed]=0 [interrupted]=0 [runs_ok]=0 [restores]=0 [lost]=0 [corrupted]=0)
declare -A STEPS    # where the delay kills landed (the run's step)
declare -A EST=([tg]=3000 [kg]=3000)  # ms a run takes, measured
EST_RESTORE=2000
ROUND=0 WHEN="during setup"
START=$SECONDS
mkdir -p $W $T2 "$STATE" "$RUNTIME"

rnd() { R=$(( ((RANDOM << 15) | RANDOM) % $1 )); }  # R = seeded 0..$1-1
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
ms_sleep() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }
py() { /usr/bin/python3 -c "$@"; }
crash_fail() { N[$1]=$((N[$1] + 1)); fail "$2 (round $ROUND, $WHEN)"; }

make_vg cv /dev/vda
lvcreate -q -L 128M -T cv/pool --chunksize 64k > /dev/null
lvcreate -q -V 8M -T cv/pool -n t1 > /dev/null
lvcreate -q -V 16M -T cv/pool -n t2 > /dev/null
lvcreate -q -L 8M -n k1 cv > /dev/null
lvcreate -q -L 16M -n scratch cv > /dev/null
rand_bytes "$SEED-t1" "${SIZE[t1]}" | dd of=/dev/cv/t1 bs=1M oflag=direct status=none
rand_bytes "$SEED-k1" "${SIZE[k1]}" | dd of=/dev/cv/k1 bs=1M oflag=direct status=none
mkfs.ext4 -q -E nodiscard /dev/cv/t2
mount /dev/cv/t2 $T2
for i in 1 2 3 4; do rand_bytes "$SEED-d$i" $((1 << 20)) > $T2/d$i; done
sync

# The hooks log each call; a hold file makes one wait, to be killed in it.
cat > $W/hook <<'EOF'
#!/bin/sh
echo "$1 $CBTD_GROUP" >> /tmp/crash/hooks.log
if [ -e "/tmp/crash/hold-$1" ]; then
  : > "/tmp/crash/in-$1"
  exec /bin/sleep 50
fi
EOF
chmod +x $W/hook

log "setup: volumes made ($((SECONDS - START)) s)"
"$CBTD_SRC/scripts/make-certs.sh" /tmp/certs --host "$HOST" > /dev/null
RECEIVER=
start_receiver() {
  cbt-receiver serve --vault "$VAULT" --create --listen 127.0.0.1:7443 \
    --tls-cert /tmp/certs/server.crt --tls-key /tmp/certs/server.key \
    --client-ca /tmp/certs/ca.crt >> /tmp/receiver.log 2>&1 &
  RECEIVER=$!
}
start_receiver

cat > "$CONF" <<EOF
[agent]
state_dir = $STATE
socket = $RUNTIME/cbtd.sock

[receiver]
address = 127.0.0.1:7443
ca_file = /tmp/certs/ca.crt
cert_file = /tmp/certs/$HOST.crt
key_file = /tmp/certs/$HOST.key

[volume.t1]
path = /dev/cv/t1
keep_last = 2

[volume.t2]
path = /dev/cv/t2
keep_last = 2

[volume.k1]
path = /dev/cv/k1
cow_size = 4M
keep_last = 2

[group.tg]
members = t1 t2
freeze_timeout = 40s
hook_timeout = 60s
pre_hook = $W/hook pre
frozen_hook = $W/hook frozen
post_hook = $W/hook post

[group.kg]
members = k1
EOF
cbtd --config "$CONF" --check-config

CBTD_PID=
start_cbtd() {
  cbtd --config "$CONF" >> /tmp/cbtd.log 2>&1 &
  CBTD_PID=$!
  for _ in $(seq 1 150); do
    [ -S "$RUNTIME/cbtd.sock" ] && cbtctl status > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -20 /tmp/cbtd.log
  fail "cbtd did not come up (round $ROUND)"
}
descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
kill_tree() {  # PID: stopped first so it starts nothing more, then killed
  kill -STOP "$1"
  local pids; pids=$(descendants "$1")
  kill -9 "$1" $pids 2> /dev/null || true
  wait "$1" 2> /dev/null || true
}
stop_all() {
  fsfreeze -u $T2 2> /dev/null || true
  [ -z "$CBTD_PID" ] || kill "$CBTD_PID" 2> /dev/null || true
  kill "$RECEIVER" 2> /dev/null || true
}
trap stop_all EXIT
start_cbtd
log "setup: cbtd up ($((SECONDS - START)) s)"

member_of() { case "$1" in k1) echo kg ;; *) echo tg ;; esac; }
members() { case "$1" in kg) echo k1 ;; *) echo t1 t2 ;; esac; }
versions() {  # VOLUME: its version ids at the receiver, oldest first
  cbtctl versions "$1" --json |
    py "import json,sys; print(' '.join(v['version_id'] for v in json.load(sys.stdin)['versions']))"
}
cbtd_snapshots() { lvs --noheadings -o lv_name --select 'lv_tags=cbtd' cv | tr -d ' ' | sort; }
bases() {
  cbtctl volumes --json | py "import json,sys
for v in json.load(sys.stdin)['volumes']:
    if v.get('base_snapshot'): print(v['base_snapshot'].split('/')[-1])" | sort
}
# What a snapshot taken now must restore to: the bytes of t1 and k1; for
# the ext4 on t2, its files d* (names and contents).
t2_files() {  # DIR or ext4 IMAGE
  local f
  for f in d1 d2 d3 d4; do
    if [ -d "$1" ]; then echo "$f $(hash_of "$1/$f")"
    else echo "$f $(debugfs -R "cat /$f" "$1" 2> /dev/null | sha256sum | cut -d' ' -f1)"; fi
  done | sha256sum | cut -d' ' -f1
}
source_of() {
  case "$1" in
    t2) t2_files $T2 ;;
    *) hash_of "/dev/cv/$1" ;;
  esac
}
declare -A SRC
record_sources() { local v; for v in t1 t2 k1; do SRC[$v]=$(source_of $v); done; }

# The volumes change between rounds (seeded), never during one: every
# version made in a round restores to the round's SRC.
mutate() {  # GROUP: changes its members
  local i vol
  for vol in $(members "$1"); do
    if [ $vol = t2 ]; then
      rnd 4
      rand_bytes "$SEED-$ROUND-d" $(((R + 1) << 18)) > $T2/d$((R + 1))
      sync
    else
      for i in 1 2; do
        rnd $((SIZE[$vol] >> 16))
        rand_bytes "$SEED-$ROUND-$vol-$i" 65536 | dd of=/dev/cv/$vol bs=64k seek=$R oflag=direct status=none
      done
    fi
    SRC[$vol]=$(source_of $vol)
  done
}

# backup GROUP: to the end; every member must succeed. Its runs: $W/runs.json
backup() {
  local t; t=$(now_ms)
  cbtctl backup "$1" --wait --json > $W/runs.json ||
    { cat $W/runs.json; tail -20 /tmp/cbtd.log; fail "backup of $1 failed (round $ROUND, $WHEN)"; }
  EST[$1]=$(( $(now_ms) - t ))
  local vol v
  for vol in $(members "$1"); do
    v=$(py "import json; print([r for r in json.load(open('$W/runs.json'))['runs'] if r['volume']=='$vol'][0]['version_id'])")
    [ -n "$v" ] || fail "$vol: a successful run reported no version"
    has "$(versions $vol)" "$v" || crash_fail lost "LOST: $vol@$v, reported by a successful run, is not listed"
    N[runs_ok]=$((N[runs_ok] + 1))
  done
}
has() { [[ " $1 " == *" $2 "* ]]; }

# The version's bytes, read from the vault by cbt-receiver with the host's
# key (restores through cbtd are what the restore kills exercise).
restore_compare() {  # VOLUME VERSION WANT
  local got img=$W/check.img
  rm -f $img $img.cbtd-state
  cbt-receiver restore --vault "$VAULT" --host $HOST --volume "$1" --version "$2" \
    --target $img --key-file /var/lib/cbtd/keys/default.key > $W/restore.log 2>&1 ||
    crash_fail corrupted "CORRUPTED: restore of $1@$2 failed: $(cat $W/restore.log)"
  compare_image "$1" "$2" $img "$3"
}
compare_image() {  # VOLUME VERSION IMAGE WANT
  local got
  N[restores]=$((N[restores] + 1))
  if [ "$1" = t2 ]; then
    e2fsck -fn "$3" > $W/fsck.log 2>&1 ||
      crash_fail corrupted "CORRUPTED: t2@$2 restores to an ext4 that fsck rejects: $(tail -5 $W/fsck.log)"
    got=$(t2_files "$3")
  else
    got=$(hash_of "$3" "${SIZE[$1]}")
  fi
  [ "$got" = "$4" ] || crash_fail corrupted "CORRUPTED: $1@$2 restores to $got, its source was $4"
}
# Every listed version not yet checked was made this round: it must
# restore to this round's source.
check_new_versions() {
  local vol v
  for vol in t1 t2 k1; do
    for v in $(versions $vol); do
      [ -z "${EXP[$vol@$v]+x}" ] || continue
      EXP[$vol@$v]=${SRC[$vol]}
      restore_compare $vol "$v" "${SRC[$vol]}"
    done
  done
}

# Right after the restart, before any run: what the dead cbtd held is let go.
check_released() {
  local out
  if out=$(dmsetup info -c --noheadings --separator ' ' -o name,suspended | awk '$2 == "Suspended"') && [ -n "$out" ]; then
    crash_fail corrupted "a device stayed suspended after the restart: $out"
  fi
  ( echo "round $ROUND" > $T2/probe ) &
  local probe=$! i
  for i in $(seq 1 50); do kill -0 $probe 2> /dev/null || break; sleep 0.2; done
  if kill -0 $probe 2> /dev/null; then
    fsfreeze -u $T2 2> /dev/null || true; wait $probe || true
    crash_fail corrupted "the filesystem on t2 stayed frozen after the restart"
  fi
  wait $probe
  [ "$(cbtd_snapshots)" = "$(bases)" ] ||
    crash_fail corrupted "snapshots after the restart: $(echo $(cbtd_snapshots)), the kept bases are $(echo $(bases))"
}
# After the next complete run: no metadata snapshot held, no hook left.
check_after_run() {
  local held
  held=$(dmsetup status cv-pool-tpool | awk '{print $7}')
  [ "$held" = "-" ] || crash_fail corrupted "the thin pool still holds metadata snapshot $held"
  ! pgrep -f "$W/hook" > /dev/null || crash_fail corrupted "a hook process is left: $(pgrep -af "$W/hook")"
}
interrupted_step() {  # prints the step of the newest interrupted run, if new
  cbtctl runs --json | py "import json,sys
rs=[r for r in json.load(sys.stdin)['runs'] if r['result']=='interrupted']
print(len(rs), rs[0].get('step','') if rs else '')"
}

# --- the first versions, and how long a run and a restore take
record_sources
backup tg
backup kg
check_after_run
check_new_versions
t=$(now_ms)
v=$(versions t1 | awk '{print $NF}')
cbtctl restore t1 --version "$v" --target /dev/cv/scratch > /dev/null
EST_RESTORE=$(( $(now_ms) - t ))
compare_image t1 "$v" /dev/cv/scratch "${SRC[t1]}"
log "setup: a run of tg takes ${EST[tg]} ms, of kg ${EST[kg]} ms, a restore ${EST_RESTORE} ms"
INTERRUPTED=0

# --- the kills
kill_in_hook() {  # PHASE: a backup of tg killed while PHASE's hook runs
  rm -f $W/in-$1; : > $W/hold-$1
  cbtctl backup tg > /dev/null
  local i
  for i in $(seq 1 300); do [ -e $W/in-$1 ] && break; sleep 0.1; done
  [ -e $W/in-$1 ] || { tail -20 /tmp/cbtd.log; fail "the $1 hook did not run (round $ROUND)"; }
  rm -f $W/hold-$1
  if [ "$1" = frozen ]; then  # prove the kill lands inside the window
    local dev
    for dev in t1 t2; do
      [ "$(dmsetup info -c --noheadings -o suspended cv-$dev)" = Suspended ] ||
        fail "$dev is not suspended inside the window (round $ROUND)"
    done
    ( echo blocked > $T2/blocked ) &
    local writer=$!
    sleep 1
    kill -0 $writer 2> /dev/null || fail "a write to t2 went through inside the window: not frozen (round $ROUND)"
    kill_tree "$CBTD_PID"
    BLOCKED=$writer
  else
    kill_tree "$CBTD_PID"
  fi
}
into_backup() {  # GROUP: starts a backup, waits a seeded 0-5/4 of a run
  cbtctl backup "$1" > /dev/null
  rnd $((EST[$1] * 5 / 4)); ms_sleep $R
}
kill_in_backup() {  # GROUP
  into_backup $1
  WHEN="$WHEN, $1 at ${R} ms"
  kill_tree "$CBTD_PID"
}
kill_in_restore() {  # GROUP: a version of one of its raw members
  local vol=t1 vs from to rc=0
  [ $1 = tg ] || vol=k1
  vs=($(versions $vol))
  to=${vs[-1]}
  rm -f $W/scr.state
  local args=(--version "$to" --target /dev/cv/scratch --state $W/scr.state) how=full
  rnd 2
  if [ ${#vs[@]} -ge 2 ] && [ $R = 1 ]; then
    from=${vs[-2]} how=incremental
    cbtctl restore $vol --version "$from" --target /dev/cv/scratch --state $W/scr.state > /dev/null
    args+=(--from "$from")
  fi
  cbtctl restore $vol "${args[@]}" > $W/restore.log 2>&1 &
  local pid=$!
  rnd $((EST_RESTORE / 2)); ms_sleep $R  # a full restore's first half
  WHEN="$WHEN, $how $vol@$to at ${R} ms"
  kill_tree "$CBTD_PID"
  wait $pid || rc=$?
  [ $rc = 0 ] || N[restore_landed]=$((N[restore_landed] + 1))
  start_cbtd
  check_released
  # Again: an incremental onto what the kill left must finish or refuse
  # naming the target's state; a full restore then completes.
  local again=full
  if [ $how = incremental ]; then
    if cbtctl restore $vol "${args[@]}" > $W/restore.log 2>&1; then again=
    else assert_contains "$(cat $W/restore.log)" "state" "an incremental restore onto a killed restore's target"
    fi
  fi
  if [ -n "$again" ]; then
    cbtctl restore $vol "${args[@]:0:6}" > $W/restore.log 2>&1 ||
      crash_fail corrupted "restore of $vol@$to after the restart failed: $(cat $W/restore.log)"
  fi
  compare_image $vol "$to" /dev/cv/scratch "${EXP[$vol@$to]}"
  log "round $ROUND: restore killed (cbtctl exit $rc), restored again"
}
kill_receiver() {  # GROUP
  into_backup $1
  WHEN="$WHEN, receiver under $1 at ${R} ms"
  kill -9 "$RECEIVER"; wait "$RECEIVER" 2> /dev/null || true
  start_receiver
  local i  # the run resumes or fails; wait for it to end
  for i in $(seq 1 900); do
    cbtctl runs --json | grep -q '"result": *"\(running\|queued\)"' || break
    sleep 0.2
  done
  cbt-receiver verify --vault "$VAULT" > $W/verify.log 2>&1 ||
    crash_fail corrupted "verify after a receiver kill: $(tail -5 $W/verify.log)"
}

# Each round changes one group's volumes, kills, then backs that group up.
# The kinds in turn (CI's slice of 3: frozen, delay, restore).
KINDS=(frozen delay restore receiver pre)
for ROUND in $(seq 1 "$KILLS"); do
  BLOCKED=
  KIND=${KINDS[$(( (ROUND - 1) % ${#KINDS[@]} ))]}
  G=tg
  rnd 2; [ $KIND = pre ] || [ $KIND = frozen ] || [ $R = 0 ] || G=kg
  mutate $G
  WHEN="kill in $KIND"
  N[$KIND]=$((N[$KIND] + 1))
  case $KIND in
    pre|frozen) kill_in_hook $KIND ;;
    delay) kill_in_backup $G ;;
    restore) kill_in_restore $G ;;
    receiver) kill_receiver $G ;;
  esac
  if [ $KIND != restore ] && [ $KIND != receiver ]; then
    start_cbtd
    if [ $SABOTAGE = 1 ] && [ $ROUND = 1 ]; then
      fsfreeze -f $T2; log "SABOTAGE: froze $T2 after the restart"
    fi
    check_released
    [ -z "$BLOCKED" ] || wait "$BLOCKED"
    set -- $(interrupted_step)
    if [ "$1" -gt "$INTERRUPTED" ]; then
      N[interrupted]=$((N[interrupted] + 1)); STEPS[${2:-none}]=$(( ${STEPS[${2:-none}]:-0} + 1 ))
      INTERRUPTED=$1
    fi
  fi
  log "round $ROUND: $WHEN"
  backup $G
  check_after_run
  check_new_versions
  log "round $ROUND done: a run of $G took ${EST[$G]} ms, $((SECONDS - START)) s so far"
done

# --- the end: every chunk of every version, checked by its keyed id (each
# version was restored and compared once, when it appeared).
WHEN="at the end"
cbt-receiver verify --vault "$VAULT" --key-file /var/lib/cbtd/keys/default.key > $W/verify.log 2>&1 ||
  crash_fail corrupted "verify at the end: $(tail -5 $W/verify.log)"
steps=$(for s in "${!STEPS[@]}"; do echo -n "$s=${STEPS[$s]} "; done)
log "SUMMARY seed $SEED: $KILLS kills (pre ${N[pre]}, frozen ${N[frozen]}, delay ${N[delay]}, restore ${N[restore]} (${N[restore_landed]} before it finished), receiver ${N[receiver]}); interrupted runs ${N[interrupted]} (steps: ${steps:-none}); runs succeeded ${N[runs_ok]}; restores compared ${N[restores]}; lost ${N[lost]}, corrupted ${N[corrupted]}; $((SECONDS - START)) s"
log "PASS: cbtd and cbt-receiver killed $KILLS times, nothing held, lost or corrupted (seed $SEED)"
