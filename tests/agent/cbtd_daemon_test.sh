#!/bin/bash
# The real cbtd and cbtctl binaries on a temp config: --check-config, start,
# the control socket's mode, a run that fails cleanly (a file cannot be
# snapshotted), SIGHUP with a broken config, SIGTERM, metrics. Usage: BIN_DIR.
set -u
bin=$1
tmp=$(mktemp -d /tmp/cbtd-daemon-XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- cbtd log"; cat "$tmp/log" 2>/dev/null; exit 1; }
expect_exit() {  # expect_exit CODE CMD...
  local want=$1; shift
  "$@" >"$tmp/out" 2>&1
  local got=$?
  [[ $got == "$want" ]] || fail "'$*' exited $got, want $want: $(cat "$tmp/out")"
}

truncate -s 1M "$tmp/disk"
cat >"$tmp/cbtd.conf" <<CONF
[agent]
state_dir = $tmp
socket = $tmp/run/cbtd.sock
metrics_file = $tmp/cbtd.prom
[receiver]
address = unix:/run/cbt-receiver.sock
[volume.disk]
path = $tmp/disk
CONF
mkdir -m 0700 "$tmp/run"
ctl=("$bin/cbtctl")
sock=(--socket "$tmp/run/cbtd.sock")

# --check-config: OK, then a missing device named with its line.
expect_exit 0 "$bin/cbtd" --check-config -c "$tmp/cbtd.conf"
sed "s|path = $tmp/disk|path = $tmp/missing|" "$tmp/cbtd.conf" >"$tmp/bad.conf"
expect_exit 2 "$bin/cbtd" --check-config -c "$tmp/bad.conf"
grep -q "bad.conf:8: volume 'disk': stat $tmp/missing" "$tmp/out" ||
  fail "check-config did not name line 8: $(cat "$tmp/out")"

"$bin/cbtd" -c "$tmp/cbtd.conf" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do [[ -S $tmp/run/cbtd.sock ]] && break; sleep 0.05; done
[[ -S $tmp/run/cbtd.sock ]] || fail "no socket"
[[ $(stat -c %a "$tmp/run/cbtd.sock") == 600 ]] || fail "socket mode"

expect_exit 0 "${ctl[@]}" status "${sock[@]}"
grep -q "1 in 0 group" "$tmp/out" || fail "status: $(cat "$tmp/out")"
# An image file is snapshotted by a reflink copy. Where /tmp makes none
# (ext4, tmpfs), the run fails at its first step, saying why and what to
# set; where it does (XFS, btrfs), at the send, to a receiver that is not
# there. Either way no copy is left next to the image.
expect_exit 1 "${ctl[@]}" backup disk --wait "${sock[@]}"
grep -Eq "consistency point failed: volume 'disk': the filesystem of $tmp/disk cannot make reflink copies .*set snapshot = none|cbt-receiver.sock" "$tmp/out" ||
  fail "backup: $(cat "$tmp/out")"
ls -a "$tmp" | grep -q '^\.disk\.cbtd-' && fail "a reflink copy was left: $(ls -a "$tmp")"
expect_exit 3 "${ctl[@]}" backup nope "${sock[@]}"
expect_exit 0 "${ctl[@]}" runs --json "${sock[@]}"
grep -q '"step":"consistency-point"' "$tmp/out" || fail "runs: $(cat "$tmp/out")"

# A relative --target is relative to cbtctl's directory, not cbtd's: here
# it names the volume's own image, which a restore must not overwrite.
(cd "$tmp" && exec "${ctl[@]}" restore disk --version v1 --target disk "${sock[@]}") >"$tmp/out" 2>&1
rc=$?
[[ $rc == 3 ]] && grep -q "$tmp/disk is volume 'disk'" "$tmp/out" ||
  fail "relative --target: exit $rc: $(cat "$tmp/out")"

# A non-root user is refused by the socket's mode.
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
  chmod 0755 "$tmp" "$tmp/run"
  expect_exit 3 setpriv --reuid=65534 --regid=65534 --clear-groups \
    "${ctl[@]}" status "${sock[@]}"
  grep -q "permission denied" "$tmp/out" || fail "non-root: $(cat "$tmp/out")"
fi

# SIGHUP with a broken file keeps the running config.
cp "$tmp/cbtd.conf" "$tmp/good.conf"
echo "nonsense line" >>"$tmp/cbtd.conf"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "reload refused" "$tmp/log" && break; sleep 0.05; done
grep -q "reload refused" "$tmp/log" || fail "bad reload not refused"
expect_exit 0 "${ctl[@]}" volumes "${sock[@]}"

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[[ $rc == 0 ]] || fail "cbtd exited $rc on SIGTERM"
[[ ! -e $tmp/run/cbtd.sock ]] || fail "socket left behind"
grep -q 'cbtd_run_failures_total{volume="disk"} 1' "$tmp/cbtd.prom" ||
  fail "metrics: $(cat "$tmp/cbtd.prom")"
expect_exit 5 "${ctl[@]}" status "${sock[@]}"
echo PASS
