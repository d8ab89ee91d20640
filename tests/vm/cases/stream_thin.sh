# Issue 5 end to end on real LVM thin: a full stream from a thin snapshot,
# then an incremental from a second snapshot with the changed set computed
# by thin_delta (different/right_only -> --changes, left_only -> --discards),
# received into a vault, restored to other LVs in full and incrementally;
# every restore must equal its snapshot byte for byte.
. "$CBTD_SRC/tests/vm/lib.sh"

SEED=${CBTD_VM_SEED:-1}
VAULT=/tmp/vault
MIB=32
make_vg vs /dev/vda
lvcreate -q -L 96M -T vs/pool --chunksize 64k >/dev/null
lvcreate -q -V ${MIB}M -T vs/pool -n data >/dev/null
lvcreate -q -L ${MIB}M -n full vs >/dev/null
lvcreate -q -L ${MIB}M -n replica vs >/dev/null

# v1: random data with a hole (never written, reads as zeros).
rand_bytes "$SEED-a" $((MIB << 20)) > /tmp/a
dd if=/tmp/a of=/dev/vs/data bs=1M count=20 oflag=direct status=none
dd if=/tmp/a of=/dev/vs/data bs=1M skip=24 seek=24 oflag=direct status=none
lvcreate -q -s -n s1 vs/data >/dev/null
lvchange -q -ay -K vs/s1 >/dev/null

cbtctl send /dev/vs/s1 --host vm --volume data --version-id v1 --chunk-size 65536 |
  cbt-receiver receive --vault "$VAULT" --create
cbt-receiver versions --vault "$VAULT" --host vm --volume data --export-index v1 > /tmp/v1.idx

# Changes: scattered writes, some unaligned to the chunk grid, and a discard.
for i in 1 2 3 4 5 6; do
  off=$(( (SEED * 7919 + i * 104729) % ((MIB << 20) / 4096 - 8) ))
  rand_bytes "$SEED-w$i" 12288 | dd of=/dev/vs/data bs=4096 seek=$off oflag=direct status=none
done
blkdiscard -o $((4 << 20)) -l $((2 << 20)) /dev/vs/data
lvcreate -q -s -n s2 vs/data >/dev/null
lvchange -q -ay -K vs/s2 >/dev/null

# The changed set from the pool's metadata.
id1=$(lvs --noheadings -o thin_id vs/s1 | tr -d ' ')
id2=$(lvs --noheadings -o thin_id vs/s2 | tr -d ' ')
dmsetup message vs-pool-tpool 0 reserve_metadata_snap
trap 'dmsetup message vs-pool-tpool 0 release_metadata_snap || true' EXIT
thin_delta --metadata-snap -m /dev/mapper/vs-pool_tmeta --snap1 "$id1" --snap2 "$id2" > /tmp/delta.xml
dmsetup message vs-pool-tpool 0 release_metadata_snap
trap - EXIT
/usr/bin/python3 - /tmp/delta.xml /tmp/changes /tmp/discards <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
block = int(root.get("data_block_size")) * 512
with open(sys.argv[2], "w") as ch, open(sys.argv[3], "w") as dis:
    for e in root.iter():
        if e.tag in ("different", "right_only", "left_only"):
            line = f"{int(e.get('begin')) * block} {int(e.get('length')) * block}\n"
            (dis if e.tag == "left_only" else ch).write(line)
PY
log "changes: $(wc -l < /tmp/changes) extents, discards: $(cat /tmp/discards | tr '\n' ' ')"
[ -s /tmp/changes ] || fail "thin_delta reported no changes"
[ -s /tmp/discards ] || fail "thin_delta reported no discard (left_only)"

cbtctl send /dev/vs/s2 --base-index /tmp/v1.idx --changes /tmp/changes \
  --discards /tmp/discards --version-id v2 -o /tmp/s2.stream
stream_bytes=$(stat -c %s /tmp/s2.stream)
[ "$stream_bytes" -lt $((4 << 20)) ] || fail "incremental stream is $stream_bytes bytes: it sent far more than changed"
cbt-receiver receive --vault "$VAULT" --input /tmp/s2.stream --json > /tmp/r2.json
cat /tmp/r2.json

# Full restores to a thick LV, then incremental v1 -> v2 onto a replica.
cbt-receiver restore --vault "$VAULT" --host vm --volume data --version v2 --target /dev/vs/full --verify
assert_eq "$(hash_of /dev/vs/s2)" "$(hash_of /dev/vs/full)" "full restore of v2 equals snapshot s2"
cbt-receiver restore --vault "$VAULT" --host vm --volume data --version v1 --target /dev/vs/replica --state /tmp/replica.state
assert_eq "$(hash_of /dev/vs/s1)" "$(hash_of /dev/vs/replica)" "full restore of v1 equals snapshot s1"
cbt-receiver restore --vault "$VAULT" --host vm --volume data --version v2 --from v1 \
  --target /dev/vs/replica --state /tmp/replica.state --verify --json > /tmp/inc.json
cat /tmp/inc.json
assert_eq "$(hash_of /dev/vs/s2)" "$(hash_of /dev/vs/replica)" "incremental restore v1->v2 equals snapshot s2"
written=$(/usr/bin/python3 -c 'import json,sys; j=json.load(open("/tmp/inc.json")); print(j["chunks_written"] + j["chunks_zeroed"])')
[ "$written" -lt 64 ] || fail "incremental restore wrote $written chunks"
cbt-receiver verify --vault "$VAULT"
log "PASS: thin snapshots -> thin_delta -> stream -> vault -> restores equal the snapshots"
