#!/usr/bin/env python3
"""Instant access over NBD against a full restore, on one machine, in one run.

    sudo bench/run.sh --nbd [--size 2G]        (builds, then runs this)
    cmake --build build --target bench-image   # then, as root:
    /usr/bin/python3 bench/nbd_bench.py --bin-dir build/bin --size 1G

One encrypted version of a bench image (bench-image: mixed compressible and
random data, some zero runs) is stored in a vault served by cbt-receiver on
a unix socket. Then, each from a cold page cache:
  * full restore to /dev/null: `cbt-receiver restore` from the vault (no
    network) and `cbtctl restore` through cbtd over gRPC (the export's path);
  * sequential read of the whole export (`cbtctl export`, read by nbdcopy
    into null:), and the same read again from a fresh export;
  * random 4 KiB reads (python3-libnbd, one at a time): latency median and
    p99, cold (a fresh export, empty cache) and warm (the same offsets again).
Reports ratios (NBD sequential / restore) and writes
bench/results/<UTC stamp>-nbd.{json,md}.
"""

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(f"[nbd-bench] {msg}", file=sys.stderr, flush=True)


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        log("cannot drop the page cache (not root?): cold reads are warm")


def timed(argv, **kw):
    t0 = time.monotonic()
    subprocess.run(argv, check=True, **kw)
    return time.monotonic() - t0


def size_arg(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


class Rig:
    """A vault with one version, its receiver, cbtd and the config."""

    def __init__(self, args):
        self.bin = os.path.abspath(args.bin_dir)
        self.w = args.workdir
        self.size = args.size
        self.host = socket.gethostname().split(".")[0]
        self.procs = []

    def tool(self, name):
        return os.path.join(self.bin, name)

    def setup(self, image_tool, seed):
        shutil.rmtree(self.w, ignore_errors=True)
        os.makedirs(self.w + "/state")
        self.image = self.w + "/image.raw"
        subprocess.run([image_tool, "create", "--out", self.image,
                        "--size-bytes", str(self.size), "--seed", str(seed)],
                       check=True)
        self.key = self.w + "/tenant.key"
        subprocess.run([self.tool("cbtctl"), "key", "create", "--key-file",
                        self.key], check=True, capture_output=True)
        stream = self.w + "/v1.stream"
        with open(stream, "wb") as out:
            subprocess.run([self.tool("cbtctl"), "send", self.image,
                            "--host", self.host, "--volume", "img",
                            "--version-id", "v1", "--key-file", self.key],
                           check=True, stdout=out, stderr=subprocess.DEVNULL)
        with open(stream, "rb") as inp:
            subprocess.run([self.tool("cbt-receiver"), "receive", "--vault",
                            self.w + "/vault", "--create"], check=True,
                           stdin=inp, stdout=subprocess.DEVNULL)
        os.remove(stream)
        self.conf = self.w + "/cbtd.conf"
        with open(self.conf, "w") as f:
            f.write(f"[agent]\nstate_dir = {self.w}/state\n"
                    f"socket = {self.w}/cbtd.sock\n"
                    f"encryption = aes-256-gcm\nkey_file = {self.key}\n"
                    f"[receiver]\naddress = unix:{self.w}/rx.sock\n"
                    f"[volume.img]\npath = {self.image}\nsnapshot = none\n")
        self.spawn([self.tool("cbt-receiver"), "serve", "--vault",
                    self.w + "/vault", "--listen", f"unix:{self.w}/rx.sock",
                    "--insecure"], self.w + "/rx.sock")
        self.spawn([self.tool("cbtd"), "--config", self.conf],
                   self.w + "/cbtd.sock")

    def spawn(self, argv, ready_path):
        self.procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        for _ in range(200):
            if os.path.exists(ready_path):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{argv[0]} did not come up")

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait()

    # --- the measured steps -------------------------------------------------
    def local_restore(self):
        return timed([self.tool("cbt-receiver"), "restore", "--vault",
                      self.w + "/vault", "--host", self.host, "--volume",
                      "img", "--version", "v1", "--key-file", self.key,
                      "--target", "/dev/null"], stdout=subprocess.DEVNULL)

    def remote_restore(self):
        return timed([self.tool("cbtctl"), "restore", "img", "--version",
                      "v1", "--target", "/dev/null", "--socket",
                      self.w + "/cbtd.sock"], stdout=subprocess.DEVNULL)

    def export(self, name, cache_mib=64):
        out = subprocess.run(
            [self.tool("cbtctl"), "export", "img", "--version", "v1",
             "--local", "--config", self.conf, "--run-dir", self.w + "/run",
             "--name", name, "--cache-mib", str(cache_mib), "--json"],
            check=True, capture_output=True, text=True)
        return json.loads(out.stdout)["uri"]

    def unexport(self, name):
        subprocess.run([self.tool("cbtctl"), "export", "--stop", name,
                        "--run-dir", self.w + "/run"], check=True,
                       stdout=subprocess.DEVNULL)


def random_reads(uri, offsets):
    import nbd  # python3-libnbd
    h = nbd.NBD()
    h.connect_uri(uri)
    lat = []
    for off in offsets:
        t0 = time.perf_counter()
        h.pread(4096, off)
        lat.append((time.perf_counter() - t0) * 1000.0)
    h.shutdown()
    lat.sort()
    return {"median_ms": statistics.median(lat),
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "reads": len(lat)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build",
                                                     "bin"))
    p.add_argument("--image-tool", default=None,
                   help="bench-image (default: BIN_DIR/bench-image)")
    p.add_argument("--size", type=size_arg, default=1 << 30)
    p.add_argument("--reads", type=int, default=500,
                   help="random 4 KiB reads per pass")
    p.add_argument("--random-cache-mib", type=int, default=256,
                   help="the random-read export's cache (the default 64 "
                   "MiB holds 256 chunks of 256 KiB)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", default="/var/tmp/cbtd-bench-nbd")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    args = p.parse_args()
    image_tool = args.image_tool or os.path.join(args.bin_dir, "bench-image")
    rig = Rig(args)
    mib = args.size / (1 << 20)
    res = {"size_bytes": args.size, "host": rig.host,
           "command": " ".join(sys.argv)}
    try:
        log(f"storing a {mib:.0f} MiB version (encrypted)")
        rig.setup(image_tool, args.seed)
        for name, step in [("restore_local", rig.local_restore),
                           ("restore_remote", rig.remote_restore)]:
            drop_caches()
            secs = step()
            res[name] = {"seconds": secs, "mib_per_s": mib / secs}
            log(f"{name}: {secs:.2f} s, {mib / secs:.0f} MiB/s")
        for run in ("nbd_seq_1", "nbd_seq_2"):
            uri = rig.export(run)
            drop_caches()
            secs = timed(["nbdcopy", uri, "null:"])
            rig.unexport(run)
            res[run] = {"seconds": secs, "mib_per_s": mib / secs}
            log(f"{run}: {secs:.2f} s, {mib / secs:.0f} MiB/s")
        rng = random.Random(args.seed)
        offsets = [rng.randrange(0, args.size // 4096) * 4096
                   for _ in range(args.reads)]
        # A cache that holds every chunk the reads touch: the warm pass
        # measures hits, not a cache too small for the read set.
        uri = rig.export("random", cache_mib=args.random_cache_mib)
        res["random_cache_mib"] = args.random_cache_mib
        drop_caches()
        res["random_cold"] = random_reads(uri, offsets)
        res["random_warm"] = random_reads(uri, offsets)
        rig.unexport("random")
        log(f"random 4 KiB: cold {res['random_cold']}, warm "
            f"{res['random_warm']}")
    finally:
        rig.stop()
    best_seq = max(res["nbd_seq_1"]["mib_per_s"], res["nbd_seq_2"]["mib_per_s"])
    res["ratio_nbd_seq_to_restore_remote"] = (
        best_seq / res["restore_remote"]["mib_per_s"])
    res["ratio_nbd_seq_to_restore_local"] = (
        best_seq / res["restore_local"]["mib_per_s"])
    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, f"{stamp}-nbd")
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(report(res, mib))
    print(report(res, mib))


def report(res, mib):
    rows = [
        ("full restore to /dev/null, from the vault (cbt-receiver restore)",
         res["restore_local"]),
        ("full restore to /dev/null, over gRPC (cbtctl restore via cbtd)",
         res["restore_remote"]),
        ("NBD export read whole (nbdcopy), run 1", res["nbd_seq_1"]),
        ("NBD export read whole (nbdcopy), run 2", res["nbd_seq_2"]),
    ]
    out = [f"# NBD instant access, {mib:.0f} MiB encrypted version\n",
           f"`{res['command']}`\n", "| step | seconds | MiB/s |",
           "|---|---|---|"]
    out += [f"| {n} | {r['seconds']:.2f} | {r['mib_per_s']:.0f} |"
            for n, r in rows]
    out.append("")
    out.append("| ratio | value | goal |")
    out.append("|---|---|---|")
    out.append(f"| NBD sequential / restore over gRPC | "
               f"{res['ratio_nbd_seq_to_restore_remote']:.2f} | >= 0.50 |")
    out.append(f"| NBD sequential / restore from the vault | "
               f"{res['ratio_nbd_seq_to_restore_local']:.2f} | - |")
    out.append("")
    out.append(f"| random 4 KiB reads (cache {res['random_cache_mib']} MiB) "
               "| median ms | p99 ms |")
    out.append("|---|---|---|")
    for k in ("random_cold", "random_warm"):
        out.append(f"| {k.split('_')[1]} ({res[k]['reads']} reads) | "
                   f"{res[k]['median_ms']:.3f} | {res[k]['p99_ms']:.3f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
