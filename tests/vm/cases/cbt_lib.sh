# Shared helpers of the cbt_* VM cases (not a test itself): a seeded
# random workload and the never-miss checker. Source after lib.sh.

# cbt_workload DEV SEED OPS [discard]: random writes (unaligned offsets and
# sizes, overwrites of recent spots, the device's last bytes), optionally
# discards (4 KiB aligned, so partial thin blocks too); fsync at the end.
cbt_workload() {
  python3 - "$@" <<'PY'
import os, random, subprocess, sys
dev, seed, ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
discard = len(sys.argv) > 4 and sys.argv[4] == "discard"
rng = random.Random(seed)
drng = random.Random(seed ^ 0x5EED)  # discards: writes stay the same with or without
fd = os.open(dev, os.O_RDWR)
size = os.lseek(fd, 0, os.SEEK_END)
recent = []
for i in range(ops):
    if discard and drng.random() < 0.15:
        off = drng.randrange(0, size // 4096) * 4096
        ln = min(drng.randrange(1, 512) * 4096, size - off)
        os.fsync(fd)
        subprocess.run(["blkdiscard", "-o", str(off), "-l", str(ln), dev], check=True)
    kind = rng.random()
    if kind < 0.30 and recent:
        off = rng.choice(recent) + rng.randrange(-3000, 3000)   # overwrite
    elif kind < 0.40:
        off = size - rng.randrange(1, 70000)                     # tail
    else:
        off = rng.randrange(0, size)
    off = max(0, min(off, size - 1))
    ln = min(rng.choice([1, 7, 511, 513, 4095, 4097, 65536, 70000, 200001]), size - off)
    os.pwrite(fd, rng.randbytes(ln), off)
    recent.append(off)
os.fsync(fd)
os.close(fd)
PY
}

# cbt_check OLD NEW JSON [exact CHUNK]: every byte that differs between OLD
# and NEW must be in the reported set (changed or zeroed), and every zeroed
# byte must read as zero in NEW. Prints "precision reported/true" figures.
# With `exact CHUNK`, the set must be exactly the differing CHUNK-sized
# chunks (the hash method's promise).
cbt_check() {
  python3 - "$@" <<'PY'
import json, sys
old_p, new_p, js = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
exact = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "exact" else 0
seed = __import__("os").environ.get("CBTD_VM_SEED", "?")
ext = [(e["offset"], e["offset"] + e["length"], e["zero"]) for e in js["extents"]]
def fail(msg):
    print("NEVER-MISS FAILURE (seed %s): %s" % (seed, msg)); sys.exit(1)
import bisect
starts = [e[0] for e in ext]
def covered(lo, hi):   # [lo,hi) fully inside the union of extents
    while lo < hi:
        i = bisect.bisect_right(starts, lo) - 1
        if i < 0 or ext[i][1] <= lo: return lo
        lo = ext[i][1]
    return None
diff_bytes = 0; diff_chunks = set(); B = 1 << 20
with open(old_p, "rb") as fo, open(new_p, "rb") as fn:
    off = 0
    while True:
        a, b = fo.read(B), fn.read(B)
        if len(a) != len(b): fail("sizes differ at %d" % off)
        if not a: break
        if a != b:
            for s in range(0, len(a), 4096):
                x, y = a[s:s+4096], b[s:s+4096]
                if x == y: continue
                n = len(x)
                xb = (int.from_bytes(x, "little") ^ int.from_bytes(y, "little")).to_bytes(n, "little")
                diff_bytes += n - xb.count(0)
                first = n - len(xb.lstrip(b"\0")); last = len(xb.rstrip(b"\0")) - 1
                if exact: diff_chunks.add((off + s) // exact)
                if covered(off + s + first, off + s + last + 1) is None: continue
                for i in range(first, last + 1):
                    if xb[i] and covered(off + s + i, off + s + i + 1) is not None:
                        fail("byte %d differs but is not reported (old %d new %d); set %s..." %
                             (off + s + i, x[i], y[i], js["extents"][:5]))
        off += len(a)
    for lo, hi, z in ext:
        if not z: continue
        fn.seek(lo)
        if fn.read(hi - lo).strip(b"\0"): fail("zeroed extent [%d,%d) is not zero" % (lo, hi))
reported = sum(h - l for l, h, _ in ext)
if exact:
    got = set()
    for l, h, _ in ext:
        got.update(range(l // exact, (h - 1) // exact + 1))
    if got != diff_chunks:
        fail("hash set is not exactly the differing chunks: extra %s missing %s" %
             (sorted(got - diff_chunks)[:10], sorted(diff_chunks - got)[:10]))
print("check ok: method=%s lost=%s reported=%d true_diff=%d precision=%s" % (
    js["method"], js["lost"], reported, diff_bytes,
    "%.2f" % (reported / diff_bytes) if diff_bytes else "n/a"))
PY
}

# cbt_field JSON KEY: a top-level field of a changes --json dump.
cbt_field() {
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(str(v).lower() if isinstance(v,bool) else v)' "$1" "$2"
}

# cbt_check_catches OLD NEW: the checker itself must fail on an empty set
# when OLD and NEW differ (a checker that cannot fail proves nothing).
cbt_check_catches() {
  echo '{"method":"none","lost":false,"extents":[]}' > /tmp/empty.json
  if cbt_check "$1" "$2" /tmp/empty.json > /tmp/selfcheck.txt; then
    fail "checker accepted an empty set for differing snapshots"
  fi
  grep -q "NEVER-MISS FAILURE" /tmp/selfcheck.txt || fail "checker self-test"
}
