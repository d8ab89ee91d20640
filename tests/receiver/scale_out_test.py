#!/usr/bin/env python3
"""Three `cbt-receiver serve` processes on one RADOS pool (issue 15), on a
real single-node Ceph cluster the test starts (tests/ceph/ceph-cluster.sh):

 1. fulls of three hosts at once, each through another receiver, while
    `cbt-receiver gc --grace-seconds 0` runs again and again: GC on one
    instance while the others receive;
 2. incrementals of each host through a receiver other than its full's,
    with GC running again;
 3. a full of an unchanged volume through a third receiver sends nothing
    but references: it dedups against what the tenant stored through the
    others;
 4. a receiver SIGKILLed mid-stream behind a TCP front (the one name the
    hosts use): cbtctl reconnects, the front now leads to another
    receiver, and the backup completes there without sending again the
    packs the dead one had stored (a RADOS vault indexes each pack as it
    is written);
 5. afterwards every version restores byte-equal to what was sent, through
    `cbt-receiver restore` on the pool, and `verify` finds it sound.

usage: scale_out_test.py BIN_DIR CEPH_CLUSTER_SCRIPT"""
import atexit
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN, SCRIPT = sys.argv[1], sys.argv[2]
# The TCP relay of the network-fault test, used healthy (fault None): the
# one name hosts send to, as a load balancer or a DNS name in front of N
# receivers would be; its `upstream` is the receiver it leads to.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "transport"))
from network_faults import Proxy  # noqa: E402
CHUNK = 65536
MIB = 1 << 20


def fail(msg, logs=()):
    print(f"FAIL: {msg}")
    for log in logs:
        if os.path.exists(log):
            print(f"--- {log} (last lines)")
            print("".join(open(log).readlines()[-30:]))
    sys.exit(1)


class Cluster:
    def __init__(self, tmp):
        self.dir = f"{tmp}/cluster"
        env = dict(os.environ, CBTD_CEPH_OWNER_PID=str(os.getpid()))
        r = subprocess.run([SCRIPT, "start", self.dir, "memstore"], env=env,
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            fail(f"ceph cluster did not start: {r.stdout}{r.stderr}")
        atexit.register(self.stop)
        self.conf = f"{self.dir}/ceph.conf"

    def stop(self):
        subprocess.run([SCRIPT, "stop", self.dir], capture_output=True)


class Receiver:
    def __init__(self, tmp, name, vault_args, create=False):
        self.name = name
        self.log = f"{tmp}/{name}.err"
        out = f"{tmp}/{name}.out"
        self.proc = subprocess.Popen(
            [f"{BIN}/cbt-receiver", "serve", *vault_args, "--listen",
             "127.0.0.1:0", "--insecure", *(["--create"] if create else [])],
            stdout=open(out, "w"), stderr=open(self.log, "w"))
        atexit.register(self.kill)
        self.port = None
        for _ in range(300):
            m = re.search(r"\(port (\d+)", open(out).read())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                fail(f"receiver {name} exited {self.proc.returncode}",
                     [self.log])
            time.sleep(0.1)
        fail(f"receiver {name} never said its port", [self.log])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def write_image(path, size, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))


def scribble(path, seed, chunks):
    rng = random.Random(seed)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for _ in range(chunks):
            f.seek(rng.randrange(size // CHUNK) * CHUNK)
            f.write(rng.randbytes(CHUNK))


def send(port, img, host, version, base=None, extra=(), check=True):
    cmd = [f"{BIN}/cbtctl", "send", img, "--to", f"127.0.0.1:{port}",
           "--insecure", "--host", host, "--volume", "d", "--version-id",
           version, "--chunk-size", str(CHUNK), "--compression", "none",
           "--no-progress", *extra]
    if base:
        cmd += ["--base-version", base, "--full"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        fail(f"send {host}@{version} to port {port}: exit {r.returncode}: "
             f"{r.stderr}")
    return r


def in_parallel(jobs):
    threads = [threading.Thread(target=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class GcLoop:
    """`cbt-receiver gc --grace-seconds 0` over and over until stopped:
    nothing is spared for its age, so only the receive sessions' pins keep
    the chunks of the versions being received."""

    def __init__(self, vault_args, tmp):
        self.vault_args = vault_args
        self.log = f"{tmp}/gc.log"
        self.stop = threading.Event()
        self.runs = 0
        self.failures = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        with open(self.log, "a") as log:
            while not self.stop.is_set():
                r = subprocess.run(
                    [f"{BIN}/cbt-receiver", "gc", *self.vault_args,
                     "--grace-seconds", "0", "--wait"],
                    stdout=log, stderr=subprocess.PIPE, text=True,
                    timeout=300)
                log.write(r.stderr)
                self.runs += 1
                if r.returncode != 0:
                    self.failures.append(r.stderr)

    def finish(self):
        self.stop.set()
        self.thread.join()
        if self.failures:
            fail(f"gc failed while receiving: {self.failures[0]}", [self.log])
        if self.runs == 0:
            fail("gc never ran")
        return self.runs


def restore_equal(vault_args, host, version, expected, tmp):
    target = f"{tmp}/restored-{host}-{version}"
    r = subprocess.run(
        [f"{BIN}/cbt-receiver", "restore", *vault_args, "--host", host,
         "--volume", "d", "--version", version, "--target", target,
         "--verify"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        fail(f"restore {host}@{version}: exit {r.returncode}: {r.stderr}")
    if open(target, "rb").read() != expected:
        fail(f"restore {host}@{version}: bytes differ from what was sent")
    os.remove(target)


def main():
    tmp = tempfile.mkdtemp(prefix="cbtd-scale-out-")
    atexit.register(shutil.rmtree, tmp, True)
    start = time.monotonic()
    cluster = Cluster(tmp)
    vault_args = ["--vault", "rados:vault/scale-out", "--ceph-conf",
                  cluster.conf, "--ceph-user", "cbtd"]
    receivers = [Receiver(tmp, "a", vault_args, create=True)]
    receivers += [Receiver(tmp, n, vault_args) for n in ("b", "c")]
    logs = [r.log for r in receivers]
    hosts = ["h1", "h2", "h3"]
    sent = {}  # (host, version) -> bytes

    # 1. Fulls through three receivers at once, GC running.
    images = {}
    for i, h in enumerate(hosts):
        images[h] = f"{tmp}/{h}.img"
        write_image(images[h], 16 * MIB, seed=i)
    gc = GcLoop(vault_args, tmp)
    in_parallel([lambda h=h, r=r: send(r.port, images[h], h, "v1")
                 for h, r in zip(hosts, receivers)])
    for h in hosts:
        sent[(h, "v1")] = open(images[h], "rb").read()

    # 2. Incrementals, each through another receiver than its full.
    for i, h in enumerate(hosts):
        scribble(images[h], seed=10 + i, chunks=24)
    in_parallel([lambda h=h, r=r: send(r.port, images[h], h, "v2", base="v1")
                 for h, r in zip(hosts, receivers[1:] + receivers[:1])])
    runs = gc.finish()
    for h in hosts:
        sent[(h, "v2")] = open(images[h], "rb").read()

    # 3. The same bytes again through the third receiver: nothing new.
    r = send(receivers[2].port, images["h1"], "h1", "v3")
    m = re.search(r"sent ([\d.]+) MiB \(([\d.]+) MiB on the wire\), "
                  r"skipped ([\d.]+) MiB", r.stderr)
    if not m:
        fail(f"cannot read send's summary: {r.stderr}")
    if float(m.group(2)) > 1.0:
        fail(f"an unchanged full through receiver c put {m.group(2)} MiB on "
             f"the wire: it did not dedup against receivers a and b "
             f"({r.stderr.strip()})")
    sent[("h1", "v3")] = sent[("h1", "v2")]

    # 4. Receiver a dies mid-stream behind the front; the host's retry
    # lands on b.
    big = f"{tmp}/h4.img"
    write_image(big, 96 * MIB, seed=4)
    front = Proxy(receivers[0].port, random.Random(0))
    result = {}

    def long_send():
        result["r"] = send(front.port, big, "h4", "v1", check=False,
                           extra=["--bwlimit", "16M", "--retries", "5"])
    t = threading.Thread(target=long_send)
    t.start()
    time.sleep(3)
    if not t.is_alive():
        fail("the 96 MiB send ended before receiver a could be killed")
    front.upstream = receivers[1].port
    receivers[0].kill()
    t.join()
    if result["r"].returncode != 0:
        fail(f"the send cut by a dead receiver did not complete through "
             f"another: {result['r'].stderr}", logs)
    # The cut is seen: the run started again, or the stream reconnected.
    out = result["r"].stderr
    m = re.search(r"; (\d+) reconnects;", out)
    if not m or (m.group(1) == "0" and "starting again" not in out):
        fail(f"the send did not notice its receiver die: {out}")
    # What a reached before it died (its packs, indexed as written) is not
    # sent again to b.
    m = re.search(r"skipped ([\d.]+) MiB", out)
    if not m or float(m.group(1)) < 8:
        fail(f"the run through b sent again what a had stored: {out}")
    sent[("h4", "v1")] = open(big, "rb").read()

    # 5. Every version restores byte-equal; verify finds the pool sound.
    for (h, v), data in sent.items():
        restore_equal(vault_args, h, v, data, tmp)
    r = subprocess.run([f"{BIN}/cbt-receiver", "verify", *vault_args],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        fail(f"verify: exit {r.returncode}: {r.stdout}{r.stderr}")
    print(f"scale_out_test: OK ({len(sent)} versions through 3 receivers, "
          f"{runs} GC runs during receives, {time.monotonic() - start:.0f} s)")


if __name__ == "__main__":
    main()
