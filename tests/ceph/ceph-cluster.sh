#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for tests: one mon and one OSD on
# 127.0.0.1, no mgr, no systemd, pool `vault` of size 1.
#   tests/ceph/ceph-cluster.sh start DIR [memstore|bluestore]
#   tests/ceph/ceph-cluster.sh stop DIR
#   tests/ceph/ceph-cluster.sh kill-osd DIR    SIGKILL the OSD (a crash)
#   tests/ceph/ceph-cluster.sh start-osd DIR   start it again on its data
#                                              (bluestore only: memstore's
#                                              data died with it)
# start leaves DIR/ceph.conf (clients: CEPH_CONF=DIR/ceph.conf), DIR/keyring
# (client.admin, and client.cbtd limited to the pool `vault`), the daemons'
# PIDs in DIR/pids and their logs in DIR/log. A failed start stops what it
# started. memstore (the default) keeps the data in the OSD's memory, lost
# when it stops; bluestore writes a sparse file in DIR.
#
# Ports: each cluster claims a slot N (0-39) under $CBTD_CEPH_SLOTS (default
# /tmp/cbtd-ceph-slots), serialised by a flock, and skips slots whose ports
# something already listens on: mon on 41000+100N, every daemon's other
# ports in 41000+100N+10 .. +99. So parallel ctest runs (and other users of
# the machine) do not collide. stop frees the slot; a slot whose cluster is
# gone (no live PID) is taken over.
#
# Every call that talks to the cluster is bounded by `timeout`: without a
# mgr some `ceph` commands hang forever (and each costs ~0.4 s of Python,
# so there are only two).
#
# With CBTD_CEPH_OWNER_PID set (tests/common/ceph_cluster.h sets it to the
# test's PID), a watchdog stops the cluster and removes DIR once that
# process is gone, so a test killed by a timeout or SIGKILL leaves no
# daemons behind.
set -Eeuo pipefail

slots=${CBTD_CEPH_SLOTS:-/tmp/cbtd-ceph-slots}

usage() {
  echo "usage: $0 start DIR [memstore|bluestore] | stop DIR |" \
    "kill-osd DIR | start-osd DIR" >&2
  exit 2
}

# True while PID $1 is one of our daemons and has not exited (an exited
# daemon stays a zombie until PID 1 reaps it; a reused PID is not ours).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  case "$stat" in
    *"(ceph-"*") Z "*) return 1 ;;
    *"(ceph-"*) return 0 ;;
    *) return 1 ;;
  esac
}

# Stops the recorded daemons newest first (the OSD before the mon: an OSD
# whose mon is gone waits for it), each SIGTERM then, after 10 s, SIGKILL;
# then frees the slot. A memstore cluster's data dies with its OSD anyway,
# so it is SIGKILLed at once (a clean stop costs ~1.5 s per daemon).
stop_cluster() {
  local d=$1 p _ sig=TERM
  [ "$(cat "$d/store" 2>/dev/null)" = memstore ] && sig=KILL
  if [ -f "$d/pids" ]; then
    for p in $(tac "$d/pids"); do
      alive "$p" || continue
      kill -"$sig" "$p" 2>/dev/null || continue
      for _ in $(seq 200); do
        alive "$p" || break
        sleep 0.05
      done
      if alive "$p"; then
        kill -KILL "$p" 2>/dev/null && echo "ceph-cluster: SIGKILLed $p" >&2
      fi
    done
    rm -f "$d/pids"
  fi
  if [ -f "$d/slot" ]; then
    rm -rf "${slots:?}/$(cat "$d/slot")"
    rm -f "$d/slot"
  fi
}

# True if something listens on a TCP port in [lo, hi].
ports_busy() {
  ss -Htln "( sport >= :$1 and sport <= :$2 )" 2>/dev/null | grep -q .
}

# True if the cluster that claimed slot directory $1 still runs.
slot_alive() {
  local owner p
  owner=$(cat "$1/dir" 2>/dev/null) || return 1
  [ -f "$owner/pids" ] || return 1
  while read -r p; do
    alive "$p" && return 0
  done <"$owner/pids"
  return 1
}

# Claims a free slot for cluster dir $1; prints its number.
claim_slot() {
  local d=$1 n base
  mkdir -p "$slots"
  exec 9>"$slots/.lock"
  flock -w 30 9
  for n in $(seq 0 39); do
    base=$((41000 + 100 * n))
    if [ -d "$slots/$n" ]; then
      slot_alive "$slots/$n" && continue
      rm -rf "${slots:?}/$n"
    fi
    ports_busy "$base" "$((base + 99))" && continue
    mkdir "$slots/$n"
    echo "$d" >"$slots/$n/dir"
    exec 9>&-
    echo "$n"
    return 0
  done
  exec 9>&-
  echo "ceph-cluster: no free slot (ports 41000-44999) under $slots" >&2
  return 1
}

write_conf() {
  local d=$1 store=$2 fsid=$3 mon_port=$4 port_min=$5 port_max=$6
  cat >"$d/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind port min = $port_min
ms bind port max = $port_max
run dir = $d/run
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
keyring = $d/keyring
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
mgr initial modules =
[client]
# A dead OSD or mon is an error after this long, not a hang (the default
# is to wait forever); clients may set their own.
rados osd op timeout = 10
rados mon op timeout = 10
client mount timeout = 10
[mon]
mon data = $d/\$name
[osd]
osd data = $d/\$name
keyring = \$osd_data/keyring
osd objectstore = $store
memstore device bytes = 1G
# Not \$osd_data/block: bluestore makes that a symlink (ELOOP).
bluestore block path = \$osd_data/block.file
bluestore block create = true
bluestore block size = 10G
osd memory target = 939524096
osd op num shards = 2
osd op num threads per shard = 1
EOF
}

# Stops the cluster in $1 and removes $1 once process $2 has exited; ends
# by itself when the cluster is stopped first. Detached, with no descriptor
# of the caller's open (CTest waits for its test's output pipes to close).
start_watchdog() {
  local d=$1 owner=$2
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c '
    while kill -0 "$2" 2>/dev/null; do
      [ -f "$1/pids" ] || exit 0
      sleep 1
    done
    "$0" stop "$1" && rm -rf "$1"' "$(realpath "$0")" "$d" "$owner" \
    </dev/null >/dev/null 2>&1 &
}

start_failed() {
  local d=$1 line=$2 f
  echo "ceph-cluster: start failed at line $line of $0; logs in $d/log" >&2
  for f in "$d"/log/*; do
    [ -s "$f" ] || continue
    echo "--- $f (last lines)" >&2
    tail -n 5 "$f" >&2
  done
  stop_cluster "$d"
}

start_cluster() {
  local d=$1 store=$2 slot base fsid uuid key id p
  case "$store" in memstore | bluestore) ;; *) usage ;; esac
  if [ -f "$d/pids" ]; then stop_cluster "$d"; fi
  rm -rf "$d"
  mkdir -p "$d"/{mon.a,osd.0,run,log}
  echo "$store" >"$d/store"
  slot=$(claim_slot "$d")
  echo "$slot" >"$d/slot"
  # A failed start says where, shows the daemons' last words and leaves
  # no daemons behind.
  trap 'start_failed "$d" "$LINENO"' ERR
  base=$((41000 + 100 * slot))
  export CEPH_CONF=$d/ceph.conf
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$d" "$store" "$fsid" "$base" $((base + 10)) $((base + 99))

  # Every key goes into the keyring before the mon's mkfs, which imports
  # them with their caps: no `ceph auth` calls afterwards.
  ceph-authtool "$d/keyring" --create-keyring --gen-key -n mon. \
    --cap mon 'allow *' >/dev/null
  ceph-authtool "$d/keyring" --gen-key -n client.admin --cap mon 'allow *' \
    --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$d/keyring" --gen-key -n client.cbtd --cap mon 'allow r' \
    --cap osd 'allow rwx pool=vault' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$base]" \
    "$d/monmap" >/dev/null
  ceph-mon -i a --mkfs --monmap "$d/monmap" --keyring "$d/keyring"
  ceph-mon -i a -f >"$d/log/mon.a.out" 2>&1 &
  echo $! >>"$d/pids"

  uuid=$(cat /proc/sys/kernel/random/uuid)
  key=$(ceph-authtool --gen-print-key)
  echo "{\"cephx_secret\": \"$key\"}" >"$d/osd.0/new.json"
  id=$(timeout 60 ceph osd new "$uuid" -i "$d/osd.0/new.json")
  timeout 60 ceph-osd -i "$id" --mkfs --key "$key" --osd-uuid "$uuid" \
    >"$d/log/osd.mkfs.out" 2>&1
  # --mkfs does not write the OSD's keyring; without it the OSD exits with
  # "failed to fetch mon config".
  printf '[osd.%s]\n\tkey = %s\n' "$id" "$key" >"$d/osd.$id/keyring"
  ceph-osd -i "$id" -f >"$d/log/osd.$id.out" 2>&1 &
  echo $! >>"$d/pids"

  timeout 60 ceph osd pool create vault 8 8 replicated >/dev/null 2>&1
  # Ready = a real write and read through the OSD (HEALTH_OK never comes
  # without a mgr).
  echo ready >"$d/ready.in"
  while read -r p; do
    alive "$p" || {
      echo "ceph-cluster: daemon $p died; see $d/log" >&2
      false
    }
  done <"$d/pids"
  timeout 120 rados -p vault put _ready "$d/ready.in"
  timeout 30 rados -p vault get _ready "$d/ready.out"
  cmp -s "$d/ready.in" "$d/ready.out"
  timeout 30 rados -p vault rm _ready
  trap - ERR
  if [ -n "${CBTD_CEPH_OWNER_PID:-}" ]; then
    start_watchdog "$d" "$CBTD_CEPH_OWNER_PID"
  fi
  echo "ceph-cluster: up in slot $slot (mon 127.0.0.1:$base):" \
    "CEPH_CONF=$d/ceph.conf"
}

# The OSD's PID is line 2 of DIR/pids (mon, OSD: stop's order).
osd_pid() { sed -n 2p "$1/pids"; }

# A lone OSD has no peer to report its death: the mon is told, as the
# peers of a real cluster would tell it (else it waits
# mon_osd_report_timeout, 15 min, and a new OSD process never comes up).
kill_osd() {
  local d=$1 p
  p=$(osd_pid "$d")
  kill -KILL "$p"
  while alive "$p"; do sleep 0.05; done
  CEPH_CONF=$d/ceph.conf timeout 30 ceph osd down 0 >/dev/null 2>&1
}

# Starts the OSD again and returns once it serves a write and a read.
start_osd() {
  local d=$1 p
  [ "$(cat "$d/store")" = bluestore ] || {
    echo "ceph-cluster: start-osd needs bluestore (memstore lost its data)" >&2
    exit 2
  }
  export CEPH_CONF=$d/ceph.conf
  ceph-osd -i 0 -f >>"$d/log/osd.0.out" 2>&1 &
  p=$!
  sed -i "2s/.*/$p/" "$d/pids"
  echo ready >"$d/ready.in"
  for _ in $(seq 12); do
    timeout 15 rados -p vault put _ready "$d/ready.in" 2>/dev/null && break
  done
  timeout 30 rados -p vault rm _ready
  # Every placement group peered, not only the one _ready fell in: a
  # listing visits them all.
  for _ in $(seq 12); do
    timeout 15 rados -p vault ls >/dev/null 2>&1 && break
  done
}

[ $# -ge 2 ] || usage
dir=$(realpath -m "$2")
case "$1" in
  start) start_cluster "$dir" "${3:-memstore}" ;;
  stop) stop_cluster "$dir" ;;
  kill-osd) kill_osd "$dir" ;;
  start-osd) start_osd "$dir" ;;
  *) usage ;;
esac
