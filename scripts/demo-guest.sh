# The demo's story, run inside the VM by scripts/demo.sh: real LVM thin
# volumes, a consistency group, a vault, a full backup,
# changes, an incremental that reads only what thin-delta reports, a restore
# of the older version compared with its snapshot, and a vault verify.
. "$CBTD_SRC/tests/vm/lib.sh"

step() { printf '\n=== %s\n' "$*"; }
json_get() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

step "Two volumes on LVM thin: 'data' with ext4 and files, 'vmdisk' raw (a VM's disk)"
make_vg demo /dev/vda
lvcreate -q -L 400M -T demo/pool >/dev/null
lvcreate -q -V 128M -T demo/pool -n data >/dev/null
lvcreate -q -V 64M -T demo/pool -n vmdisk >/dev/null
mkfs.ext4 -q /dev/demo/data
mkdir -p /mnt/data
mount /dev/demo/data /mnt/data
for i in 1 2 3 4; do rand_bytes "file$i" 8388608 > "/mnt/data/file$i.bin"; done
echo "hello from cbtd" > /mnt/data/hello.txt
rand_bytes vmdisk 67108864 | dd of=/dev/demo/vmdisk bs=1M oflag=direct status=none
sync
lvs -o lv_name,lv_size,pool_lv,data_percent demo

step "A vault for the backups (cbt-receiver; here fed through a pipe, like zfs send | zfs recv)"
vault=/tmp/vault
recv() { cbt-receiver receive --vault "$vault" --create; }
echo "  vault at $vault (over the network: cbt-receiver serve + cbtctl send --to, docs/transport.md)"

step "Consistency point: both volumes snapshotted at one instant (ext4 frozen, I/O held)"
cbtctl snapshot create --group demo demo/data demo/vmdisk --json > /tmp/g1.json
json_get /tmp/g1.json '"window %d ms: " % d["window_ms"] + ", ".join(s["name"] for s in d["snapshots"])'
data1=$(json_get /tmp/g1.json 'd["snapshots"][0]["name"]')
disk1=$(json_get /tmp/g1.json 'd["snapshots"][1]["name"]')
cbtctl snapshot list demo

step "Full backup of both snapshots"
cbtctl send "/dev/demo/$data1" --host demo-host --volume data --version-id v1 | recv
cbtctl send "/dev/demo/$disk1" --host demo-host --volume vmdisk --version-id v1 | recv

step "The volumes change: a file rewritten, a file added, 1 MiB of the VM disk"
rand_bytes file2-new 8388608 > /mnt/data/file2.bin
echo "written after the first backup" > /mnt/data/new.txt
rand_bytes vmdisk-new 1048576 | dd of=/dev/demo/vmdisk bs=1M seek=20 oflag=direct status=none
sync
sleep 1  # snapshot names carry the second

step "Second consistency point, and what changed according to the thin pool's metadata"
cbtctl snapshot create --group demo demo/data demo/vmdisk --json > /tmp/g2.json
data2=$(json_get /tmp/g2.json 'd["snapshots"][0]["name"]')
disk2=$(json_get /tmp/g2.json 'd["snapshots"][1]["name"]')
incremental() {  # VOLUME BASE_SNAP NEW_SNAP
  cbtctl changes "demo/$1" --method thin-delta --base "demo/$2" --new "demo/$3" \
    --json > "/tmp/$1.changes.json"
  python3 - "/tmp/$1.changes.json" "/tmp/$1.changed" "/tmp/$1.zeroed" <<'PY'
import json, sys
cs = json.load(open(sys.argv[1]))
assert not cs["lost"], cs["lost_reason"]
with open(sys.argv[2], "w") as c, open(sys.argv[3], "w") as z:
    for e in cs["extents"]:
        (z if e["zero"] else c).write(f'{e["offset"]} {e["length"]}\n')
print(f'  {sys.argv[1].split("/")[-1].split(".")[0]}: {cs["changed_bytes"]} bytes changed, '
      f'{cs["zeroed_bytes"]} discarded, of {cs["volume_size_bytes"]} ({cs["method"]})')
PY
  cbt-receiver versions --vault "$vault" --host demo-host --volume "$1" \
    --export-index v1 > "/tmp/$1.v1.idx"
  cbtctl send "/dev/demo/$3" --base-index "/tmp/$1.v1.idx" \
    --changes "/tmp/$1.changed" --discards "/tmp/$1.zeroed" --version-id v2 | recv
}

step "Incremental backups: only the changed chunks are read and sent"
incremental data "$data1" "$data2"
incremental vmdisk "$disk1" "$disk2"
for v in data vmdisk; do
  cbt-receiver versions --vault "$vault" --host demo-host --volume "$v"
done

step "Restore data@v1 to a new LV and compare it with its snapshot"
lvcreate -q -V 128M -T demo/pool -n data_restored >/dev/null
cbt-receiver restore --vault "$vault" --host demo-host --volume data \
  --version v1 --target /dev/demo/data_restored --state /tmp/restored.state --verify
assert_eq "$(hash_of "/dev/demo/$data1")" "$(hash_of /dev/demo/data_restored)" \
  "restored v1 equals its snapshot"
echo "  restored bytes equal snapshot $data1"
mkdir -p /mnt/restored
mount -o ro /dev/demo/data_restored /mnt/restored
ls /mnt/restored
[ ! -e /mnt/restored/new.txt ] || fail "v1 must not contain the later file"
umount /mnt/restored

step "Bring the restored LV forward to v2 incrementally (a standby replica)"
cbt-receiver restore --vault "$vault" --host demo-host --volume data \
  --version v2 --from v1 --target /dev/demo/data_restored --state /tmp/restored.state
assert_eq "$(hash_of "/dev/demo/$data2")" "$(hash_of /dev/demo/data_restored)" \
  "replica at v2 equals the second snapshot"
echo "  replica equals snapshot $data2"

step "Verify the whole vault"
cbt-receiver verify --vault "$vault"
cbtctl snapshot cleanup >/dev/null
umount /mnt/data
echo
echo "demo: done"
