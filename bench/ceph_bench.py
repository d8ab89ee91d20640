#!/usr/bin/env python3
"""The vault on Ceph against the pool's own limit, and the local vault
beside it, in one run (issue 15).

    sudo bench/run.sh --ceph [--size 2G] [--seconds 10]
    /usr/bin/python3 bench/ceph_bench.py --bin-dir build-bench/bin \
        --cluster-script tests/ceph/ceph-cluster.sh       # as root

A single-node cluster (one mon, one bluestore OSD on a sparse file in
--work, pool size 1: tests/ceph/ceph-cluster.sh) is started for the run and
stopped after it. Measured, each after dropping the page cache:
  * the physical anchor: `rados bench` write (16 MiB objects, the vault's
    pack size, 16 ops in flight) and seq on the same pool;
  * ingest: `cbt-receiver receive` of a full stream of --size random bytes
    (64 KiB chunks, no compression; the stream file is in /dev/shm so
    only the vault's writes cost) into `--vault rados:vault/bench`, and
    into a vault directory in --work (the local backend, same disk);
  * a backup over gRPC: `cbtctl send --full` of the same bytes (an image
    in /dev/shm) to `cbt-receiver serve --insecure` on loopback, as
    another volume (the dedup handshake, then every chunk);
  * restore: `cbt-receiver restore --target /dev/null` of that version
    from each (every chunk read and checked).
Reports MiB/s and the RADOS figures as a fraction of `rados bench` (goal:
at least 80%), and writes bench/results/<UTC stamp>-ceph.{json,md}.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20


def log(msg):
    print(f"[ceph-bench] {msg}", file=sys.stderr, flush=True)


def size_arg(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed(argv, **kw):
    drop_caches()
    start = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    seconds = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"ceph-bench: {' '.join(argv[:3])}... failed "
                 f"({r.returncode}): {r.stderr[-2000:]}")
    return seconds, r


def rados_bench(conf, mode, seconds):
    # The test cluster's config fails ops after 10 s; 16 ops of 16 MiB in
    # flight on one OSD can wait longer than that without anything wrong.
    env = dict(os.environ, CEPH_CONF=conf,
               CEPH_ARGS="--rados-osd-op-timeout 120")
    extra = ["-b", str(16 * MIB), "--no-cleanup"] if mode == "write" else []
    # A bluestore OSD just started sometimes times an op out on its first
    # burst: tried three times.
    for attempt in range(3):
        drop_caches()
        r = subprocess.run(["rados", "-p", "vault", "bench", str(seconds),
                            mode, "-t", "16", *extra], env=env,
                           capture_output=True, text=True,
                           timeout=seconds * 4 + 120)
        if r.returncode == 0:
            break
        log(f"rados bench {mode} failed ({r.stderr.strip()[-200:]}); again")
    if r.returncode != 0:
        sys.exit(f"ceph-bench: rados bench {mode}: {r.stderr[-2000:]}")
    m = re.search(r"Bandwidth \(MB/sec\):\s+([\d.]+)", r.stdout)
    if not m:
        sys.exit(f"ceph-bench: no bandwidth in rados bench {mode} output")
    return float(m.group(1))  # rados bench's MB is MiB (bytes / 2^20)


class Run:
    def __init__(self, args):
        self.args = args
        self.bin = args.bin_dir
        self.work = args.work
        self.cluster = f"{self.work}/cluster"
        self.conf = f"{self.cluster}/ceph.conf"
        self.stream = "/dev/shm/cbtd-ceph-bench.stream"
        self.image = "/dev/shm/cbtd-ceph-bench.img"
        self.results = {"size_bytes": args.size, "chunk_bytes": 65536}

    def receiver(self, *argv):
        return [f"{self.bin}/cbt-receiver", *argv]

    def rados_vault(self):
        return ["--vault", "rados:vault/bench", "--ceph-conf", self.conf,
                "--ceph-user", "admin"]

    def prepare(self):
        os.makedirs(self.work, exist_ok=True)
        image = self.image
        log(f"writing a {self.args.size // MIB} MiB random image")
        with open("/dev/urandom", "rb") as src, open(image, "wb") as dst:
            left = self.args.size
            while left:
                block = src.read(min(left, 8 * MIB))
                dst.write(block)
                left -= len(block)
        log("producing the full stream")
        subprocess.run([f"{self.bin}/cbtctl", "send", image, "--full",
                        "--host", "bench", "--volume", "d", "--version-id",
                        "v1", "--chunk-size", "65536", "--compression",
                        "none", "-o", self.stream], check=True)
        log("starting a bluestore cluster")
        subprocess.run([self.args.cluster_script, "start", self.cluster,
                        "bluestore"], check=True, stdout=subprocess.DEVNULL)

    def backend(self, name, vault_args):
        log(f"{name}: receive")
        with open(self.stream, "rb") as stream:
            secs, _ = timed(self.receiver("receive", *vault_args, "--create"),
                            stdin=stream)
        ingest = self.args.size / MIB / secs
        log(f"{name}: restore to /dev/null")
        secs_r, _ = timed(self.receiver(
            "restore", *vault_args, "--host", "bench", "--volume", "d",
            "--version", "v1", "--target", "/dev/null"))
        restore = self.args.size / MIB / secs_r
        backup = self.args.size / MIB / self.backup(name, vault_args)
        self.results[name] = {"ingest_mib_s": ingest, "ingest_s": secs,
                              "restore_mib_s": restore, "restore_s": secs_r,
                              "backup_mib_s": backup}
        log(f"{name}: ingest {ingest:.0f} MiB/s, restore {restore:.0f} "
            f"MiB/s, backup over gRPC {backup:.0f} MiB/s")

    def backup(self, name, vault_args):
        log(f"{name}: backup over gRPC")
        out = f"{self.work}/serve-{name}.out"
        serve = subprocess.Popen(
            self.receiver("serve", *vault_args, "--listen", "127.0.0.1:0",
                          "--insecure"),
            stdout=open(out, "w"), stderr=subprocess.DEVNULL)
        try:
            port = None
            for _ in range(600):
                m = re.search(r"\(port (\d+)", open(out).read())
                if m:
                    port = m.group(1)
                    break
                time.sleep(0.1)
            if port is None:
                sys.exit("ceph-bench: serve did not start")
            secs, _ = timed([f"{self.bin}/cbtctl", "send", self.image,
                             "--full", "--to", f"127.0.0.1:{port}",
                             "--insecure", "--host", "bench", "--volume",
                             "e", "--version-id", "v1", "--chunk-size",
                             "65536", "--compression", "none",
                             "--no-progress"])
            return secs
        finally:
            serve.terminate()
            serve.wait()

    def measure(self):
        secs = self.args.seconds
        log("rados bench write")
        self.results["rados_bench_write_mib_s"] = rados_bench(
            self.conf, "write", secs)
        log("rados bench seq")
        self.results["rados_bench_seq_mib_s"] = rados_bench(
            self.conf, "seq", secs)
        subprocess.run(["rados", "-p", "vault", "cleanup"],
                       env=dict(os.environ, CEPH_CONF=self.conf),
                       capture_output=True)
        self.backend("rados", self.rados_vault())
        self.backend("local", ["--vault", f"{self.work}/vault"])

    def stop(self):
        subprocess.run([self.args.cluster_script, "stop", self.cluster],
                       capture_output=True)
        for path in (self.stream, self.image, f"{self.work}/vault"):
            if os.path.isdir(path):
                shutil.rmtree(path, True)
            elif os.path.exists(path):
                os.remove(path)

    def report(self, stamp):
        r = self.results
        w, s = r["rados_bench_write_mib_s"], r["rados_bench_seq_mib_s"]
        r["rados_ingest_of_rados_bench_write"] = r["rados"]["ingest_mib_s"] / w
        r["rados_restore_of_rados_bench_seq"] = r["rados"]["restore_mib_s"] / s
        r["rados_backup_of_rados_bench_write"] = r["rados"]["backup_mib_s"] / w
        base = f"{HERE}/results/{stamp}-ceph"
        with open(base + ".json", "w") as f:
            json.dump(r, f, indent=2)
        lines = [
            f"# The vault on Ceph, {stamp}",
            "",
            f"`sudo bench/run.sh --ceph --size {self.args.size // MIB}M "
            f"--seconds {self.args.seconds}`: {self.args.size // MIB} MiB "
            "of random bytes, 64 KiB chunks, no compression; one bluestore "
            "OSD on a sparse file, pool size 1.",
            "",
            "| | ingest (receive) MiB/s | backup over gRPC MiB/s | "
            "restore to /dev/null MiB/s |",
            "|---|---|---|---|",
            f"| `rados bench` (16 MiB objects, 16 in flight) | {w:.0f} "
            f"(write) | {w:.0f} (write) | {s:.0f} (seq) |",
            f"| vault on RADOS | {r['rados']['ingest_mib_s']:.0f} "
            f"({r['rados_ingest_of_rados_bench_write']:.0%}) "
            f"| {r['rados']['backup_mib_s']:.0f} "
            f"({r['rados_backup_of_rados_bench_write']:.0%}) "
            f"| {r['rados']['restore_mib_s']:.0f} "
            f"({r['rados_restore_of_rados_bench_seq']:.0%}) |",
            f"| vault directory (same disk) | "
            f"{r['local']['ingest_mib_s']:.0f} | "
            f"{r['local']['backup_mib_s']:.0f} | "
            f"{r['local']['restore_mib_s']:.0f} |",
            "",
            "Percentages: of `rados bench` on the same pool (goal: 80%).",
            "",
        ]
        with open(base + ".md", "w") as f:
            f.write("\n".join(lines))
        print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--cluster-script", required=True)
    p.add_argument("--size", type=size_arg, default=2 << 30)
    p.add_argument("--seconds", type=int, default=10,
                   help="length of each rados bench run")
    p.add_argument("--work", default="/var/tmp/cbtd-ceph-bench")
    args = p.parse_args()
    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    run = Run(args)
    try:
        run.prepare()
        run.measure()
        run.report(stamp)
    finally:
        run.stop()


if __name__ == "__main__":
    main()
