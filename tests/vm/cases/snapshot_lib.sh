# Helpers shared by the snapshot_* VM cases: `. "$CBTD_SRC/tests/vm/cases/snapshot_lib.sh"`.
. "$CBTD_SRC/tests/vm/lib.sh"

CBTCTL="$CBTD_BIN/cbtctl"

# seq_writer DEV BLOCKS: forever, n = 1, 2, ...: write n into block
# (n mod BLOCKS) of DEV (4 KiB blocks, O_DSYNC: each write is on the device
# before the next starts). Run in the background (`&`: $! is python).
seq_writer() {
  exec python3 - "$@" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DSYNC)
blocks = int(sys.argv[2])
n = 0
while True:
    n += 1
    os.pwrite(fd, (b"%d\n" % n).ljust(4096, b"\0"), (n % blocks) * 4096)
PY
}

# pair_writer A B: forever, n = 1, 2, ...: write n into the first block of
# A, then into the first block of B (O_DSYNC). Any one instant of both
# devices has A >= B >= A - 1. Run in the background (`&`: $! is python).
pair_writer() {
  exec python3 - "$@" <<'PY'
import os, sys
a = os.open(sys.argv[1], os.O_WRONLY | os.O_DSYNC)
b = os.open(sys.argv[2], os.O_WRONLY | os.O_DSYNC)
n = 0
while True:
    n += 1
    buf = (b"%d\n" % n).ljust(4096, b"\0")
    os.pwrite(a, buf, 0)
    os.pwrite(b, buf, 0)
PY
}

# check_seq DEV BLOCKS: DEV holds the state seq_writer left at one instant:
# with M the largest number found, block i holds the largest k <= M with
# k = i (mod BLOCKS) (or nothing, if no such k > 0). Prints M.
check_seq() {
  python3 - "$@" <<'PY'
import sys
dev, blocks = sys.argv[1], int(sys.argv[2])
with open(dev, "rb") as f:
    data = f.read(blocks * 4096)
vals = []
for i in range(blocks):
    b = data[i * 4096:(i + 1) * 4096].split(b"\n")[0].strip(b"\0")
    vals.append(int(b) if b else 0)
m = max(vals)
for i, v in enumerate(vals):
    k = m - ((m - i) % blocks)
    want = k if k > 0 else 0
    if v != want:
        sys.exit("block %d holds %d, expected %d (max %d): not one instant" % (i, v, want, m))
print(m)
PY
}

# first_number DEV: the number at the start of DEV.
first_number() {
  head -c 64 "$1" | tr -d '\0' | head -n1
}

# lvm_state VG: what lvs reports, to check that a refused command changed nothing.
lvm_state() {
  lvs -a --noheadings -o lv_name,lv_attr,lv_size,lv_tags,origin "$@" | sort
}

# expect_refused EXPECTED_TEXT CMD...: CMD exits 3 (refused) and says EXPECTED_TEXT.
expect_refused() {
  local want=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" = 3 ] || fail "expected exit 3 (refused) from '$*', got $rc: $out"
  assert_contains "$out" "$want" "message of '$*'"
  log "refused as expected: $out"
}
