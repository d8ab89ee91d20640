#!/bin/bash
# End-to-end through the programs: cbtctl send | cbt-receiver receive,
# restore (full and incremental), verify, versions, and the exit codes.
# (Prune and gc are driven through the library in retention_test.cc.)
# Usage: cli_test.sh BIN_DIR
set -euo pipefail
B=$1
T=$(mktemp -d "${TMPDIR:-/tmp}/cbtd-cli-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
listing() { (cd "$T/vault" && find . -type f ! -path './locks/*' -exec sha256sum {} + | sort); }
CH=65536

# v1: a 6 MiB image with a zero region.
head -c $((6 << 20)) /dev/urandom > "$T/img"
dd if=/dev/zero of="$T/img" bs=1M seek=2 count=1 conv=notrunc status=none
cp "$T/img" "$T/img.v1"
"$B/cbtctl" send "$T/img" --host h --volume d --version-id v1 --chunk-size $CH 2>/dev/null |
  "$B/cbt-receiver" receive --vault "$T/vault" --create > /dev/null
"$B/cbt-receiver" versions --vault "$T/vault" --host h --volume d --export-index v1 > "$T/v1.idx"

# v2: two changed ranges, given as an extent file.
dd if=/dev/urandom of="$T/img" bs=4096 seek=10 count=3 conv=notrunc status=none
dd if=/dev/urandom of="$T/img" bs=4096 seek=1000 count=1 conv=notrunc status=none
printf '# offset length\n%d %d\n0x%x 4096\n' $((10 * 4096)) $((3 * 4096)) $((1000 * 4096)) > "$T/changes"
"$B/cbtctl" send "$T/img" --version-id v2 --base-index "$T/v1.idx" --changes "$T/changes" -o "$T/s2" 2>/dev/null
"$B/cbt-receiver" receive --vault "$T/vault" --input "$T/s2" --json > "$T/r2.json"
grep -q '"chunk_records": 2' "$T/r2.json" || fail "v2 should carry exactly 2 chunks: $(cat "$T/r2.json")"

# Full restore of v1 then incremental v1 -> v2 onto the same file.
"$B/cbt-receiver" restore --vault "$T/vault" --host h --volume d --version v1 --target "$T/replica" > /dev/null
cmp "$T/replica" "$T/img.v1" || fail "restored v1 differs"
"$B/cbt-receiver" restore --vault "$T/vault" --host h --volume d --version v2 --from v1 \
  --target "$T/replica" --verify --json > "$T/inc.json"
cmp "$T/replica" "$T/img" || fail "incremental restore v1->v2 differs from the source"
grep -q '"chunks_written": 2' "$T/inc.json" || fail "incremental restore wrote more than 2 chunks: $(cat "$T/inc.json")"

# A refused stream (same version again) exits 3 and changes nothing.
before=$(listing)
set +e
"$B/cbt-receiver" receive --vault "$T/vault" --input "$T/s2" 2> "$T/err"; rc=$?
set -e
[ $rc -eq 3 ] || fail "expected exit 3 for an existing version, got $rc"
grep -q "h/d@v2 already exists" "$T/err" || fail "message does not name the version: $(cat "$T/err")"
[ "$before" = "$(listing)" ] || fail "a refused receive changed the vault"

# A truncated stream exits 3, leaves no version.
"$B/cbtctl" send "$T/img" --version-id v3 --base-index "$T/v1.idx" --full 2>/dev/null | head -c 70000 > "$T/s3.cut" || true
set +e
"$B/cbt-receiver" receive --vault "$T/vault" --input "$T/s3.cut" 2> "$T/err"; rc=$?
set -e
[ $rc -eq 3 ] || fail "expected exit 3 for a truncated stream, got $rc"
grep -q truncated "$T/err" || fail "no 'truncated' in: $(cat "$T/err")"
"$B/cbt-receiver" versions --vault "$T/vault" --json | grep -q '"v3"' && fail "truncated stream left a version"

# Verify passes, then detects a damaged chunk (exit 4) naming the version.
"$B/cbt-receiver" verify --vault "$T/vault" > /dev/null || fail "verify failed on a sound vault"
victim=$(find "$T/vault/chunks" -type f -print -quit)
printf 'X' | dd of="$victim" bs=1 seek=40 conv=notrunc status=none
set +e
"$B/cbt-receiver" verify --vault "$T/vault" > "$T/verify.out"; rc=$?
set -e
[ $rc -eq 4 ] || fail "expected exit 4 from verify on damage, got $rc"
grep -q "DAMAGED h/d@v[12]: chunk object chunks/" "$T/verify.out" || fail "verify did not name the damaged version and chunk: $(cat "$T/verify.out")"
echo "cli_test: OK"
