#!/usr/bin/env bash
# The receiver is SIGKILLed in the middle of a network backup and started
# again: the vault verifies, the sender's retry completes the backup, and the
# restored bytes equal the source. Also: the receiver refuses --insecure on a
# non-loopback address. Usage: grpc_sigkill_test.sh BUILD/bin
set -euo pipefail
bin=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
server_pid=
send_pid=
cleanup() {
  [ -n "$send_pid" ] && kill "$send_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"

"$src/scripts/make-certs.sh" certs --host web1 >/dev/null
head -c 6000000 /dev/urandom >disk.img
port=$(( 20000 + RANDOM % 20000 ))

start_server() {
  "$bin/cbt-receiver" serve --vault vault --create --listen "127.0.0.1:$port" \
    --tls-cert certs/server.crt --tls-key certs/server.key \
    --client-ca certs/ca.crt >>serve.log 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do
    grep -q "serving" serve.log 2>/dev/null && return 0
    sleep 0.1
  done
  fail "receiver did not start: $(cat serve.log)"
}

start_server
# 6 MB at 1.5 MiB/s: about 4 s on the wire, so the kill lands mid-stream.
"$bin/cbtctl" send disk.img --to "localhost:$port" --tls-cert certs/web1.crt \
  --tls-key certs/web1.key --ca certs/ca.crt --version-id v1 \
  --chunk-size 65536 --bwlimit 1536K --no-progress >send.log 2>&1 &
send_pid=$!
sleep 1.5
kill -0 "$send_pid" 2>/dev/null || fail "send finished before the kill: $(cat send.log)"
kill -9 "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=
# Nothing was committed, and what is there verifies.
"$bin/cbt-receiver" versions --vault vault | grep -q "@v1" && fail "v1 exists after the kill"
"$bin/cbt-receiver" verify --vault vault >verify1.log 2>&1 || fail "vault does not verify after SIGKILL: $(cat verify1.log)"
sleep 0.5
start_server
for _ in $(seq 600); do kill -0 "$send_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$send_pid" 2>/dev/null && fail "sender still running after 60 s"
wait "$send_pid" || fail "sender failed: $(cat send.log)"
send_pid=
grep -q "committed web1/disk.img@v1" send.log || fail "no commit: $(cat send.log)"
[ "$("$bin/cbt-receiver" versions --vault vault | grep -c '@v1')" = 1 ] || fail "v1 not committed exactly once"
"$bin/cbt-receiver" verify --vault vault >verify2.log 2>&1 || fail "vault does not verify: $(cat verify2.log)"
"$bin/cbt-receiver" restore --vault vault --host web1 --volume disk.img \
  --version v1 --target restored.img >/dev/null
cmp disk.img restored.img || fail "restored bytes differ"

# An incremental over the network on the remote base: only changed chunks
# travel, and the restore of v2 equals the changed source.
printf 'changed bytes' | dd of=disk.img bs=1 seek=100000 conv=notrunc 2>/dev/null
echo "65536 65536" >changes.txt
"$bin/cbtctl" send disk.img --to "localhost:$port" --tls-cert certs/web1.crt \
  --tls-key certs/web1.key --ca certs/ca.crt --version-id v2 \
  --base-version v1 --changes changes.txt --no-progress >send2.log 2>&1 \
  || fail "incremental send failed: $(cat send2.log)"
grep -q "based on v1" send2.log || fail "not an incremental: $(cat send2.log)"
grep -q "sent 0.1 MiB" send2.log || fail "more than the changed chunk travelled: $(cat send2.log)"
"$bin/cbt-receiver" restore --vault vault --host web1 --volume disk.img \
  --version v2 --target restored2.img >/dev/null
cmp disk.img restored2.img || fail "restored v2 differs"

# Issue 13, fault 5: a sender SIGKILLed mid-stream does not lock its volume
# for the resume ttl: the next run of the same host takes the session over
# at once, and only its own data becomes the version.
head -c 6000000 /dev/urandom >disk3.img
send3() {
  "$bin/cbtctl" send disk3.img --to "localhost:$port" --tls-cert certs/web1.crt \
    --tls-key certs/web1.key --ca certs/ca.crt --volume disk3 --version-id v1 \
    --chunk-size 65536 --no-progress "$@"
}
send3 --bwlimit 1536K >send3.log 2>&1 &
send_pid=$!
sleep 1.5
kill -0 "$send_pid" 2>/dev/null || fail "send finished before the kill: $(cat send3.log)"
kill -9 "$send_pid"
wait "$send_pid" 2>/dev/null || true
send_pid=
printf 'after the kill' | dd of=disk3.img bs=1 seek=70000 conv=notrunc 2>/dev/null
start=$(date +%s)
send3 --retries 0 >send4.log 2>&1 || fail "the run after a killed sender failed: $(cat send4.log)"
[ $(( $(date +%s) - start )) -lt 30 ] || fail "the run after a killed sender took $(( $(date +%s) - start )) s"
[ "$("$bin/cbt-receiver" versions --vault vault --host web1 --volume disk3 | grep -c '@v1')" = 1 ] \
  || fail "disk3@v1 not committed exactly once"
"$bin/cbt-receiver" restore --vault vault --host web1 --volume disk3 \
  --version v1 --target restored3.img >/dev/null
cmp disk3.img restored3.img || fail "restored disk3 differs from the second run's source"

# Issue 13: a receiver that rejects the certificate is not retried, and
# --retries 0 means no retry.
"$src/scripts/make-certs.sh" other --host web1 >/dev/null
start=$(date +%s)
set +e
"$bin/cbtctl" send disk.img --to "localhost:$port" --tls-cert other/web1.crt \
  --tls-key other/web1.key --ca certs/ca.crt --version-id v9 --retries 0 \
  --no-progress >send5.log 2>&1
rc=$?
set -e
took=$(( $(date +%s) - start ))
[ $rc -eq 3 ] || fail "a rejected certificate: expected exit 3, got $rc: $(cat send5.log)"
[ $took -lt 15 ] || fail "a rejected certificate was retried for $took s: $(cat send5.log)"
grep -qi certificate send5.log || fail "the refusal does not name the certificate: $(cat send5.log)"

# Plaintext only on loopback.
if "$bin/cbt-receiver" serve --vault vault --listen "0.0.0.0:$port" --insecure 2>err.log; then
  fail "insecure serve on 0.0.0.0 was accepted"
fi
grep -q loopback err.log || fail "refusal does not explain: $(cat err.log)"
echo "PASS (sender log:)"; cat send.log
