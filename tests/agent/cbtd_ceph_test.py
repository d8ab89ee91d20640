#!/usr/bin/env python3
"""The daemon end to end with the vault on Ceph (issue 15): a real cluster
(tests/ceph/ceph-cluster.sh), `cbt-receiver serve --vault rados:...` with
mutual TLS as the least-privileged user `cbtd`, and cbtd backing up an
image volume (method external, snapshot none) with encryption on:

 1. `cbtctl backup --wait`: a full;
 2. three chunks rewritten and handed in with `--changes`: an incremental
    that sends only them;
 3. `cbtctl restore` of each version through cbtd: byte-equal to the
    image as it was at that backup;
 4. `cbt-receiver verify --key-file` on the pool: sound.

usage: cbtd_ceph_test.py BIN_DIR CEPH_CLUSTER_SCRIPT MAKE_CERTS"""
import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN, SCRIPT, MAKE_CERTS = sys.argv[1], sys.argv[2], sys.argv[3]
HOST = "h1"
CHUNK = 65536


def fail(msg, logs=()):
    print(f"FAIL: {msg}")
    for log in logs:
        if os.path.exists(log):
            print(f"--- {log} (last lines)")
            print("".join(open(log).readlines()[-30:]))
    sys.exit(1)


def run(argv, what, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                       **kw)
    if r.returncode != 0:
        fail(f"{what}: exit {r.returncode}: {r.stdout}{r.stderr}")
    return r


def kill_at_exit(proc):
    def kill():
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    atexit.register(kill)


def main():
    tmp = tempfile.mkdtemp(prefix="cbtd-ceph-e2e-")
    atexit.register(shutil.rmtree, tmp, True)
    cluster = f"{tmp}/cluster"
    run([SCRIPT, "start", cluster, "memstore"], "start the ceph cluster",
        env=dict(os.environ, CBTD_CEPH_OWNER_PID=str(os.getpid())))
    atexit.register(subprocess.run, [SCRIPT, "stop", cluster],
                    capture_output=True)
    certs = f"{tmp}/certs"
    run([MAKE_CERTS, certs, "--host", HOST], "make certificates")
    key = f"{tmp}/tenant.key"
    run([f"{BIN}/cbtctl", "key", "create", "--key-file", key], "key create")
    vault = ["--vault", "rados:vault/daemon", "--ceph-conf",
             f"{cluster}/ceph.conf", "--ceph-user", "cbtd"]

    serve_out, serve_err = f"{tmp}/serve.out", f"{tmp}/serve.err"
    serve = subprocess.Popen(
        [f"{BIN}/cbt-receiver", "serve", *vault, "--create", "--listen",
         "127.0.0.1:0", "--tls-cert", f"{certs}/server.crt", "--tls-key",
         f"{certs}/server.key", "--client-ca", f"{certs}/ca.crt"],
        stdout=open(serve_out, "w"), stderr=open(serve_err, "w"))
    kill_at_exit(serve)
    port = None
    for _ in range(300):
        m = re.search(r"\(port (\d+)", open(serve_out).read())
        if m:
            port = m.group(1)
            break
        if serve.poll() is not None:
            fail("serve exited", [serve_err])
        time.sleep(0.1)
    if port is None:
        fail("serve never said its port", [serve_err])

    image = f"{tmp}/disk.img"
    rng = random.Random(7)
    with open(image, "wb") as f:
        f.write(rng.randbytes(8 << 20))
    first = f"{tmp}/first.json"
    with open(first, "w") as f:
        json.dump({"generation": "g0", "next_generation": "g1",
                   "extents": []}, f)
    sock = f"{tmp}/cbtd.sock"
    conf = f"{tmp}/cbtd.conf"
    with open(conf, "w") as f:
        f.write(f"""[agent]
state_dir = {tmp}/state
socket = {sock}
key_file = {key}

[receiver]
address = 127.0.0.1:{port}
ca_file = {certs}/ca.crt
cert_file = {certs}/{HOST}.crt
key_file = {certs}/{HOST}.key

[volume.disk]
path = {image}
method = external
changes_file = {first}
snapshot = none
chunk_size = {CHUNK}
""")
    os.makedirs(f"{tmp}/state")
    cbtd_log = f"{tmp}/cbtd.log"
    cbtd = subprocess.Popen([f"{BIN}/cbtd", "--config", conf],
                            stdout=open(cbtd_log, "w"),
                            stderr=subprocess.STDOUT)
    kill_at_exit(cbtd)
    ctl = [f"{BIN}/cbtctl"]
    for _ in range(200):
        if subprocess.run(ctl + ["status", "--socket", sock],
                          capture_output=True).returncode == 0:
            break
        if cbtd.poll() is not None:
            fail("cbtd exited", [cbtd_log])
        time.sleep(0.3)
    logs = [cbtd_log, serve_err]

    def backup(extra):
        r = subprocess.run(ctl + ["backup", "disk", "--wait", "--json",
                                  "--socket", sock, *extra],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or '"failed"' in r.stdout:
            fail(f"cbtctl backup: {r.stdout}{r.stderr}", logs)
        return json.loads(r.stdout)["runs"][0]

    versions = {}
    full = backup([])
    versions[full["version_id"]] = open(image, "rb").read()

    changes = f"{tmp}/changes.json"
    extents = []
    with open(image, "r+b") as f:
        for c in (3, 64, 127):
            f.seek(c * CHUNK)
            f.write(rng.randbytes(CHUNK))
            extents.append([c * CHUNK, CHUNK])
    with open(changes, "w") as f:
        json.dump({"generation": "g1", "next_generation": "g2",
                   "extents": extents}, f)
    inc = backup(["--changes", f"disk={changes}"])
    if inc.get("fallback_reason"):
        fail(f"the incremental fell back: {inc['fallback_reason']}", logs)
    sent = inc.get("chunks_sent", inc.get("stats", {}).get("chunks_sent"))
    if sent is not None and sent > 3:
        fail(f"the incremental sent {sent} chunks, expected 3: {inc}")
    versions[inc["version_id"]] = open(image, "rb").read()

    for version, data in versions.items():
        target = f"{tmp}/restored-{version}"
        run(ctl + ["restore", "disk", "--version", version, "--target",
                   target, "--socket", sock], f"cbtctl restore {version}")
        if open(target, "rb").read() != data:
            fail(f"the restore of {version} differs from the image at its "
                 f"backup")
    run([f"{BIN}/cbt-receiver", "verify", *vault, "--key-file", key],
        "cbt-receiver verify on the pool")
    print(f"cbtd_ceph_test: OK ({len(versions)} versions through cbtd into "
          f"rados:vault/daemon, restored byte-equal, verify clean)")


if __name__ == "__main__":
    main()
