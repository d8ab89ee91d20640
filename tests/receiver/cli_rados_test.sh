#!/bin/bash
# End-to-end through the programs with the vault on RADOS (docs/operations.md,
# "The vault on Ceph"): cbtctl send | cbt-receiver receive --vault
# rados:vault/NS, incremental, restore (full and incremental), verify,
# versions, prune, gc; a restore-only user reads; a missing cluster is
# UNAVAILABLE. Starts its own cluster (tests/ceph/ceph-cluster.sh), stopped
# on exit (and by the script's watchdog if this shell is killed).
# Usage: cli_rados_test.sh BIN_DIR
set -euo pipefail
B=$1
S=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/cbtd-cli-rados.XXXXXX")
C=$T/cluster
cleanup() {
  "$S/tests/ceph/ceph-cluster.sh" stop "$C" >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
CBTD_CEPH_OWNER_PID=$$ "$S/tests/ceph/ceph-cluster.sh" start "$C" > "$T/start.log" 2>&1 ||
  fail "cluster did not start: $(tail -20 "$T/start.log")"
R=(--vault rados:vault/e2e --ceph-conf "$C/ceph.conf" --ceph-user cbtd)
CH=65536

# v1: a 6 MiB image with a zero region; v2: two changed ranges.
head -c $((6 << 20)) /dev/urandom > "$T/img"
dd if=/dev/zero of="$T/img" bs=1M seek=2 count=1 conv=notrunc status=none
cp "$T/img" "$T/img.v1"
"$B/cbtctl" send "$T/img" --host h --volume d --version-id v1 --chunk-size $CH 2>/dev/null |
  "$B/cbt-receiver" receive "${R[@]}" --create > /dev/null || fail "receive v1"
"$B/cbt-receiver" versions "${R[@]}" --host h --volume d --export-index v1 > "$T/v1.idx"
dd if=/dev/urandom of="$T/img" bs=4096 seek=10 count=3 conv=notrunc status=none
dd if=/dev/urandom of="$T/img" bs=4096 seek=1000 count=1 conv=notrunc status=none
printf '%d %d\n%d 4096\n' $((10 * 4096)) $((3 * 4096)) $((1000 * 4096)) > "$T/changes"
"$B/cbtctl" send "$T/img" --version-id v2 --base-index "$T/v1.idx" --changes "$T/changes" \
  --host h --volume d -o "$T/s2" 2>/dev/null
"$B/cbt-receiver" receive "${R[@]}" --input "$T/s2" --json > "$T/r2.json"
grep -q '"chunk_records": 2' "$T/r2.json" || fail "v2 should carry exactly 2 chunks: $(cat "$T/r2.json")"

# Restores: full v1, then incremental v1 -> v2 on the same file.
"$B/cbt-receiver" restore "${R[@]}" --host h --volume d --version v1 --target "$T/replica" > /dev/null
cmp "$T/replica" "$T/img.v1" || fail "restored v1 differs"
"$B/cbt-receiver" restore "${R[@]}" --host h --volume d --version v2 --from v1 \
  --target "$T/replica" --verify > /dev/null
cmp "$T/replica" "$T/img" || fail "incremental restore v1->v2 differs"

# The same version again: refused (exit 3), named.
set +e
"$B/cbt-receiver" receive "${R[@]}" --input "$T/s2" 2> "$T/err"; rc=$?
set -e
[ $rc -eq 3 ] || fail "expected exit 3 for an existing version, got $rc: $(cat "$T/err")"
grep -q "h/d@v2 already exists" "$T/err" || fail "$(cat "$T/err")"

# A restore-only user (read caps) restores and verifies.
timeout 60 ceph -c "$C/ceph.conf" auth get-or-create client.restore mon 'allow r' \
  osd 'allow r pool=vault namespace=e2e' >> "$C/keyring"
RO=(--vault rados:vault/e2e --ceph-conf "$C/ceph.conf" --ceph-user restore)
"$B/cbt-receiver" restore "${RO[@]}" --host h --volume d --version v2 --target "$T/ro.img" > /dev/null ||
  fail "restore with read caps"
cmp "$T/ro.img" "$T/img" || fail "restore with read caps differs"
"$B/cbt-receiver" verify "${RO[@]}" > "$T/verify.out" || fail "verify with read caps: $(cat "$T/verify.out")"
grep -q "2 versions" "$T/verify.out" || fail "$(cat "$T/verify.out")"
set +e
"$B/cbt-receiver" gc "${RO[@]}" 2> "$T/err"; rc=$?
set -e
[ $rc -eq 3 ] || fail "gc with read caps: expected exit 3, got $rc"
grep -q "client.restore cannot write RADOS pool vault namespace e2e" "$T/err" || fail "$(cat "$T/err")"

# Prune v1 and GC: v2 still restores byte-equal and verifies.
"$B/cbt-receiver" prune "${R[@]}" --host h --volume d --keep-last 1 > "$T/prune.out"
grep -q "removed h/d@v1" "$T/prune.out" || fail "v1 not pruned: $(cat "$T/prune.out")"
set +e
"$B/cbt-receiver" restore "${R[@]}" --host h --volume d --version v1 --target "$T/gone" 2> "$T/err"; rc=$?
set -e
[ $rc -eq 6 ] || fail "restore of the pruned v1: expected exit 6, got $rc: $(cat "$T/err")"
"$B/cbt-receiver" gc "${R[@]}" --grace-seconds 0 > /dev/null || fail "gc"
"$B/cbt-receiver" restore "${R[@]}" --host h --volume d --version v2 --target "$T/after-gc" > /dev/null
cmp "$T/after-gc" "$T/img" || fail "v2 differs after prune and gc"
"$B/cbt-receiver" verify "${R[@]}" > /dev/null || fail "verify after gc"

# No cluster there: UNAVAILABLE (exit 5) within --ceph-op-timeout.
"$S/tests/ceph/ceph-cluster.sh" stop "$C" > /dev/null 2>&1
set +e
timeout 60 "$B/cbt-receiver" versions "${R[@]}" --ceph-op-timeout 3 2> "$T/err"; rc=$?
set -e
[ $rc -eq 5 ] || fail "no cluster: expected exit 5, got $rc: $(cat "$T/err")"
echo "cli_rados_test: ok"
