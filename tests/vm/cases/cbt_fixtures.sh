# Captures the small real fixtures of tests/cbt/fixtures/ (printed as
# base64 between markers; scripts/... or the README says how to extract):
# thin_delta XML, era_invalidate XML and the head of a COW store.
. "$CBTD_SRC/tests/vm/lib.sh"
emit() { echo "=== FIXTURE $1"; base64 -w0 "$2"; echo; echo "=== END"; }

make_vg fx /dev/vda
lvcreate -q -L 32M -T fx/pool --chunksize 64k >/dev/null
lvcreate -q -V 16M -T fx/pool -n thin >/dev/null
dd if=/dev/urandom of=/dev/fx/thin bs=64k count=10 oflag=direct status=none
lvcreate -q -s -n a fx/thin >/dev/null
dd if=/dev/urandom of=/dev/fx/thin bs=64k seek=1 count=1 oflag=direct status=none
blkdiscard -o $((4 * 65536)) -l $((2 * 65536)) /dev/fx/thin
dd if=/dev/urandom of=/dev/fx/thin bs=64k seek=8 count=1 oflag=direct status=none
lvcreate -q -s -n b fx/thin >/dev/null
ida=$(lvs --noheadings -o thin_id fx/a | tr -d ' ')
idb=$(lvs --noheadings -o thin_id fx/b | tr -d ' ')
dmsetup message fx-pool-tpool 0 reserve_metadata_snap
thin_delta --metadata-snap --snap1 "$ida" --snap2 "$idb" /dev/mapper/fx-pool_tmeta > /tmp/td.xml
dmsetup message fx-pool-tpool 0 release_metadata_snap
cat /tmp/td.xml
emit thin_delta.xml /tmp/td.xml

lvcreate -q -L 64M -n thick fx >/dev/null
lvcreate -q -s -L 8M -c 4k -n cs fx/thick >/dev/null
dd if=/dev/urandom of=/dev/fx/thick bs=4k seek=2 count=1 oflag=direct status=none
printf 'x' | dd of=/dev/fx/thick bs=1 seek=$((1048576 + 5)) conv=notrunc status=none
sync
dd if=/dev/mapper/fx-cs-cow of=/tmp/cow.bin bs=64k count=1 iflag=direct status=none
emit cow_store.bin /tmp/cow.bin

dmsetup create fx-origin --table "0 32768 linear /dev/vdb 0"
dmsetup create fx-meta --table "0 8192 linear /dev/vdb 40000"
dd if=/dev/zero of=/dev/mapper/fx-meta bs=4k count=1 status=none
dmsetup create fx-era --table "0 32768 era /dev/mapper/fx-meta /dev/mapper/fx-origin 128"
dmsetup message fx-era 0 checkpoint
since=$(dmsetup status fx-era | awk '{print $6}')
dd if=/dev/urandom of=/dev/mapper/fx-era bs=64k seek=3 count=2 oflag=direct status=none
dd if=/dev/urandom of=/dev/mapper/fx-era bs=4k seek=$((10 * 16 + 3)) count=1 oflag=direct status=none
dmsetup message fx-era 0 checkpoint
dmsetup message fx-era 0 take_metadata_snap
era_invalidate --metadata-snapshot --written-since "$since" /dev/mapper/fx-meta > /tmp/era.xml
dmsetup message fx-era 0 drop_metadata_snap
cat /tmp/era.xml
emit era_invalidate.xml /tmp/era.xml
log "PASS: fixtures captured"
