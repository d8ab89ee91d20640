#!/usr/bin/env python3
"""Restores a plaintext version from a format-2 cbtd vault without cbtd.

usage: restore-without-cbtd.py VAULT HOST VOLUME VERSION OUTPUT

Needs only Python 3 (its sqlite3 module) and the `zstd` command. Every
chunk is checked against the index's entry (SHA-256) and the index against
its checksum and root hash. Encrypted versions need the key: use
`cbt-receiver restore --key-file`. docs/vault.md has the formats.
"""
import hashlib, json, sqlite3, struct, subprocess, sys

vault, host, volume, version, out = sys.argv[1:6]
# The host's tenant: host-tenants/HOST if assigned, else the host itself.
try:
    tenant = open(f"{vault}/host-tenants/{host}").read().rstrip("\n")
except FileNotFoundError:
    tenant = host
assert tenant and all(c.isalnum() or c in "._-" for c in tenant), "tenant name"
idx = open(f"{vault}/hosts/{host}/{volume}/versions/{version}.idx", "rb").read()
assert idx[:8] == b"CBTDIDX1", "not a cbtd index"
assert hashlib.sha256(idx[:-32]).digest() == idx[-32:], "index checksum"
(json_len,) = struct.unpack_from("<I", idx, 8)
meta = json.loads(idx[12:12 + json_len])
assert meta.get("encryption", "none") == "none", "encrypted: needs the key"
size, chunk = meta["volume_size_bytes"], meta["chunk_size_bytes"]
entries = idx[12 + json_len:-32]
root = hashlib.sha256(b"cbtd-root-v1\0" + struct.pack("<QI", size, chunk) + entries)
assert root.hexdigest() == meta["root_hash"], "root hash"
db = sqlite3.connect(f"file:{vault}/index/chunks.sqlite?mode=ro", uri=True)
FIND = ("SELECT p.name, c.offset, c.length FROM chunks c"
        " JOIN packs p ON p.pack_id = c.pack_id"
        " JOIN tenants t ON t.tenant_id = c.tenant_id"
        " WHERE t.name = ? AND c.id = ?")
with open(out, "wb") as f:
    f.truncate(size)
    for i in range(len(entries) // 32):
        h = entries[32 * i:32 * i + 32]
        if h == bytes(32):
            continue  # zero chunk: a hole
        name, offset, length = db.execute(FIND, (tenant, h)).fetchone()
        with open(f"{vault}/tenants/{tenant}/packs/{name[:2]}/{name}.pack", "rb") as p:
            p.seek(offset)
            rec = p.read(length)
        magic, fmt, comp, _, raw_size, _xxh3 = struct.unpack_from("<4sBBHIQ", rec)
        assert magic == b"CBTC" and comp in (0, 1), f"chunk {i}: bad record"
        data = rec[20:]
        if comp == 1:
            data = subprocess.run(["zstd", "-dc"], input=data, check=True,
                                  capture_output=True).stdout
        assert len(data) == raw_size and hashlib.sha256(data).digest() == h, f"chunk {i}"
        f.seek(i * chunk)
        f.write(data)
