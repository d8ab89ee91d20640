#!/usr/bin/env python3
"""Peak memory of the sender and the receiver for a 16 TiB volume.

    sudo bench/run.sh --memory [--size 16T] [--changes 1000]
    /usr/bin/python3 bench/memory_bench.py --bin-dir build/bin   # as root

The volume is a sparse image file of --size (16 TiB less 64 KiB by default:
ext4's largest file). Two backups over loopback gRPC with mutual TLS and
encryption on, each run under /usr/bin/time -v:
  * a full: `cbtctl send --full` reads only the allocated bytes (SEEK_HOLE)
    and sends the rest as zero runs; the receiver writes the version's
    index, one 32-byte entry per chunk (8 GiB at 64 KiB chunks);
  * an incremental of --changes chunks written evenly across the volume:
    `cbtctl send --base-version` streams that 8 GiB base index from the
    receiver (ReadIndex) alongside the changed chunks, and the receiver
    merges the base into the new index.
Then the same two backups through the daemon: cbtd with the image as a
volume (method external, snapshot none), `cbtctl backup --wait`, its
first run a full and its second an incremental over another --changes
chunks handed in with `--changes`.
Then the incremental is restored to /dev/null, every chunk read and
checked: by `cbt-receiver restore` from the vault directory, and by cbtd
(`cbtctl restore`) over gRPC, each streaming the 8 GiB index twice (a
check pass, then the restore); before the latter, `cbtctl versions`
through cbtd is timed (the receiver lists from the indexes' summaries).
Reports the peak RSS of the sender (cbtctl send's maximum, cbtd's VmHWM
over each run) and the receiver's VmHWM over each backup, the restoring
process's for each restore, with the times,
and writes bench/results/<UTC stamp>-memory.{json,md}. Needs about 45 GiB
free in --work (four 8 GiB indexes plus staging).
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "benchhost"


def log(msg):
    print(f"[memory-bench] {msg}", file=sys.stderr, flush=True)


def size_arg(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"cbt-receiver exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("cbt-receiver did not listen within a minute")


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    # Writing 5 to clear_refs resets VmHWM to the current RSS (proc(5)).
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5\n")


def time_v(argv, log_path):
    """Runs argv under /usr/bin/time -v; returns (wall s, max RSS KiB)."""
    t0 = time.monotonic()
    with open(log_path, "w") as out:
        r = subprocess.run(["/usr/bin/time", "-v"] + argv, stdout=out,
                           stderr=subprocess.STDOUT)
    wall = time.monotonic() - t0
    text = open(log_path).read()
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(argv)}\n"
                         + text[-2000:])
    rss = 0
    for line in text.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1])
    return wall, rss


class Rig:
    def __init__(self, args):
        self.a = args
        self.work = args.work
        os.makedirs(self.work, exist_ok=True)
        self.bin = args.bin_dir
        self.certs = os.path.join(self.work, "certs")
        self.vault = os.path.join(self.work, "vault")
        self.image = os.path.join(self.work, "big.img")
        self.key = os.path.join(self.work, "bench.key")
        self.port = free_port()
        self.receiver = None

    def prepare(self):
        for p in (self.image, self.key):
            if os.path.exists(p):
                os.unlink(p)
        subprocess.run(["rm", "-rf", self.vault, self.certs,
                        os.path.join(self.work, "state")], check=True)
        subprocess.run([self.a.make_certs, self.certs, "--host", HOST],
                       check=True, capture_output=True)
        subprocess.run([os.path.join(self.bin, "cbtctl"), "key", "create",
                        "--key-file", self.key], check=True,
                       capture_output=True)
        with open(self.image, "wb") as f:
            f.truncate(self.a.size)

    def serve(self):
        argv = [os.path.join(self.bin, "cbt-receiver"), "serve",
                "--vault", self.vault, "--create",
                "--listen", f"127.0.0.1:{self.port}",
                "--tls-cert", f"{self.certs}/server.crt",
                "--tls-key", f"{self.certs}/server.key",
                "--client-ca", f"{self.certs}/ca.crt"]
        self.receiver = subprocess.Popen(
            argv, stdout=open(os.path.join(self.work, "receiver.log"), "w"),
            stderr=subprocess.STDOUT)
        wait_port(self.port, self.receiver)

    def send(self, version, extra, name):
        argv = [os.path.join(self.bin, "cbtctl"), "send", self.image,
                "--host", HOST, "--volume", "big", "--version-id", version,
                "--chunk-size", str(self.a.chunk_bytes),
                "--key-file", self.key, "--no-progress",
                "--to", f"127.0.0.1:{self.port}",
                "--tls-cert", f"{self.certs}/{HOST}.crt",
                "--tls-key", f"{self.certs}/{HOST}.key",
                "--ca", f"{self.certs}/ca.crt"] + extra
        reset_peak(self.receiver.pid)
        wall, rss = time_v(argv, os.path.join(self.work, f"{name}.log"))
        return {"wall_s": round(wall, 1), "sender_max_rss_mib":
                round(rss / 1024, 1), "receiver_peak_rss_mib":
                round(status_kb(self.receiver.pid, "VmHWM") / 1024, 1)}

    def write_changes(self, seed=17, name="changes.txt"):
        """--changes random chunks spread evenly; returns the list file."""
        rng = random.Random(seed)
        c = self.a.chunk_bytes
        chunks = self.a.size // c
        step = chunks // self.a.changes
        path = os.path.join(self.work, name)
        fd = os.open(self.image, os.O_WRONLY)
        with open(path, "w") as out:
            for k in range(self.a.changes):
                off = (k * step + rng.randrange(step)) * c
                os.pwrite(fd, rng.randbytes(c), off)
                out.write(f"{off} {c}\n")
        os.fsync(fd)
        os.close(fd)
        return path

    def start_cbtd(self):
        state = os.path.join(self.work, "state")
        os.makedirs(state, exist_ok=True)
        self.sock = os.path.join(self.work, "cbtd.sock")
        conf = os.path.join(self.work, "cbtd.conf")
        # The first run is a full; its list only names the tracking it
        # starts (docs/cbt.md, "External lists through the daemon").
        with open(os.path.join(self.work, "first.json"), "w") as f:
            json.dump({"generation": "g0", "next_generation": "g1",
                       "extents": []}, f)
        with open(conf, "w") as f:
            f.write(f"""[agent]
state_dir = {state}
socket = {self.sock}
key_file = {self.key}

[receiver]
address = 127.0.0.1:{self.port}
ca_file = {self.certs}/ca.crt
cert_file = {self.certs}/{HOST}.crt
key_file = {self.certs}/{HOST}.key

[volume.bigd]
path = {self.image}
method = external
changes_file = {self.work}/first.json
snapshot = none
chunk_size = {self.a.chunk_bytes}
""")
        self.cbtd = subprocess.Popen(
            [os.path.join(self.bin, "cbtd"), "--config", conf],
            stdout=open(os.path.join(self.work, "cbtd.log"), "w"),
            stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            r = subprocess.run([os.path.join(self.bin, "cbtctl"), "status",
                                "--socket", self.sock], capture_output=True)
            if r.returncode == 0:
                return
            if self.cbtd.poll() is not None:
                break
            time.sleep(0.3)
        raise SystemExit("cbtd did not start: see " +
                         os.path.join(self.work, "cbtd.log"))

    def backup(self, extra, name):
        for pid in (self.cbtd.pid, self.receiver.pid):
            reset_peak(pid)
        argv = [os.path.join(self.bin, "cbtctl"), "backup", "bigd", "--wait",
                "--json", "--socket", self.sock] + extra
        t0 = time.monotonic()
        with open(os.path.join(self.work, f"{name}.log"), "w") as out:
            r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
        wall = time.monotonic() - t0
        text = open(os.path.join(self.work, f"{name}.log")).read()
        if r.returncode != 0 or '"failed"' in text:
            raise SystemExit(f"cbtctl backup failed:\n{text[-2000:]}")
        run = json.loads(text)["runs"][0]
        self.last_version = run["version_id"]
        if run["fallback_reason"]:
            raise SystemExit(f"cbtd fell back: {run['fallback_reason']}")
        return {"wall_s": round(wall, 1), "sender_max_rss_mib":
                round(status_kb(self.cbtd.pid, "VmHWM") / 1024, 1),
                "receiver_peak_rss_mib":
                round(status_kb(self.receiver.pid, "VmHWM") / 1024, 1)}

    def receiver_restore(self, version, name):
        argv = [os.path.join(self.bin, "cbt-receiver"), "restore",
                "--vault", self.vault, "--host", HOST, "--volume", "big",
                "--version", version, "--target", "/dev/null",
                "--key-file", self.key, "--json"]
        wall, rss = time_v(argv, os.path.join(self.work, f"{name}.log"))
        return {"wall_s": round(wall, 1),
                "restorer_peak_rss_mib": round(rss / 1024, 1)}

    def cbtd_restore(self, name):
        ctl = os.path.join(self.bin, "cbtctl")
        # The listing reads each version's summary, not its 8 GiB index.
        t0 = time.monotonic()
        listed = subprocess.run([ctl, "versions", "bigd", "--json",
                                 "--socket", self.sock], capture_output=True,
                                text=True)
        listing_s = round(time.monotonic() - t0, 2)
        if listed.returncode != 0 or self.last_version not in listed.stdout:
            raise SystemExit("cbtctl versions failed or lacks "
                             f"{self.last_version}:\n{listed.stderr[-2000:]}")
        version = self.last_version
        for pid in (self.cbtd.pid, self.receiver.pid):
            reset_peak(pid)
        t0 = time.monotonic()
        with open(os.path.join(self.work, f"{name}.log"), "w") as out:
            r = subprocess.run([ctl, "restore", "bigd", "--version", version,
                                "--target", "/dev/null", "--socket",
                                self.sock], stdout=out,
                               stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise SystemExit("cbtctl restore failed: see " +
                             os.path.join(self.work, f"{name}.log"))
        return {"wall_s": round(time.monotonic() - t0, 1),
                "listing_s": listing_s,
                "restorer_peak_rss_mib":
                round(status_kb(self.cbtd.pid, "VmHWM") / 1024, 1),
                "receiver_peak_rss_mib":
                round(status_kb(self.receiver.pid, "VmHWM") / 1024, 1)}

    def stop(self):
        for p in (getattr(self, "cbtd", None), self.receiver):
            if p and p.poll() is None:
                p.terminate()
                p.wait(timeout=60)


def report(res, out_base):
    chunks = res["size_bytes"] // res["chunk_bytes"]
    lines = [
        f"# Memory at {res['size_bytes'] / (1 << 40):.2f} TiB "
        f"({res['stamp']})", "",
        f"{chunks:,} chunks of {res['chunk_bytes'] >> 10} KiB: an index of "
        f"{chunks * 32 / (1 << 30):.1f} GiB per version. Encryption on, "
        "loopback gRPC with mutual TLS.", "",
        "| sender | backup | wall | sender peak RSS | receiver peak RSS |",
        "|---|---|---:|---:|---:|"]
    for k in ("full", "incremental", "cbtd_full", "cbtd_incremental"):
        if k not in res:
            continue
        r = res[k]
        who = "cbtd" if k.startswith("cbtd") else "cbtctl send"
        lines.append(f"| {who} | {k.replace('cbtd_', '')} | {r['wall_s']} s "
                     f"| {r['sender_max_rss_mib']} MiB | "
                     f"{r['receiver_peak_rss_mib']} MiB |")
    restores = [k for k in ("receiver_restore", "cbtd_restore") if k in res]
    if restores:
        lines += ["", "| restore of the incremental to /dev/null | wall | "
                  "restorer peak RSS | receiver peak RSS |", "|---|---:|---:|---:|"]
    for k in restores:
        r = res[k]
        who = ("cbt-receiver restore (vault directory)"
               if k == "receiver_restore" else "cbtd (cbtctl restore, gRPC)")
        lines.append(f"| {who} | {r['wall_s']} s | "
                     f"{r['restorer_peak_rss_mib']} MiB | "
                     f"{r.get('receiver_peak_rss_mib', '—')} "
                     f"{'MiB ' if 'receiver_peak_rss_mib' in r else ''}|")
    if "cbtd_restore" in res:
        lines += ["", "`cbtctl versions` through cbtd (four 16 TiB versions "
                  f"at the receiver): {res['cbtd_restore']['listing_s']} s."]
    lines += ["", f"Incremental: {res['changes']} chunks changed, spread "
              "evenly across the volume.", "",
              f"Command: `{res['command']}`", ""]
    with open(out_base + ".md", "w") as f:
        f.write("\n".join(lines))
    with open(out_base + ".json", "w") as f:
        json.dump(res, f, indent=2)
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--make-certs",
                   default=os.path.join(HERE, "..", "scripts", "make-certs.sh"))
    p.add_argument("--size", type=size_arg,
                   default=(16 << 40) - (64 << 10))
    p.add_argument("--chunk-bytes", type=int, default=64 << 10)
    p.add_argument("--changes", type=int, default=1000)
    p.add_argument("--work", default="/var/tmp/cbtd-memory-bench")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    out = a.out or os.path.join(HERE, "results", f"{stamp}-memory")
    rig = Rig(a)
    res = {"stamp": stamp, "size_bytes": a.size, "chunk_bytes": a.chunk_bytes,
           "changes": a.changes,
           "command": " ".join(["python3 bench/memory_bench.py"] +
                               sys.argv[1:])}
    try:
        rig.prepare()
        rig.serve()
        log("full backup (zero runs for the holes)")
        res["full"] = rig.send("v1", ["--full"], "full")
        log(f"full: {res['full']}")
        changes = rig.write_changes()
        log("incremental over the streamed base")
        res["incremental"] = rig.send(
            "v2", ["--base-version", "v1", "--changes", changes],
            "incremental")
        log(f"incremental: {res['incremental']}")
        log("restore of the incremental from the vault directory")
        res["receiver_restore"] = rig.receiver_restore("v2",
                                                       "receiver-restore")
        log(f"receiver restore: {res['receiver_restore']}")
        rig.start_cbtd()
        log("cbtd: full")
        res["cbtd_full"] = rig.backup([], "cbtd-full")
        log(f"cbtd full: {res['cbtd_full']}")
        listed = rig.write_changes(seed=18, name="changes-cbtd.txt")
        changes = os.path.join(rig.work, "changes-cbtd.json")
        with open(listed) as f, open(changes, "w") as g:
            json.dump({"generation": "g1", "next_generation": "g2",
                       "extents": [[int(x) for x in line.split()]
                                   for line in f]}, g)
        log("cbtd: incremental")
        res["cbtd_incremental"] = rig.backup(
            ["--changes", f"bigd={changes}"], "cbtd-incremental")
        log(f"cbtd incremental: {res['cbtd_incremental']}")
        log("cbtd: restore of the incremental over gRPC")
        res["cbtd_restore"] = rig.cbtd_restore("cbtd-restore")
        log(f"cbtd restore: {res['cbtd_restore']}")
    finally:
        rig.stop()
    report(res, out)
    subprocess.run(["rm", "-rf", a.work])


if __name__ == "__main__":
    main()
