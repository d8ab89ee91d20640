# Runs inside the VM rig (bench/run.sh --vm): the kernel-side costs of
# changed-block tracking, on real dm-thin, dm-snapshot and dm-era.
#  1. Time to compute the changed set of a thin volume with 1% changed:
#     thin-delta (pool metadata only) against hash (read and hash the whole
#     new snapshot, compare with the previous digests), on two volume sizes.
#  2. Write cost of what tracking keeps between runs, against a plain LV:
#     a COW snapshot (cow-table), a dm-era stack (era), and, for context, a
#     thin snapshot (thin-delta). fio, direct I/O: 4 KiB random writes and
#     1 MiB sequential writes, each to blocks not yet written since the
#     snapshot / checkpoint (the expensive first write).
#  3. A thin full reads only what the pool maps: cbtd's first backup of a
#     16 GiB thin LV with 2 GiB written (64 MiB pieces spread over it), to
#     a cbt-receiver; bytes read against the pool's mapped bytes.
# The guest is qemu TCG: absolute numbers are slow, ratios are the result.
# Prints one line "BENCH_JSON {...}" with every figure.
# Arguments KEY=VALUE set the BENCH_VM_* knobs below (run-vm.sh passes no
# environment of its own).
. "$CBTD_SRC/tests/vm/lib.sh"
for a in "$@"; do
  case "$a" in
    BENCH_VM_*=*) export "${a?}" ;;
    *) fail "unknown argument $a" ;;
  esac
done
CBTCTL="$CBTD_BIN/cbtctl"
SIZES=${BENCH_VM_SIZES:-128 512}   # MiB, thin volumes for part 1
RAND_MB=${BENCH_VM_RAND_MB:-16}    # 4 KiB random writes per fio run
SEQ_MB=${BENCH_VM_SEQ_MB:-128}     # 1 MiB sequential writes per fio run
REPEAT=${BENCH_VM_REPEAT:-2}
PARTS=${BENCH_VM_PARTS:-1 2 3}     # which parts to run
THIN_FULL_GIB=${BENCH_VM_THIN_FULL_GIB:-16}      # part 3: virtual size
THIN_MAPPED_MIB=${BENCH_VM_THIN_MAPPED_MIB:-2048}  # part 3: written
want() { [[ " $PARTS " == *" $1 "* ]]; }
out=/tmp/bench.jsonl
: > "$out"
emit() { echo "$1" >> "$out"; }

make_vg bv /dev/vda
if want 1 || want 2; then
  lvcreate -q -L 1200M -T bv/pool --chunksize 64k >/dev/null
fi

# fill PATH MIB: non-zero data everywhere (every thin block mapped).
fill() {
  # yes ends on SIGPIPE once head has enough.
  { yes "cbtd vm bench $1" || true; } | head -c "$(( $2 * 1048576 ))" |
    dd of="$1" bs=1M iflag=fullblock oflag=direct status=none
}

# change PATH SEED: 64 KiB writes at random 64 KiB-aligned offsets covering
# 1% of the device.
change() {
  python3 - "$1" "$2" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
size = os.lseek(fd, 0, 2)
r = random.Random(int(sys.argv[2]))
blocks = r.sample(range(size // 65536), max(1, size // 100 // 65536))
import mmap
buf = mmap.mmap(-1, 65536)
for b in blocks:
    buf[:] = r.randbytes(65536)
    os.pwritev(fd, [buf], b * 65536)
os.fsync(fd)
print(len(blocks) * 65536)
PY
}

# timed NAME CMD...: runs CMD, emits wall/user/sys seconds.
timed() {
  local name=$1
  shift
  /usr/bin/time -f '%e %U %S' -o /tmp/time.txt "$@" > /tmp/timed.out
  read -r wall user sys < /tmp/time.txt
  log "  $name: ${wall}s wall (${user}s user, ${sys}s sys)"
  emit "{\"part\":\"changed_set\",\"case\":\"$name\",\"wall_s\":$wall,\"user_s\":$user,\"sys_s\":$sys}"
}

snap() { lvcreate -q -s -n "$2" "bv/$1" >/dev/null; lvchange -q -ay -K "bv/$2" >/dev/null; }

want 1 && log "part 1: changed set of a thin volume with 1% changed"
want 1 && for mib in $SIZES; do
  log " ${mib} MiB thin volume: fill, snapshot, hash, change 1%, snapshot"
  lvcreate -q -V "${mib}M" -T bv/pool -n "t$mib" >/dev/null
  fill "/dev/bv/t$mib" "$mib"
  snap "t$mib" "t${mib}s1"
  "$CBTCTL" changes "/dev/bv/t${mib}s1" --method hash --chunk-bytes 65536 \
    --save-hashes /tmp/h1 --json > /dev/null
  changed=$(change "/dev/bv/t$mib" "$mib")
  snap "t$mib" "t${mib}s2"
  sync
  echo 3 > /proc/sys/vm/drop_caches
  timed "thin-delta-${mib}M" "$CBTCTL" changes "bv/t$mib" --method thin-delta \
    --base "bv/t${mib}s1" --new "bv/t${mib}s2" --json
  td=$(python3 -c 'import json;print(json.load(open("/tmp/timed.out"))["changed_bytes"])')
  echo 3 > /proc/sys/vm/drop_caches
  timed "hash-${mib}M" "$CBTCTL" changes "/dev/bv/t${mib}s2" --method hash \
    --chunk-bytes 65536 --previous-hashes /tmp/h1 --json
  hb=$(python3 -c 'import json;print(json.load(open("/tmp/timed.out"))["changed_bytes"])')
  log "  ${mib} MiB: written $changed, thin-delta reports $td, hash reports $hb"
  [ "$td" -ge "$changed" ] || fail "thin-delta reported $td < $changed written"
  assert_eq "$changed" "$hb" "hash must report exactly the written 64 KiB blocks"
  emit "{\"part\":\"changed_set_bytes\",\"size_mib\":$mib,\"written\":$changed,\"thin_delta\":$td,\"hash\":$hb}"
  lvremove -q -y "bv/t${mib}s1" "bv/t${mib}s2" "bv/t$mib" >/dev/null
done

# fio_write NAME DEV: 4 KiB random and 1 MiB sequential direct writes over
# the first 128 MiB of DEV.
fio_write() {
  local name=$1 dev=$2 rw bs mb
  for spec in "randwrite 4k $RAND_MB" "write 1M $SEQ_MB"; do
    read -r rw bs mb <<< "$spec"
    fio --name=w --filename="$dev" --rw="$rw" --bs="$bs" --size=128M \
      --io_size="${mb}M" --direct=1 --ioengine=psync --randrepeat=1 \
      --norandommap --output-format=json > /tmp/fio.json
    python3 - "$name" "$rw" /tmp/fio.json >> "$out" <<'PY'
import json, sys
w = json.load(open(sys.argv[3]))["jobs"][0]["write"]
print(json.dumps({"part": "write_cost", "case": sys.argv[1], "rw": sys.argv[2],
                  "iops": round(w["iops"], 1),
                  "mib_s": round(w["bw_bytes"] / 1048576, 2),
                  "lat_mean_us": round(w["lat_ns"]["mean"] / 1000, 1)}))
PY
    log "  $name $rw: $(tail -n 1 "$out")"
  done
}

part2() {
log "part 2: write cost of tracking"
lvcreate -q -L 256M -n plain bv >/dev/null
lvcreate -q -L 16M -n erameta bv >/dev/null
lvcreate -q -V 256M -T bv/pool -n thin >/dev/null
fill /dev/bv/plain 256
fill /dev/bv/thin 256
for rep in $(seq 1 "$REPEAT"); do
  log "repetition $rep"
  fio_write plain /dev/bv/plain
  # cow-table keeps the last run's COW snapshot (4 KiB chunks, as cbtd's
  # default); every first write to a chunk copies it into the store.
  lvcreate -q -s -L 300M --chunksize 4k -n cow bv/plain >/dev/null
  fio_write cow-snapshot /dev/bv/plain
  lvremove -q -y bv/cow >/dev/null
  "$CBTCTL" era-stack create bera --origin /dev/bv/plain \
    --metadata /dev/bv/erameta --registry /tmp/era-stacks --force >/dev/null
  fio_write era-stack /dev/mapper/bera
  "$CBTCTL" era-stack remove bera
  fio_write thin /dev/bv/thin
  snap thin thins
  fio_write thin-snapshot /dev/bv/thin
  lvremove -q -y bv/thins >/dev/null
done
}
want 2 && part2

# part 3: cbtd's first backup of a sparse thin LV, to a receiver.
part3() {
  local gib=$THIN_FULL_GIB mib=$THIN_MAPPED_MIB pieces stride k
  log "part 3: thin full of a $gib GiB thin LV with $mib MiB written"
  # Under cbtd's 80 % limit for snapshots once the data is written.
  lvcreate -q -L "$((mib * 5 / 4 + 512))M" -T bv/pool3 --chunksize 64k >/dev/null
  lvcreate -q -V "${gib}G" -T bv/pool3 -n big >/dev/null
  pieces=$((mib / 64))
  stride=$((gib * 1024 / pieces))  # MiB between the pieces
  for k in $(seq 0 $((pieces - 1))); do
    { yes "cbtd vm bench piece $k" || true; } | head -c $((64 << 20)) |
      dd of=/dev/bv/big bs=1M seek=$((k * stride)) iflag=fullblock \
        oflag=direct status=none
  done
  sync
  "$CBTD_SRC/scripts/make-certs.sh" /tmp/certs --host vmhost >/dev/null
  cbt-receiver serve --vault /tmp/vault --create --listen 127.0.0.1:7443 \
    --tls-cert /tmp/certs/server.crt --tls-key /tmp/certs/server.key \
    --client-ca /tmp/certs/ca.crt > /tmp/receiver.log 2>&1 &
  local receiver=$!
  mkdir -p /run/cbtd /tmp/cbtd-state && chmod 700 /run/cbtd
  cat > /tmp/cbtd.conf <<CONF
[agent]
state_dir = /tmp/cbtd-state
socket = /run/cbtd/cbtd.sock
key_file = /tmp/cbtd.key

[receiver]
address = 127.0.0.1:7443
ca_file = /tmp/certs/ca.crt
cert_file = /tmp/certs/vmhost.crt
key_file = /tmp/certs/vmhost.key

[volume.big]
path = /dev/bv/big
method = thin-delta
CONF
  cbtd --config /tmp/cbtd.conf > /tmp/cbtd.log 2>&1 &
  local cbtd=$!
  for _ in $(seq 1 100); do cbtctl status >/dev/null 2>&1 && break; sleep 0.2; done
  /usr/bin/time -f '%e' -o /tmp/time.txt cbtctl backup big --wait --json \
    > /tmp/runs.json || { cat /tmp/runs.json; tail -20 /tmp/cbtd.log; fail "thin full failed"; }
  local wall got snap mapped
  wall=$(cat /tmp/time.txt)
  got=$(python3 -c 'import json;print(json.load(open("/tmp/runs.json"))["runs"][0]["bytes_read"])')
  snap=$(cbtctl volumes --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["volumes"][0]["base_snapshot"])')
  mapped=$(lvs --noheadings --units b --nosuffix -o lv_size,data_percent "$snap" |
    awk '{ printf "%d", $1 * $2 / 100 }')
  log "  thin full: read $got bytes in ${wall}s; the pool maps $mapped of $((gib << 30))"
  emit "{\"part\":\"thin_full\",\"size_bytes\":$((gib << 30)),\"written_bytes\":$((pieces << 26)),\"mapped_bytes\":$mapped,\"bytes_read\":$got,\"wall_s\":$wall}"
  [ "$got" -le $((mapped * 11 / 10)) ] || fail "thin full read $got bytes, $mapped mapped"
  [ "$got" -ge $((mapped * 9 / 10)) ] || fail "thin full read $got bytes, less than the $mapped mapped"
  kill "$cbtd" "$receiver"
  wait "$cbtd" "$receiver" 2>/dev/null || true
}
want 3 && part3

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("BENCH_JSON " + json.dumps(rows))
PY
log "PASS"
