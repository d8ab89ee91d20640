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
# Damage one byte for sure: invert it (writing a fixed byte leaves it
# unchanged when the file already holds that byte there, 1 time in 256).
flip_byte() {  # flip_byte FILE OFFSET
  python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xFF]))' "$1" "$2"
}
# The vault's files and their bytes; not locks/ nor the chunk index's -shm
# (SQLite's shared memory, rewritten by every reader) and -wal (truncated
# to nothing when the last connection closes: its content is in the index).
listing() {
  (cd "$T/vault" && find . -type f ! -path './locks/*' ! -name '*-shm' ! -name '*-wal' \
    -exec sha256sum {} + | sort)
}
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

# The documented restore without cbtd (docs/vault.md) reads the same bytes
# (from a copy: its read-only SQLite connection leaves journal files).
cp -a "$T/vault" "$T/vault-py"
python3 "$(dirname "$0")/../../scripts/restore-without-cbtd.py" "$T/vault-py" h d v2 "$T/py.img" ||
  fail "restore-without-cbtd.py failed"
cmp "$T/py.img" "$T/img" || fail "restore-without-cbtd.py restored other bytes"

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

# Issue 13: an error says "no version was created" once, not twice.
count=$(grep -o "no version was created" "$T/err" | wc -l)
[ "$count" = 1 ] || fail "'no version was created' said $count times: $(cat "$T/err")"

# ... and so does an error before the stream is read (found by the full-disk
# case of crash_campaign.py: a vault whose chunk index cannot be opened).
for args in "--vault $T/vault --input $T/no-such-stream" "--vault $T/no-such-vault --input $T/s2"; do
  set +e
  "$B/cbt-receiver" receive $args 2> "$T/err"; rc=$?
  set -e
  [ $rc -eq 6 ] || fail "receive $args: expected exit 6, got $rc: $(cat "$T/err")"
  grep -q "\[no version was created\]$" "$T/err" || fail "receive $args: the error does not say what became of the version: $(cat "$T/err")"
done

# Issue 13, fault 2: bytes after the trailer (garbage, a second stream) are
# refused before the commit: exit 3, no version, the reason named; the clean
# stream then commits.
"$B/cbtctl" send "$T/img" --version-id v4 --base-index "$T/v1.idx" --changes "$T/changes" -o "$T/s4" 2>/dev/null
printf 'garbage' | cat "$T/s4" - > "$T/s4.garbage"
cat "$T/s4" "$T/s4" > "$T/s4.twice"
for f in s4.garbage s4.twice; do
  set +e
  "$B/cbt-receiver" receive --vault "$T/vault" --input "$T/$f" 2> "$T/err"; rc=$?
  set -e
  [ $rc -eq 3 ] || fail "$f: expected exit 3, got $rc: $(cat "$T/err")"
  grep -q "after its trailer" "$T/err" || fail "$f: reason not named: $(cat "$T/err")"
  "$B/cbt-receiver" versions --vault "$T/vault" --json | grep -q '"v4"' && fail "$f: v4 was committed though the receive failed"
done
"$B/cbt-receiver" receive --vault "$T/vault" --input "$T/s4" > /dev/null || fail "the clean stream v4 was refused"

# Issue 13, fault 3: one flipped byte in the header's volume name is refused
# (header checksum), the vault unchanged.
head -c 65536 "$T/img" > "$T/small"
"$B/cbtctl" send "$T/small" --host h --volume flipvol --version-id f1 --chunk-size $CH -o "$T/s5" 2>/dev/null
at=$(grep -oba flipvol "$T/s5" | head -1 | cut -d: -f1)
printf 'g' | dd of="$T/s5" bs=1 seek="$at" conv=notrunc status=none
before=$(listing)
set +e
"$B/cbt-receiver" receive --vault "$T/vault" --input "$T/s5" 2> "$T/err"; rc=$?
set -e
[ $rc -eq 3 ] || fail "flipped volume name: expected exit 3, got $rc: $(cat "$T/err")"
grep -q "header checksum" "$T/err" || fail "flipped volume name: $(cat "$T/err")"
[ "$before" = "$(listing)" ] || fail "a stream with a flipped header byte changed the vault"

# Issue 13, fault 4: unknown names are "not found" (exit 6), never success
# and never damage.
expect_rc() {  # expect_rc CODE WHAT -- command...
  local want=$1 what=$2; shift 3
  set +e
  "$@" > "$T/out" 2> "$T/err"; local rc=$?
  set -e
  [ $rc -eq "$want" ] || fail "$what: expected exit $want, got $rc: $(cat "$T/out" "$T/err")"
}
expect_rc 6 "verify of an unknown host" -- "$B/cbt-receiver" verify --vault "$T/vault" --host TYPO --volume d
grep -q "not found\|does not exist\|no versions" "$T/err" || fail "verify of an unknown host: $(cat "$T/err")"
expect_rc 6 "verify of an unknown volume" -- "$B/cbt-receiver" verify --vault "$T/vault" --host h --volume TYPO
expect_rc 6 "verify of an unknown version" -- "$B/cbt-receiver" verify --vault "$T/vault" --host h --volume d --version NOSUCH
grep -q DAMAGED "$T/out" && fail "an unknown version was reported as damaged"
# ... and a restore of an unknown version leaves nothing new behind.
expect_rc 6 "restore of an unknown version" -- "$B/cbt-receiver" restore --vault "$T/vault" --host h --volume d --version NOSUCH --target "$T/new.img"
[ -e "$T/new.img" ] && fail "restore of an unknown version left $T/new.img"
[ -e "$T/new.img.cbtd-state" ] && fail "restore of an unknown version left a state file"

# Issue 13: an invalid name is reported naming the argument.
expect_rc 2 "versions --host ../.." -- "$B/cbt-receiver" versions --vault "$T/vault" --host ../.. --volume d
grep -q -- "--host" "$T/err" || fail "invalid --host not named: $(cat "$T/err")"
expect_rc 2 "verify --volume a/b" -- "$B/cbt-receiver" verify --vault "$T/vault" --host h --volume a/b
grep -q -- "--volume" "$T/err" || fail "invalid --volume not named: $(cat "$T/err")"
expect_rc 2 "restore --version ../x" -- "$B/cbt-receiver" restore --vault "$T/vault" --host h --volume d --version ../x --target "$T/new.img"
grep -q -- "--version" "$T/err" || fail "invalid --version not named: $(cat "$T/err")"
# ... and at the sender, before a byte is read, naming the argument.
for args in "--host a/b" "--volume ../x" "--version-id .hidden" "--volume $(printf 'v%.0s' $(seq 129))"; do
  expect_rc 2 "cbtctl send $args" -- "$B/cbtctl" send "$T/img" --full $args -o "$T/bad.stream"
  grep -q "invalid ${args%% *} '" "$T/err" || fail "cbtctl send $args: $(cat "$T/err")"
done
grep -q "object key" "$T/err" && fail "the error speaks of object keys: $(cat "$T/err")"

# Verify passes, then detects a damaged chunk (exit 4) naming the version.
"$B/cbt-receiver" verify --vault "$T/vault" > /dev/null || fail "verify failed on a sound vault"
# A pack's first record starts at byte 16, its payload at byte 36.
victim=$(find "$T/vault/tenants/h/packs" -name '*.pack' -print -quit)
flip_byte "$victim" 40
set +e
"$B/cbt-receiver" verify --vault "$T/vault" > "$T/verify.out"; rc=$?
set -e
[ $rc -eq 4 ] || fail "expected exit 4 from verify on damage, got $rc"
grep -q "DAMAGED h/d@v[12]: chunk [0-9a-f]* in pack tenants/h/packs/" "$T/verify.out" || fail "verify did not name the damaged version and chunk: $(cat "$T/verify.out")"

# Issue 13: verify reports every damaged chunk of a version, not the first.
"$B/cbtctl" send "$T/img.v1" --host h --volume d --version-id v1 --chunk-size $CH 2>/dev/null |
  "$B/cbt-receiver" receive --vault "$T/vault2" --create > /dev/null
# The first three records of the pack, from its footer (docs/vault.md).
pack=$(find "$T/vault2/tenants/h/packs" -name '*.pack' -print -quit)
for at in $(python3 -c '
import struct, sys
p = open(sys.argv[1], "rb").read()
n = struct.unpack_from("<I", p, len(p) - 20)[0]
foot = len(p) - 20 - 44 * n
for i in range(3):
    off, length = struct.unpack_from("<QI", p, foot + 44 * i + 32)
    print(off + length // 2)' "$pack"); do
  flip_byte "$pack" "$at"
done
set +e
"$B/cbt-receiver" verify --vault "$T/vault2" > "$T/verify.out"; rc=$?
set -e
[ $rc -eq 4 ] || fail "expected exit 4 from verify on damage, got $rc"
lines=$(grep -c "^DAMAGED h/d@v1: " "$T/verify.out" || true)
[ "$lines" = 3 ] || fail "verify named $lines of the 3 damaged chunks: $(cat "$T/verify.out")"
# Encryption: a key, an encrypted full, the key on every listing line, a
# restore that needs the key, verify without it says what it checked.
"$B/cbtctl" key create --key-file "$T/keys/e.key" > /dev/null
fp=$(grep '^fingerprint ' "$T/keys/e.key" | cut -d' ' -f2)
"$B/cbtctl" send "$T/img.v1" --host e --volume d --version-id v1 --chunk-size $CH \
  --key-file "$T/keys/e.key" 2>/dev/null |
  "$B/cbt-receiver" receive --vault "$T/vault" > /dev/null
"$B/cbt-receiver" versions --vault "$T/vault" | grep -q "^e/d@v1 .* key $fp" ||
  fail "versions does not show the key: $("$B/cbt-receiver" versions --vault "$T/vault")"
"$B/cbt-receiver" versions --vault "$T/vault" | grep -q "^h/d@v1 .* encryption none" ||
  fail "versions does not mark plaintext versions"
set +e
"$B/cbt-receiver" restore --vault "$T/vault" --host e --volume d --version v1 --target "$T/enc" 2> "$T/err"; rc=$?
set -e
[ $rc -eq 3 ] || fail "expected exit 3 restoring without the key, got $rc"
grep -q "encrypted with key $fp: give --key-file" "$T/err" || fail "no key: $(cat "$T/err")"
[ ! -e "$T/enc" ] || fail "a refused restore left its target"
"$B/cbt-receiver" restore --vault "$T/vault" --host e --volume d --version v1 --target "$T/enc" \
  --key-file "$T/keys/e.key" --verify > /dev/null
cmp "$T/enc" "$T/img.v1" || fail "encrypted restore differs"
"$B/cbt-receiver" verify --vault "$T/vault" --host e --volume d | grep -q "give --key-file for full verification" ||
  fail "verify without the key does not say it checked checksums only"
"$B/cbt-receiver" verify --vault "$T/vault" --host e --volume d --key-file "$T/keys/e.key" > "$T/verify.out"
grep -q "checksums only" "$T/verify.out" && fail "verify with the key still checked checksums only"
# A restore to /dev/null reads and checks every chunk and keeps nothing:
# it passes on a sound version, fails on a damaged one, refuses --verify.
"$B/cbt-receiver" restore --vault "$T/vault" --host e --volume d --version v1 --target /dev/null \
  --key-file "$T/keys/e.key" --json > "$T/null.json"
grep -q '"ok": true' "$T/null.json" || fail "restore to /dev/null: $(cat "$T/null.json")"
expect_rc 4 "restore of a damaged version to /dev/null" -- "$B/cbt-receiver" restore --vault "$T/vault2" --host h --volume d --version v1 --target /dev/null
expect_rc 2 "restore --verify to /dev/null" -- "$B/cbt-receiver" restore --vault "$T/vault" --host e --volume d --version v1 --target /dev/null --verify --key-file "$T/keys/e.key"
[ -c /dev/null ] || fail "a restore replaced /dev/null"
# Tenants (issue 14): two hosts assigned to one tenant dedup against each
# other; refused assignments exit 3 and change nothing; list shows them.
TV="$T/tv"
tv_packs() { (cd "$TV" && find tenants -name '*.pack' -exec sha256sum {} + | sort); }
tv_listing() { (cd "$TV" && find . -type f ! -path './locks/*' ! -path './index/*' -exec sha256sum {} + | sort); }
"$B/cbt-receiver" tenant assign --vault "$TV" --create --host web1 --tenant acme > /dev/null
"$B/cbt-receiver" tenant assign --vault "$TV" --host web2 --tenant acme > "$T/out"
grep -q "host web2 is now in tenant acme" "$T/out" || fail "assign: $(cat "$T/out")"
"$B/cbtctl" send "$T/img.v1" --host web1 --volume d --version-id t1 --chunk-size $CH 2>/dev/null |
  "$B/cbt-receiver" receive --vault "$TV" > /dev/null
packs=$(tv_packs)
"$B/cbtctl" send "$T/img.v1" --host web2 --volume d --version-id t1 --chunk-size $CH 2>/dev/null |
  "$B/cbt-receiver" receive --vault "$TV" --json > "$T/t2.json"
grep -q '"stored_bytes": 0' "$T/t2.json" || fail "web2 stored chunks acme holds: $(cat "$T/t2.json")"
[ "$packs" = "$(tv_packs)" ] || fail "web2's receive wrote packs though acme held every chunk"
"$B/cbt-receiver" restore --vault "$TV" --host web2 --volume d --version t1 --target "$T/web2.img" > /dev/null
cmp "$T/web2.img" "$T/img.v1" || fail "web2's restore differs"
cp -a "$TV" "$T/tv-py"  # the documented restore without cbtd follows the assignment
python3 "$(dirname "$0")/../../scripts/restore-without-cbtd.py" "$T/tv-py" web2 d t1 "$T/web2-py.img" ||
  fail "restore-without-cbtd.py failed for a grouped host"
cmp "$T/web2-py.img" "$T/img.v1" || fail "restore-without-cbtd.py restored other bytes for web2"
"$B/cbtctl" send "$T/small" --host solo --volume d --version-id s1 --chunk-size $CH 2>/dev/null |
  "$B/cbt-receiver" receive --vault "$TV" > /dev/null
before=$(tv_listing)
expect_rc 3 "assign of an assigned host" -- "$B/cbt-receiver" tenant assign --vault "$TV" --host web1 --tenant globex
grep -q "already assigned to tenant 'acme'" "$T/err" || fail "assign web1: $(cat "$T/err")"
expect_rc 3 "assign of a host with versions" -- "$B/cbt-receiver" tenant assign --vault "$TV" --host solo --tenant acme
grep -q "host 'solo' already has 1 versions" "$T/err" || fail "assign solo: $(cat "$T/err")"
expect_rc 3 "joining a tenant with chunks" -- "$B/cbt-receiver" tenant assign --vault "$TV" --host web3 --tenant acme
grep -q -- "--join-existing" "$T/err" || fail "assign web3: $(cat "$T/err")"
expect_rc 2 "assign --tenant a/b" -- "$B/cbt-receiver" tenant assign --vault "$TV" --host web3 --tenant a/b
grep -q -- "--tenant" "$T/err" || fail "invalid --tenant not named: $(cat "$T/err")"
[ "$before" = "$(tv_listing)" ] || fail "a refused assignment changed the vault"
"$B/cbt-receiver" tenant assign --vault "$TV" --host web3 --tenant acme --join-existing > /dev/null
"$B/cbt-receiver" tenant assign --vault "$TV" --host web3 --tenant acme > "$T/out"
grep -q "host web3 was already in tenant acme" "$T/out" || fail "re-assign: $(cat "$T/out")"
"$B/cbt-receiver" tenant list --vault "$TV" --json > "$T/tenants.json"
python3 - "$T/tenants.json" <<'PY' || fail "tenant list: $(cat "$T/tenants.json")"
import json, sys
t = {x["tenant"]: x for x in json.load(open(sys.argv[1]))}
assert sorted(t) == ["acme", "solo"], t
assert [h["host"] for h in t["acme"]["hosts"]] == ["web1", "web2", "web3"], t
assert t["acme"]["packs"] > 0 and t["solo"]["hosts"] == [{"host": "solo", "assigned": False}], t
PY
echo "cli_test: OK"
