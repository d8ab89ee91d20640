#!/usr/bin/python3
"""cbtd against its peers: incremental cost follows changed bytes.

Run through bench/run.sh, which installs the tools and builds the binaries.
Every figure in the output is measured in this run: /usr/bin/time -v for
wall, CPU and peak RSS, /proc/<pid>/io for bytes read and written (the
wrapper reads its own counters after reaping the measured child, which the
kernel folds into the parent), program counters for bytes over the wire
(rsync --stats, the loopback interface of a private network namespace for
gRPC, the sender's written bytes for a pipe), du for bytes added to a
repository.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cbtd_adapter  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30


# --- measuring one process ----------------------------------------------------
def read_io():
    out = {}
    with open("/proc/self/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k.strip()] = int(v)
    return out


def parse_time_v(path):
    """The fields of /usr/bin/time -v we report."""
    m = {}
    with open(path) as f:
        text = f.read()
    def num(label):
        r = re.search(re.escape(label) + r":\s*([0-9.:]+)", text)
        return r.group(1) if r else None
    m["user_s"] = float(num("User time (seconds)") or 0)
    m["sys_s"] = float(num("System time (seconds)") or 0)
    m["max_rss_kb"] = int(num("Maximum resident set size (kbytes)") or 0)
    wall = num("Elapsed (wall clock) time (h:mm:ss or m:ss)") or "0"
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    m["time_wall_s"] = secs
    m["exit_status"] = int(num("Exit status") or 0)
    return m


def measure_main(argv):
    """`bench.py _measure OUT.json -- CMD...`: run CMD under time -v."""
    out, cmd = argv[0], argv[2:]
    tfile = out + ".time"
    io0 = read_io()
    t0 = time.monotonic()
    p = subprocess.Popen(["/usr/bin/time", "-v", "-o", tfile] + cmd)
    # Forward SIGTERM to the measured command (time's child), so a serving
    # receiver stops cleanly and time still writes its report.
    def forward(*_):
        try:
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        for k in kids:
            os.kill(k, signal.SIGTERM)
    signal.signal(signal.SIGTERM, forward)
    rc = p.wait()
    wall = time.monotonic() - t0
    io1 = read_io()
    m = parse_time_v(tfile) if os.path.exists(tfile) else {}
    m.update({"argv": cmd, "exit": rc, "wall_s": wall})
    for k in ("rchar", "wchar", "read_bytes", "write_bytes"):
        m[k] = io1[k] - io0[k]
    with open(out, "w") as f:
        json.dump(m, f)
    return rc


class Runner:
    def __init__(self, work, drop_caches):
        self.work = work
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.drop = drop_caches
        self.cold = []  # files whose pages are evicted before every step
        self.n = 0

    def _spawn(self, name, cmd, stdin=None, stdout=None, env=None, cwd=None,
               session=False):
        self.n += 1
        base = os.path.join(self.logs, f"{self.n:03d}-{name}")
        err = open(base + ".err", "w")
        p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_measure",
             base + ".json", "--"] + cmd,
            stdin=stdin, stdout=stdout if stdout is not None else err,
            stderr=err, env=env, cwd=cwd, start_new_session=session)
        return p, base

    @staticmethod
    def _result(p, base):
        try:
            with open(base + ".json") as f:
                m = json.load(f)
        except (OSError, ValueError):
            m = {"exit": p.returncode, "wall_s": 0.0}
        m["log"] = base + ".err"
        return m

    def settle(self, sync_dir):
        """Before a measured step: flush, then evict the source and the
        step's destination from the page cache so their reads hit the disk.
        Programs and libraries stay cached (a backup agent runs warm), so
        read_bytes counts data, not the loading of binaries."""
        subprocess.run(["sync", "-f", sync_dir])
        if self.drop:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return
        for p in list(self.cold) + [sync_dir]:
            evict(p)

    def syncfs(self, d):
        t0 = time.monotonic()
        subprocess.run(["sync", "-f", d])
        return time.monotonic() - t0

    def single(self, name, cmd, sync_dir, env=None, cwd=None, stdout=None):
        self.settle(sync_dir)
        t0 = time.monotonic()
        p, base = self._spawn(name, cmd, env=env, cwd=cwd, stdout=stdout)
        p.wait()
        sync_s = self.syncfs(sync_dir)
        m = self._result(p, base)
        return {"wall_s": time.monotonic() - t0, "sync_s": sync_s,
                "ok": p.returncode == 0, "procs": {name: m}}

    def pipe(self, name, sender, receiver, sync_dir):
        self.settle(sync_dir)
        t0 = time.monotonic()
        ps, bs = self._spawn(name + "-send", sender, stdout=subprocess.PIPE)
        pr, br = self._spawn(name + "-recv", receiver, stdin=ps.stdout)
        ps.stdout.close()
        ps.wait()
        pr.wait()
        sync_s = self.syncfs(sync_dir)
        ms, mr = self._result(ps, bs), self._result(pr, br)
        return {"wall_s": time.monotonic() - t0, "sync_s": sync_s,
                "ok": ps.returncode == 0 and pr.returncode == 0,
                "wire_bytes": ms.get("wchar", 0),
                "procs": {"sender": ms, "receiver": mr}}

    def grpc(self, name, sender, receiver, listen, sync_dir):
        """Receiver serves, sender sends, inside a private network namespace:
        the namespace's loopback counters are this step's bytes on the wire."""
        self.settle(sync_dir)
        me = [sys.executable, os.path.abspath(__file__)]
        script = os.path.join(self.logs, f"{name}-grpc.json")
        t0 = time.monotonic()
        r = subprocess.run(
            ["unshare", "-n", "--"] + me + ["_grpc", self.logs, name, listen,
                                            script, json.dumps(sender),
                                            json.dumps(receiver)])
        wall = time.monotonic() - t0
        sync_s = self.syncfs(sync_dir)
        try:
            with open(script) as f:
                res = json.load(f)
        except (OSError, ValueError):
            res = {"ok": False, "procs": {}}
        res["wall_s"] = res.get("send_wall_s", wall)
        res["sync_s"] = sync_s
        res["ok"] = res.get("ok", False) and r.returncode == 0
        return res


def evict(path):
    """posix_fadvise(DONTNEED) on a file, a block device or a tree."""
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for f in files:
                evict(os.path.join(root, f))
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fdatasync(fd) if os.path.isfile(path) else None
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def lo_bytes():
    with open("/proc/net/dev") as f:
        for line in f:
            if line.strip().startswith("lo:"):
                v = line.split(":")[1].split()
                return int(v[0]) + int(v[8])  # rx + tx
    return 0


def grpc_main(argv):
    """Inside `unshare -n`: bring lo up, serve, send, stop, count."""
    logs, name, listen, out, sender, receiver = argv
    sender, receiver = json.loads(sender), json.loads(receiver)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    r = Runner.__new__(Runner)
    r.logs, r.n, r.drop, r.cold = logs, 0, False, []
    pr, br = r._spawn(name + "-serve", receiver, session=True)
    host, port = listen.rsplit(":", 1)
    import socket
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until the receiver listens
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
            time.sleep(0.2)  # listening is not yet serving
            break
        except OSError:
            if pr.poll() is not None:
                break
            time.sleep(0.05)
    lo0 = lo_bytes()
    t0 = time.monotonic()
    ps, bs = r._spawn(name + "-send", sender)
    ps.wait()
    send_wall = time.monotonic() - t0
    lo1 = lo_bytes()
    if pr.poll() is None:
        pr.send_signal(signal.SIGTERM)
        try:
            pr.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pr.pid, signal.SIGKILL)  # wrapper, time and receiver
            pr.wait()
    ms, mr = Runner._result(ps, bs), Runner._result(pr, br)
    # Loopback counts each packet once as tx and once as rx.
    res = {"ok": ps.returncode == 0, "send_wall_s": send_wall, "served": True,
           "wire_bytes": (lo1 - lo0) // 2,
           "procs": {"sender": ms, "receiver": mr}}
    with open(out, "w") as f:
        json.dump(res, f)
    return 0


# --- helpers ------------------------------------------------------------------
def du_bytes(path):
    if not os.path.exists(path):
        return 0
    r = subprocess.run(["du", "-sb", path], capture_output=True, text=True)
    return int(r.stdout.split()[0]) if r.returncode == 0 else 0


def size_arg(s):
    m = re.fullmatch(r"(\d+)([KMGT]?)i?B?", s.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s}")
    mult = {"": 1, "K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}
    return int(m.group(1)) * mult[m.group(2).upper()]


def human(n):
    for unit, div in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= div:
            return f"{n / div:.{0 if n % div == 0 else 1}f} {unit}"
    return f"{n} B"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def summarize(res, tool, phase, **extra):
    """One row: totals over the processes of a step."""
    procs = res.get("procs", {})
    # Wall of a step: the longest /usr/bin/time elapsed of its processes
    # (they run concurrently), which leaves out the measuring wrapper's own
    # start-up; with a served receiver, the sender's alone. The clock around
    # the whole step is kept as outer_wall_s.
    timed = [p.get("time_wall_s") for k, p in procs.items()
             if not (res.get("served") and k == "receiver")]
    timed = [t for t in timed if t is not None]
    row = {"tool": tool, "phase": phase, "ok": res.get("ok", False),
           "wall_s": round(max(timed) if timed else res.get("wall_s", 0.0),
                           3),
           "outer_wall_s": round(res.get("wall_s", 0.0), 3),
           "sync_s": round(res.get("sync_s", 0.0), 3)}
    row["cpu_s"] = round(sum(p.get("user_s", 0) + p.get("sys_s", 0)
                             for p in procs.values()), 3)
    row["read_bytes"] = sum(p.get("read_bytes", 0) for p in procs.values())
    row["rchar"] = sum(p.get("rchar", 0) for p in procs.values())
    row["peak_rss_kb"] = {k: p.get("max_rss_kb", 0) for k, p in procs.items()}
    row["wire_bytes"] = res.get("wire_bytes")
    row["procs"] = procs
    row.update(extra)
    if not row["ok"]:
        logs = [p.get("log") for p in procs.values() if p.get("exit", 0) != 0]
        tail = ""
        for lp in logs:
            if lp and os.path.exists(lp):
                with open(lp, errors="replace") as f:
                    tail += f.read()[-400:]
        row["error"] = tail.strip() or "failed"
    return row


# --- the peers ------------------------------------------------------------------
class Peer:
    """A tool measured on the same data and change as cbtd."""
    name = ""

    def __init__(self, bench, tag):
        self.b = bench
        self.dir = os.path.join(bench.work, f"{self.name}-{tag}")
        os.makedirs(self.dir, exist_ok=True)

    def repo(self):
        return self.dir


class FullCopy(Peer):
    name = "full-copy"

    def backup(self, src, phase, **kw):
        dst = os.path.join(self.dir, "copy.img")
        before = du_bytes(self.dir)
        res = self.b.r.single(f"{self.name}-{phase}",
                              ["dd", f"if={src}", f"of={dst}", "bs=4M",
                               "status=none"], self.dir)
        res["wire_bytes"] = kw.get("size_bytes")
        return summarize(res, self.name, phase,
                         repo_added_bytes=du_bytes(self.dir) - before, **kw)

    def restore(self, dst, **kw):
        src = os.path.join(self.dir, "copy.img")
        res = self.b.r.single(f"{self.name}-restore",
                              ["dd", f"if={src}", f"of={dst}", "bs=4M",
                               "status=none"], os.path.dirname(dst))
        return summarize(res, self.name, "restore", **kw)


class Rsync(Peer):
    name = "rsync"

    def backup(self, src, phase, **kw):
        dst = os.path.join(self.dir, "mirror.img")
        before = du_bytes(self.dir)
        res = self.b.r.single(
            f"{self.name}-{phase}",
            ["rsync", "--inplace", "--no-whole-file", "-I", "--stats", src,
             dst], self.dir)
        log_path = list(res["procs"].values())[0]["log"]
        with open(log_path) as f:
            text = f.read()
        sent = re.search(r"Total bytes sent: ([\d,]+)", text)
        recv = re.search(r"Total bytes received: ([\d,]+)", text)
        if sent and recv:
            res["wire_bytes"] = (int(sent.group(1).replace(",", "")) +
                                 int(recv.group(1).replace(",", "")))
        return summarize(res, self.name, phase,
                         repo_added_bytes=du_bytes(self.dir) - before, **kw)


class Restic(Peer):
    name = "restic"

    def env(self):
        e = dict(os.environ)
        e.update({"RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY":
                  os.path.join(self.dir, "repo"),
                  "RESTIC_CACHE_DIR": os.path.join(self.dir, "cache")})
        return e

    def backup(self, src, phase, **kw):
        repo = os.path.join(self.dir, "repo")
        if not os.path.exists(repo):
            subprocess.run(["restic", "init"], env=self.env(), check=True,
                           capture_output=True)
        before = du_bytes(repo)
        res = self.b.r.single(f"{self.name}-{phase}",
                              ["restic", "backup", "--json", src], self.dir,
                              env=self.env())
        return summarize(res, self.name, phase,
                         repo_added_bytes=du_bytes(repo) - before, **kw)

    def restore(self, dst, **kw):
        target = os.path.join(os.path.dirname(dst), "restic-restore")
        res = self.b.r.single(f"{self.name}-restore",
                              ["restic", "restore", "latest", "--target",
                               target], os.path.dirname(dst), env=self.env())
        shutil.rmtree(target, ignore_errors=True)
        return summarize(res, self.name, "restore", **kw)


class Borg(Peer):
    name = "borg"

    def env(self):
        e = dict(os.environ)
        e.update({"BORG_BASE_DIR": os.path.join(self.dir, "base"),
                  "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                  "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"})
        return e

    def backup(self, src, phase, **kw):
        repo = os.path.join(self.dir, "repo")
        if not os.path.exists(repo):
            subprocess.run(["borg", "init", "-e", "none", repo],
                           env=self.env(), check=True, capture_output=True)
        before = du_bytes(repo)
        self.last = f"{repo}::{phase}"
        res = self.b.r.single(f"{self.name}-{phase}",
                              ["borg", "create", self.last, src], self.dir,
                              env=self.env())
        return summarize(res, self.name, phase,
                         repo_added_bytes=du_bytes(repo) - before, **kw)

    def restore(self, dst, **kw):
        target = os.path.join(os.path.dirname(dst), "borg-restore")
        os.makedirs(target, exist_ok=True)
        res = self.b.r.single(f"{self.name}-restore",
                              ["borg", "extract", self.last], target,
                              env=self.env(), cwd=target)
        shutil.rmtree(target, ignore_errors=True)
        return summarize(res, self.name, "restore", **kw)


class CbtdTool:
    """A cbtd chain: its own vault, full then incrementals of one method."""

    def __init__(self, bench, method, tag, compression="zstd"):
        self.b = bench
        self.method = method          # "external" or "hash"
        self.name = f"cbtd-{method}" + ("" if compression == "zstd"
                                        else f"-{compression}")
        self.vault = os.path.join(bench.work, f"vault-{method}-{tag}")
        self.volume = "bench"
        self.a = cbtd_adapter.Cbtd(bench.bin_dir, bench.certs, compression,
                                   bench.args.chunk_bytes, bench.key_file)
        self.seq = 0
        self.pending = []     # change lists not yet in a committed version
        self.in_sync = False  # newest version == the source now

    def next_version(self):
        self.seq += 1
        return f"v{self.seq:04d}"

    def repo(self):
        return self.vault

    def _run(self, step, phase):
        name = f"{self.name}-{phase}"
        if step.kind == "grpc":
            return self.b.r.grpc(name, step.sender, step.receiver,
                                 step.listen, self.vault)
        if step.kind == "pipe":
            return self.b.r.pipe(name, step.sender, step.receiver, self.vault)
        return self.b.r.single(name, step.sender, self.vault)

    def clone_from(self, other):
        """Start this chain from a copy of `other`'s vault (same full), so a
        full is not sent twice."""
        shutil.rmtree(self.vault, ignore_errors=True)
        shutil.copytree(other.vault, self.vault)
        self.seq = other.seq
        self.in_sync = other.in_sync

    def backup(self, src, phase, extents=None, full=False, **kw):
        os.makedirs(self.vault, exist_ok=True)
        t = self.b.transport
        if extents:
            # Changes since the last committed version: after a failed step
            # the lists of every change since then, so nothing is missed.
            self.pending.append(extents)
            if len(self.pending) > 1:
                merged = extents + ".pending"
                with open(merged, "w") as out:
                    for pth in self.pending:
                        with open(pth) as f:
                            out.write(f.read())
                extents = merged
        v = self.next_version()
        if full:
            step = self.a.full_backup(src, self.volume, v, self.vault, t)
        elif self.method == "external":
            step = self.a.incremental_external(src, self.volume, v,
                                               self.vault, extents, t)
        else:
            step = self.a.incremental_hash(src, self.volume, v, self.vault, t)
        before = du_bytes(self.vault)
        res = self._run(step, phase)
        if (step.kind == "grpc" and not res["ok"] and
                "failed to connect" in _sender_err(res)):
            # Noted, then retried once: a refused connection is a finding
            # for the transport, not a measurement of the backup.
            first = _sender_err(res)[-300:]
            self.b.note(f"{self.name} {phase}: sender could not connect "
                        f"({first.strip()}); retried once")
            res = self._run(step, phase + "-retry")
            res["retried_after"] = first
        counters = None
        log_path = res.get("procs", {}).get("sender", {}).get("log")
        if log_path and os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                counters = self.a.sender_counters(f.read())
        self.in_sync = res["ok"]
        if res["ok"]:
            self.pending = []
        return summarize(res, self.name, phase, transport=step.kind,
                         sender_counters=counters,
                         repo_added_bytes=du_bytes(self.vault) - before, **kw)

    def profile(self, src, extents, tag):
        """perf record of the sender of the next incremental, to /dev/null
        (same base, same change: the work of the measured run without the
        receiver). Returns the top of `perf report` or None."""
        if not shutil.which("perf"):
            return None
        if self.method == "external":
            step = self.a.incremental_external(src, self.volume, "profile",
                                               self.vault, extents, "pipe")
        else:
            step = self.a.incremental_hash(src, self.volume, "profile",
                                           self.vault, "pipe")
        data = os.path.join(self.b.r.logs, f"perf-{self.name}-{tag}.data")
        self.b.r.settle(self.vault)
        with open(os.devnull, "wb") as null:
            r = subprocess.run(["perf", "record", "-q", "-g", "-o", data,
                                "--"] + step.sender, stdout=null,
                               stderr=subprocess.PIPE)
        if r.returncode != 0:
            return None
        lines = []
        for sort, n in (("dso", 8), ("dso,sym", 14)):
            rep = subprocess.run(["perf", "report", "-i", data, "--stdio",
                                  "--no-children", "-g", "none",
                                  "--percent-limit", "1", "--sort", sort],
                                 capture_output=True, text=True)
            lines += [ln.rstrip() for ln in rep.stdout.splitlines()
                      if ln.strip() and not ln.startswith("#")][:n] + [""]
        return lines

    def restore(self, dst, **kw):
        res = self._run(self.a.full_restore(self.vault, self.volume, dst),
                        "restore")
        return summarize(res, self.name, "restore", **kw)


# --- the benchmark ------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.workdir
        self.bin_dir = args.bin_dir
        self.image_tool = args.image_tool or os.path.join(self.bin_dir,
                                                          "bench-image")
        os.makedirs(self.work, exist_ok=True)
        self.r = Runner(self.work, args.drop_caches)
        self.results = {"rows": [], "notes": []}
        self.certs = None
        self.transport = "pipe"
        self.key_file = None  # the tenant key of every cbtd chain (or none)

    def note(self, msg):
        log("NOTE: " + msg)
        self.results["notes"].append(msg)

    def add(self, row):
        self.results["rows"].append(row)
        status = "ok" if row["ok"] else "FAILED: " + row.get("error", "")[-200:]
        log(f"  {row['tool']:<18} {row['phase']:<14} "
            f"wall {row['wall_s']:8.2f}s cpu {row['cpu_s']:7.2f}s "
            f"read {human(row['read_bytes']):>10} {status}")
        return row

    # --- environment --------------------------------------------------------
    def probe_cbtd(self):
        a = cbtd_adapter.Cbtd(self.bin_dir)
        avail = {"send": a.has_send(), "receive": a.has_receive(),
                 "restore": a.has_restore(), "serve": False}
        make_certs = self.args.make_certs
        if _exists_exec(make_certs) and _help_ok_serve(a):
            self.certs = os.path.join(self.work, "certs")
            r = subprocess.run([make_certs, self.certs, "--host",
                                cbtd_adapter.Cbtd.HOST], capture_output=True,
                               text=True)
            if r.returncode == 0:
                avail["serve"] = True
            else:
                self.note("scripts/make-certs.sh failed: " + r.stderr[-300:])
                self.certs = None
        self.transport = "grpc" if avail["serve"] else "pipe"
        if self.args.encryption != "none" and avail["send"]:
            self.key_file = a.create_key(os.path.join(self.work, "bench.key"))
        self.results["cbtd_encryption"] = (
            "aes-256-gcm" if self.key_file else "none")
        self.note("cbtd encrypts every chain (AES-256-GCM, keyed chunk ids)"
                  if self.key_file else "cbtd runs WITHOUT encryption")
        self.results["cbtd_available"] = avail
        self.results["cbtd_transport"] = self.transport
        if not avail["send"] or not avail["receive"]:
            self.note("cbtd paths NOT available in this build (cbtctl send: "
                      f"{avail['send']}, cbt-receiver receive: "
                      f"{avail['receive']}); cbtd rows are missing")
        elif self.transport == "pipe":
            self.note("gRPC transport not available in this build: cbtd runs "
                      "through the pipe `cbtctl send | cbt-receiver receive` "
                      "(no TLS, no network stack)")
        else:
            self.note("cbtd runs end to end over loopback gRPC with mTLS "
                      "in a private network namespace")
        return avail["send"] and avail["receive"]

    def loop_device(self, image):
        if not os.path.exists("/dev/loop-control"):
            return None, "no /dev/loop-control: kernel without loop support"
        r = subprocess.run(["losetup", "--find", "--show", image],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, "losetup failed: " + r.stderr.strip()
        return r.stdout.strip(), None

    def fio(self, size):
        d = os.path.join(self.work, "fio")
        os.makedirs(d, exist_ok=True)
        f = os.path.join(d, "fio.dat")
        out = {}
        # The limits (queue depth 16), then a read at queue depth 1: what a
        # reader that waits for each 1 MiB read before the next one gets.
        for rw, depth, key in (("write", 16, "write_bytes_per_s"),
                               ("read", 16, "read_bytes_per_s"),
                               ("read", 1, "read_qd1_bytes_per_s")):
            self.r.settle(d)
            r = subprocess.run(
                ["fio", "--name=seq" + rw, f"--filename={f}", f"--rw={rw}",
                 "--bs=1M", f"--size={size}", "--direct=1",
                 "--ioengine=libaio", f"--iodepth={depth}", "--end_fsync=1",
                 "--output-format=json"], capture_output=True, text=True)
            if r.returncode != 0:
                self.note(f"fio {rw} failed: {r.stderr[-300:]}")
                continue
            j = json.loads(r.stdout[r.stdout.index("{"):])
            out[key] = j["jobs"][0][rw]["bw_bytes"]
        os.remove(f)
        log(f"fio: read {human(out.get('read_bytes_per_s', 0))}/s, "
            f"write {human(out.get('write_bytes_per_s', 0))}/s")
        return out

    def make_image(self, path, size, seed):
        r = subprocess.run([self.image_tool, "create", "--out", path,
                            "--size-bytes", str(size), "--seed", str(seed)],
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout)

    def mutate(self, target, seed, extents, fraction=None, changed=None):
        argv = [self.image_tool, "mutate", "--target", target, "--seed",
                str(seed), "--extents-out", extents]
        argv += (["--fraction", str(fraction)] if fraction is not None
                 else ["--changed-bytes", str(changed)])
        r = subprocess.run(argv, capture_output=True, text=True, check=True)
        return json.loads(r.stdout)

    @staticmethod
    def changed_chunk_bytes(extents, chunk, size):
        chunks = set()
        with open(extents) as f:
            for line in f:
                off, ln = map(int, line.split())
                chunks.update(range(off // chunk, (off + ln - 1) // chunk + 1))
        return sum(min(chunk, size - c * chunk) for c in chunks)

    # --- scenarios ----------------------------------------------------------
    def restore_and_check(self, t, img, size):
        """Restores `t`'s newest version and compares it with `img`."""
        dst = os.path.join(self.work, "restore", "restored.img")
        if not hasattr(t, "restore") or isinstance(t, Rsync):
            return
        if isinstance(t, CbtdTool) and t.method == "hash":
            return  # same vault format as external; one restore suffices
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        row = t.restore(dst, size_bytes=size)
        if isinstance(t, CbtdTool) and not t.in_sync:
            row["verified_identical"] = None
            row["note"] = ("not compared: the chain's last backup "
                           "failed, its newest version is older than "
                           "the image")
        elif isinstance(t, (CbtdTool, FullCopy)) and row["ok"]:
            same = subprocess.run(["cmp", "-s", img, dst]).returncode == 0
            row["verified_identical"] = same
            if not same:
                row["ok"] = False
                row["error"] = "restored image differs from the source"
        self.add(row)
        shutil.rmtree(os.path.dirname(dst), ignore_errors=True)

    def main_matrix(self, size, cbtd_ok):
        log(f"== main matrix on {human(size)}: full, incrementals, restore")
        img = os.path.join(self.work, "main.img")
        mix = self.make_image(img, size, self.args.seed)
        self.r.cold = [img]
        self.results["image"] = mix
        self.results["fio"] = self.fio(size)
        peers = [FullCopy(self, "main"), Rsync(self, "main"),
                 Restic(self, "main"), Borg(self, "main")]
        tools = list(peers)
        if cbtd_ok:
            tools += [CbtdTool(self, "external", "main"),
                      CbtdTool(self, "hash", "main")]
            if cbtd_adapter.Cbtd(self.bin_dir).has_compression_flag():
                # First: its full is restored and its vault freed before
                # the other tools fill the disk.
                tools.insert(0, CbtdTool(self, "external", "raw", "none"))
            else:
                self.note("cbtctl send has no --compression switch: the "
                          "compression-off full backup/restore is not "
                          "measured (cbtd compresses a chunk with zstd when "
                          "that saves at least 1/32)")
        for t in tools:
            kw = {"size_bytes": size, "source": "file"}
            if isinstance(t, CbtdTool) and t.method == "hash":
                t.clone_from(tools[tools.index(t) - 1])
                continue
            if isinstance(t, CbtdTool):
                kw["full"] = True
            self.add(t.backup(img, "full", **kw))
            if getattr(t, "name", "").endswith("-none"):
                # The raw chain holds only the full: restore it now, then
                # free its vault (it is not used again).
                self.restore_and_check(t, img, size)
                self.halves(t, img, size)
                self.free(t)
        if cbtd_ok:
            self.sender_alone(tools, img, size)
        if cbtd_ok and self.args.profile:
            self.profile_full(img, size)
        self.fraction_rows = []
        for i, frac in enumerate(self.args.fractions):
            ext = os.path.join(self.work, f"changes-{frac}.txt")
            w = self.mutate(img, self.args.seed * 100 + i, ext, fraction=frac)
            log(f"-- {frac:.1%} changed: {w['writes']} writes of 64 KiB, "
                f"{w['extents']} extents")
            for t in tools:
                if getattr(t, "name", "").endswith("-none"):
                    continue  # the raw chain only measures full/restore
                kw = {"size_bytes": size, "fraction": frac,
                      "changed_bytes": w["changed_bytes"], "source": "file"}
                if isinstance(t, CbtdTool):
                    if frac == 0.01 and self.args.profile:
                        prof = t.profile(img, ext, f"incr-{frac}")
                        if prof:
                            self.results.setdefault("profiles", {})[
                                f"{t.name} incr-{frac} sender"] = prof
                    kw["extents"] = ext
                    chunk = (t.a.chunk_bytes_of(t.vault, t.volume) or
                             self.args.chunk_bytes_assumed)
                    kw["chunk_bytes"] = chunk
                    kw["changed_chunk_bytes"] = self.changed_chunk_bytes(
                        ext, chunk, size)
                self.add(t.backup(img, f"incr-{frac}", **kw))
        # Full restores of the newest version, checked byte for byte (the
        # raw chain was restored right after its full, above).
        # Repositories are freed as soon as no later step needs them (the
        # loop scenario uses only cbtd and the full copy): an 8 GiB run
        # otherwise needs room for every tool's copy plus the restore.
        for t in tools:
            if isinstance(t, Rsync):
                self.free(t)
        for t in tools:
            if not getattr(t, "name", "").endswith("-none"):
                self.restore_and_check(t, img, size)
                if isinstance(t, (Restic, Borg)):
                    self.free(t)
        return img, tools

    def halves(self, t, img, size):
        """The two sides of a full alone, each against its disk limit: the
        sender writing its stream to a file, the receiver applying that
        file to a fresh vault (ingest, vs fio write), and a restore of the
        version to /dev/null (the read side, vs fio read)."""
        d = os.path.join(self.work, "halves")
        os.makedirs(d, exist_ok=True)
        stream = os.path.join(d, "full.stream")
        vault = os.path.join(d, "vault")
        kw = {"size_bytes": size, "source": "file"}
        step = t.a.full_to_file(img, t.volume, "halves", stream)
        self.add(summarize(self.r.single(f"{t.name}-send-file", step.sender,
                                         d), t.name, "send-to-file", **kw))
        self.r.cold = [img, stream]
        step = t.a.receive_file(vault, stream)
        row = summarize(self.r.single(f"{t.name}-ingest", step.sender, d),
                        t.name, "ingest", **kw)
        row["stream_bytes"] = os.path.getsize(stream)
        self.add(row)
        self.ingest_from_memory(t, stream, d, kw)
        os.remove(stream)
        self.r.cold = [img]
        step = t.a.full_restore(vault, t.volume, "/dev/null")
        self.add(summarize(self.r.single(f"{t.name}-restore-null",
                                         step.sender, vault),
                           t.name, "restore-null", **kw))
        shutil.rmtree(d, ignore_errors=True)

    def ingest_from_memory(self, t, stream, d, kw):
        """The ingest again with the stream file in /dev/shm (tmpfs): the
        receiver's path into the vault alone, not bounded by reading the
        stream off the same disk (whose read limit may be below its write
        limit)."""
        size = os.path.getsize(stream)
        if shutil.disk_usage("/dev/shm").free < size * 1.25:
            self.note("ingest-mem not measured: /dev/shm has no room for "
                      f"the {human(size)} stream")
            return
        mem = os.path.join("/dev/shm", "cbtd-bench-full.stream")
        shutil.copyfile(stream, mem)
        vault = os.path.join(d, "vault-mem")
        try:
            self.r.cold = []  # tmpfs: nothing to evict, nothing on disk
            step = t.a.receive_file(vault, mem)
            row = summarize(self.r.single(f"{t.name}-ingest-mem", step.sender,
                                          d), t.name, "ingest-mem", **kw)
            row["stream_bytes"] = size
            self.add(row)
        finally:
            os.remove(mem)
            shutil.rmtree(vault, ignore_errors=True)

    def sender_alone(self, tools, img, size):
        """The sender alone: a full into a null sink (cbtctl send --output
        /dev/null), encryption on, compression off and zstd: the read side
        against fio's read limit (issue 17)."""
        cold, self.r.cold = self.r.cold, [img]
        for t in tools:
            if not isinstance(t, CbtdTool) or t.method == "hash":
                continue
            step = t.a.full_to_file(img, t.volume, "null", os.devnull)
            self.add(summarize(self.r.single(f"{t.name}-send-null",
                                             step.sender, self.work),
                               t.name, "send-to-null", size_bytes=size,
                               source="file"))
        self.r.cold = cold

    @staticmethod
    def free(t):
        shutil.rmtree(t.repo(), ignore_errors=True)

    def profile_full(self, img, size):
        """Splits a full backup into its halves: the sender alone into a
        stream file, then the receiver alone from that file under
        `strace -f -w -c` (wall time per system call)."""
        if not shutil.which("strace"):
            return
        a = cbtd_adapter.Cbtd(self.bin_dir, chunk_bytes=self.args.chunk_bytes)
        d = os.path.join(self.work, "profile-full")
        vault = os.path.join(d, "vault")
        os.makedirs(d, exist_ok=True)
        stream = os.path.join(d, "full.stream")
        step = a.full_backup(img, "profile", "p1", vault, "pipe")
        with open(stream, "wb") as out:
            res = self.r.single("profile-full-send", step.sender, d,
                                stdout=out)
        prof = {"sender_alone_wall_s": res["procs"]["profile-full-send"].get(
                    "time_wall_s"), "stream_bytes": os.path.getsize(stream)}
        self.r.settle(d)
        trace = os.path.join(d, "strace.txt")
        t0 = time.monotonic()
        with open(stream, "rb") as inp:
            r = subprocess.run(["strace", "-f", "-w", "-c", "-o", trace] +
                               step.receiver, stdin=inp,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        prof["receiver_alone_wall_s"] = round(time.monotonic() - t0, 3)
        if r.returncode == 0 and os.path.exists(trace):
            with open(trace) as f:
                prof["receiver_strace_wall"] = [ln.rstrip() for ln in
                                                f.readlines()[:10]]
        prof["size_bytes"] = size
        self.results["profile_full"] = prof
        log(f"profile: full send alone {prof['sender_alone_wall_s']} s, "
            f"receive alone (under strace) {prof['receiver_alone_wall_s']} s")
        shutil.rmtree(d, ignore_errors=True)

    def loop_scenario(self, img, tools):
        dev, why = self.loop_device(img)
        self.results["loop"] = {"device": dev, "unavailable": why}
        if dev is None:
            self.note(f"loop device scenario skipped: {why}")
            return
        log(f"== same image on loop device {dev}")
        self.r.cold = [img, dev]
        try:
            size = os.path.getsize(img)
            ext = os.path.join(self.work, "changes-loop.txt")
            w = self.mutate(dev, self.args.seed * 100 + 99, ext,
                            fraction=0.01)
            for t in tools:
                kw = {"size_bytes": size, "fraction": 0.01,
                      "changed_bytes": w["changed_bytes"], "source": "loop"}
                if isinstance(t, CbtdTool) and not t.name.endswith("-none"):
                    self.add(t.backup(dev, "loop-incr-0.01", extents=ext,
                                      **kw))
                elif isinstance(t, FullCopy):
                    self.add(t.backup(dev, "loop-incr-0.01", **kw))
        finally:
            subprocess.run(["losetup", "-d", dev])

    def scaling(self, cbtd_ok):
        sizes = self.args.scale_sizes
        if not sizes:
            self.note("scaling not run (--sizes none)")
            return
        changed = int(min(sizes) * 0.01)
        changed -= changed % (64 * 1024)
        log(f"== scaling: {human(changed)} changed on "
            + ", ".join(human(s) for s in sizes))
        self.results["scaling_changed_bytes"] = changed
        for s in sizes:
            tag = f"scale{s // MiB}"
            img = os.path.join(self.work, f"{tag}.img")
            self.make_image(img, s, self.args.seed + 1)
            self.r.cold = [img]
            tools = [Rsync(self, tag)]
            if cbtd_ok:
                tools += [CbtdTool(self, "external", tag),
                          CbtdTool(self, "hash", tag)]
            for t in tools:
                if isinstance(t, CbtdTool) and t.method == "hash":
                    t.clone_from(tools[tools.index(t) - 1])
                    continue
                kw = {"full": True} if isinstance(t, CbtdTool) else {}
                self.add(t.backup(img, "scale-full", size_bytes=s,
                                  scenario="scaling", **kw))
            ext = os.path.join(self.work, f"changes-{tag}.txt")
            w = self.mutate(img, self.args.seed * 7, ext, changed=changed)
            for t in tools:
                self.add(t.backup(img, "scale-incr", extents=ext,
                                  size_bytes=s, scenario="scaling",
                                  changed_bytes=w["changed_bytes"])
                         if isinstance(t, CbtdTool) else
                         t.backup(img, "scale-incr", size_bytes=s,
                                  scenario="scaling",
                                  changed_bytes=w["changed_bytes"]))
            for t in tools:
                shutil.rmtree(t.repo(), ignore_errors=True)
            os.remove(img)
            shutil.rmtree(os.path.join(self.work, f"rsync-{tag}"),
                          ignore_errors=True)

    def run(self):
        a = self.args
        t0 = time.monotonic()
        self.results.update({
            "started_utc": datetime.datetime.utcnow().isoformat() + "Z",
            "mode": "quick" if a.quick else "full",
            "host": {"kernel": platform.release(), "cpus": os.cpu_count(),
                     "fs": fs_type(self.work)},
            "seed": a.seed, "main_size_bytes": a.size,
            "fractions": a.fractions, "scale_sizes": a.scale_sizes,
            "write_bytes": 65536, "drop_caches": a.drop_caches,
            "versions": tool_versions(),
        })
        for n in a.note:
            self.note(n)
        self.results["cbtd_binaries"] = {
            b: _sha256(os.path.join(self.bin_dir, b))
            for b in ("cbtctl", "cbt-receiver")}
        cbtd_ok = self.probe_cbtd()
        try:
            img, tools = self.main_matrix(a.size, cbtd_ok)
            if not a.no_loop:
                self.loop_scenario(img, tools)
            for t in tools:
                shutil.rmtree(t.repo(), ignore_errors=True)
            os.remove(img)
        except (subprocess.CalledProcessError, OSError, ValueError) as e:
            self.note(f"main matrix stopped early: {e!r}")
        try:
            self.scaling(cbtd_ok)
        except (subprocess.CalledProcessError, OSError, ValueError) as e:
            self.note(f"scaling stopped early: {e!r}")
        self.results["duration_s"] = round(time.monotonic() - t0, 1)
        return self.results


def _sender_err(res):
    lp = res.get("procs", {}).get("sender", {}).get("log")
    if lp and os.path.exists(lp):
        with open(lp, errors="replace") as f:
            return f.read()
    return ""


def _sha256(path):
    import hashlib
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _exists_exec(p):
    return os.path.isfile(p) and os.access(p, os.X_OK)


def _help_ok_serve(a):
    return cbtd_adapter._help_ok([a.receiver, "serve"])


def fs_type(path):
    r = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True,
                       text=True)
    return r.stdout.strip()


def tool_versions():
    v = {}
    for name, argv in {"rsync": ["rsync", "--version"],
                       "restic": ["restic", "version"],
                       "borg": ["borg", "--version"],
                       "fio": ["fio", "--version"]}.items():
        try:
            r = subprocess.run(argv, capture_output=True, text=True)
            v[name] = r.stdout.splitlines()[0].strip()
        except (OSError, IndexError):
            v[name] = None
    return v


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        return measure_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_grpc":
        return grpc_main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes, a few minutes (what a developer runs)")
    p.add_argument("--size", type=size_arg,
                   help="main volume size (default 8G, quick 512M)")
    p.add_argument("--sizes", type=lambda s: [] if s == "none" else
                   [size_arg(x) for x in s.split(",")],
                   dest="scale_sizes",
                   help="scaling sizes (default 2G,4G,8G; quick "
                        "128M,256M,512M; none: skip the scaling)")
    p.add_argument("--fractions", type=lambda s: [float(x) for x in
                                                  s.split(",")],
                   default=[0.001, 0.01, 0.1])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", default="/var/tmp/cbtd-bench")
    p.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build",
                                                     "bin"))
    p.add_argument("--image-tool", default=None,
                   help="bench-image binary (default: BIN_DIR/bench-image)")
    p.add_argument("--make-certs", default=os.path.join(
        HERE, "..", "scripts", "make-certs.sh"),
        help="certificate helper for the gRPC transport")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    p.add_argument("--chunk-bytes", type=int, default=None,
                   help="pass a chunk size to cbtctl send (default: its own)")
    p.add_argument("--assume-chunk-bytes", dest="chunk_bytes_assumed",
                   type=int, default=None,
                   help="chunk size for 'changed chunks' when cbtd does not "
                        "report it")
    p.add_argument("--encryption", choices=["aes-256-gcm", "none"],
                   default="aes-256-gcm",
                   help="cbtd's chains: encrypted under one bench key (the "
                        "daemon's default) or plaintext")
    p.add_argument("--drop-caches", action="store_true",
                   help="drop the whole page cache before every step "
                        "(default: evict only the source and destination)")
    p.add_argument("--no-loop", action="store_true")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the perf profile of cbtd's 1%% senders")
    p.add_argument("--note", action="append", default=[],
                   help="a line for the report (e.g. which cbtd build)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory")
    a = p.parse_args()
    if a.size is None:
        a.size = 512 * MiB if a.quick else 8 * GiB
    if a.scale_sizes is None:
        a.scale_sizes = ([128 * MiB, 256 * MiB, 512 * MiB] if a.quick
                         else [2 * GiB, 4 * GiB, 8 * GiB])
    if a.chunk_bytes_assumed is None:
        a.chunk_bytes_assumed = a.chunk_bytes or (1 << 20)
    a.bin_dir = os.path.abspath(a.bin_dir)
    if os.path.exists(a.workdir):
        shutil.rmtree(a.workdir)
    b = Bench(a)
    try:
        res = b.run()
    finally:
        if not a.keep:
            shutil.rmtree(a.workdir, ignore_errors=True)
    import report
    os.makedirs(a.out_dir, exist_ok=True)
    stamp = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H%MZ")
    base = os.path.join(a.out_dir, f"{stamp}{'-quick' if a.quick else ''}")
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=1)
    md = report.markdown(res, os.path.basename(base))
    with open(base + ".md", "w") as f:
        f.write(md)
    report.plots(res, base)
    print(md)
    log(f"wrote {base}.json, {base}.md and {base}-*.png "
        f"in {res['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
