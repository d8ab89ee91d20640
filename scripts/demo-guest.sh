# The demo's story, run inside the VM by scripts/demo.sh: a cbt-receiver and
# the cbtd daemon start; a thin LV with ext4 and a thick raw LV are backed up
# as one group over mutual TLS; files change; the incremental reads and
# sends a small fraction of the volumes; an older version is restored to a
# new LV and compared with its snapshot; the vault is verified.
. "$CBTD_SRC/tests/vm/lib.sh"

step() { printf '\n=== %s\n' "$*"; }
py() { python3 -c "$@"; }
HOST=demo-host

step "Two volumes: 'data' (thin LV, ext4 with files) and 'vmdisk' (thick LV, a VM's raw disk)"
make_vg demo /dev/vda /dev/vdb
lvcreate -q -L 300M -T demo/pool >/dev/null
lvcreate -q -V 128M -T demo/pool -n data >/dev/null
lvcreate -q -L 64M -n vmdisk demo >/dev/null
mkfs.ext4 -q /dev/demo/data
mkdir -p /mnt/data
mount /dev/demo/data /mnt/data
for i in 1 2 3 4; do rand_bytes "file$i" 8388608 > "/mnt/data/file$i.bin"; done
echo "hello from cbtd" > /mnt/data/hello.txt
rand_bytes vmdisk 67108864 | dd of=/dev/demo/vmdisk bs=1M oflag=direct status=none
sync
lvs -o lv_name,lv_size,segtype,pool_lv demo

step "The backup server: cbt-receiver serve, mutual TLS (certificates from scripts/make-certs.sh)"
"$CBTD_SRC/scripts/make-certs.sh" /tmp/certs --host "$HOST" >/dev/null
cbt-receiver serve --vault /tmp/vault --create --listen 127.0.0.1:7443 \
  --tls-cert /tmp/certs/server.crt --tls-key /tmp/certs/server.key \
  --client-ca /tmp/certs/ca.crt > /tmp/receiver.log 2>&1 &
RECEIVER=$!

step "The host: cbtd with one group of both volumes"
mkdir -p /run/cbtd /tmp/cbtd-state && chmod 700 /run/cbtd
cat > /tmp/cbtd.conf <<EOF
[agent]
state_dir = /tmp/cbtd-state
metrics_file = /tmp/cbtd.prom

[receiver]
address = 127.0.0.1:7443
ca_file = /tmp/certs/ca.crt
cert_file = /tmp/certs/$HOST.crt
key_file = /tmp/certs/$HOST.key

[volume.data]
path = /dev/demo/data

[volume.vmdisk]
path = /dev/demo/vmdisk
cow_size = 16M

[group.demo]
members = data vmdisk
# a thick member: each member is consistent on its own
sequential = yes
pre_hook = echo "  hook: pre  (\$CBTD_GROUP: \$CBTD_VOLUMES)" >> /tmp/hooks.log
post_hook = echo "  hook: post (\$CBTD_RESULT)" >> /tmp/hooks.log
EOF
cat /tmp/cbtd.conf
cbtd --config /tmp/cbtd.conf --check-config || true
cbtd --config /tmp/cbtd.conf > /tmp/cbtd.log 2>&1 &
CBTD=$!
trap 'kill $CBTD $RECEIVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do cbtctl status >/dev/null 2>&1 && break; sleep 0.2; done
cbtctl status
cbtctl volumes

show_runs() {  # the runs of the last `cbtctl backup --json`
  py "
import json
for r in json.load(open('/tmp/runs.json'))['runs']:
    read, sent, size = int(r['bytes_read']), int(r['bytes_sent']), int(r['volume_bytes'])
    print(f\"  {r['volume']:7} {r['result']:9} method {r['method']:10} read {read/2**20:6.1f} MiB\"
          f\"  sent {sent/2**20:6.1f} MiB  of {size/2**20:.0f} MiB ({100*read/size:.1f}% read)\"
          + (f\"  fallback: {r['fallback_reason']}\" if r['fallback_reason'] else ''))
"
}

step "First backup of the group: a full read (nothing to compare with yet)"
cbtctl backup demo --wait --json > /tmp/runs.json
cat /tmp/hooks.log
show_runs
v1=$(cbtctl versions data --json | py "import json,sys; print(json.load(sys.stdin)['versions'][-1]['version_id'])")
snap1=$(cbtctl volumes --json | py "import json,sys; print([v for v in json.load(sys.stdin)['volumes'] if v['name']=='data'][0]['base_snapshot'])")
hash1=$(hash_of "/dev/$snap1")
echo "  data@$v1 is snapshot $snap1"

step "The volumes change: a file rewritten, a file added, 1 MiB of the VM disk"
rand_bytes file2-new 8388608 > /mnt/data/file2.bin
echo "written after the first backup" > /mnt/data/new.txt
rand_bytes vmdisk-new 1048576 | dd of=/dev/demo/vmdisk bs=1M seek=20 oflag=direct status=none
sync

step "Incremental backup: thin-delta (pool metadata) and cow-table (the COW store) say what changed"
cbtctl backup demo --wait --json > /tmp/runs.json
show_runs
cbtctl runs
for v in data vmdisk; do echo "  $v:"; cbtctl versions "$v" | sed 's/^/    /'; done

step "Restore data@$v1 to a new LV and compare it with its snapshot"
lvcreate -q -V 128M -T demo/pool -n data_restored >/dev/null
cbtctl restore data --version "$v1" --target /dev/demo/data_restored --verify
assert_eq "$hash1" "$(hash_of /dev/demo/data_restored)" "restored $v1 equals its snapshot"
echo "  restored bytes equal those of snapshot $snap1"
mkdir -p /mnt/restored
mount -o ro /dev/demo/data_restored /mnt/restored
ls /mnt/restored
[ ! -e /mnt/restored/new.txt ] || fail "$v1 must not contain the later file"
umount /mnt/restored

step "Verify: every chunk of every version read back and checked"
for v in data vmdisk; do
  for id in $(cbtctl versions "$v" --json | py "import json,sys; print(' '.join(x['version_id'] for x in json.load(sys.stdin)['versions']))"); do
    cbtctl verify "$v" "$id"
  done
done
cbt-receiver verify --vault /tmp/vault

step "Metrics for Prometheus (textfile collector)"
sleep 1
kill "$CBTD"; wait "$CBTD" 2>/dev/null || true
grep -v '^#' /tmp/cbtd.prom | head -20
umount /mnt/data
echo
echo "demo: done"
