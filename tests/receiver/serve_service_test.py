#!/usr/bin/env python3
"""`cbt-receiver serve` as a systemd service, end to end over loopback:

 * sd_notify: READY=1 only once the vault is open and the port accepts
   connections (and never when the vault cannot be opened), WATCHDOG=1 at a
   third of WATCHDOG_USEC, STATUS= lines, STOPPING=1 on SIGTERM. The test
   plays systemd: it binds the NOTIFY_SOCKET datagram socket itself.
 * metrics (--metrics-textfile): received, stored and deduped bytes and the
   session counts equal what was sent and what the vault says it stored.
 * audit lines: session start and end, commit, a refused session.
 * the same metrics on HTTP (--metrics-listen): GET /metrics only.
 * scheduled GC and verify (--gc-every, --verify-every): they run, report
   ok; then a damaged pack is reported by verify and a damaged index fails
   GC, both reported (audit line, metrics) while serve keeps serving.

usage: serve_service_test.py BIN_DIR"""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BIN = sys.argv[1]
CHUNK = 65536
IMAGE_BYTES = 64 * CHUNK  # 4 MiB of random chunks, none zero
WATCHDOG_USEC = 900_000   # pings expected every 300 ms


def fail(msg, log=None):
    print(f"FAIL: {msg}")
    if log and os.path.exists(log):
        print("--- serve's stderr (audit lines)")
        print(open(log).read())
    sys.exit(1)


class Notify:
    """The datagram socket systemd would listen on, drained by a thread as
    systemd does (a full socket queue would block serve's sd_notify)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.lock = threading.Lock()
        self.messages = []  # (monotonic time, {key: value})
        self.stop = False
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1)
                          for line in data.decode().splitlines() if "=" in line)
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def wait_for(self, key, seconds):
        end = time.monotonic() + seconds
        while True:
            for t, m in self.snapshot():
                if key in m:
                    return t, m
            if time.monotonic() >= end:
                return None
            time.sleep(0.05)


def serve(tmp, notify, *extra):
    env = dict(os.environ, NOTIFY_SOCKET=notify.path,
               WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("WATCHDOG_PID", None)
    out = open(f"{tmp}/serve.out", "w")
    err = open(f"{tmp}/serve.err", "w")
    return subprocess.Popen(
        [f"{BIN}/cbt-receiver", "serve", "--vault", f"{tmp}/vault",
         "--listen", "127.0.0.1:0", "--insecure", *extra],
        stdout=out, stderr=err, env=env)


def metrics(path):
    return parse_metrics(open(path).read())


def parse_metrics(text):
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def send(port, img, version, expect_ok=True):
    r = subprocess.run(
        [f"{BIN}/cbtctl", "send", img, "--to", f"127.0.0.1:{port}",
         "--insecure", "--host", "h", "--volume", "d", "--version-id",
         version, "--chunk-size", str(CHUNK), "--compression", "none",
         "--retries", "0", "--no-progress"],
        capture_output=True, text=True, timeout=120)
    if (r.returncode == 0) != expect_ok:
        fail(f"send {version}: exit {r.returncode}: {r.stderr}")
    return r


def audit_lines(log):
    return [l.strip() for l in open(log) if "AUDIT " in l]


def find_audit(log, pattern, seconds=0):
    end = time.monotonic() + seconds
    while True:
        for line in audit_lines(log):
            if re.search(pattern, line):
                return line
        if time.monotonic() >= end:
            return None
        time.sleep(0.2)


def main():
    tmp = tempfile.mkdtemp(prefix="cbtd-serve-service-")
    # fail() prints serve's log first; the directory goes either way.
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    err_log = f"{tmp}/serve.err"

    # 1. The vault cannot be opened: no READY=1, a non-zero exit.
    notify = Notify(f"{tmp}/notify-bad.sock")
    p = serve(tmp, notify)  # no --create, no vault
    rc = p.wait(timeout=30)
    time.sleep(0.3)
    if rc == 0:
        fail("serve on a missing vault exited 0", err_log)
    if any("READY" in m for _, m in notify.snapshot()):
        fail(f"READY=1 sent though the vault did not open: "
             f"{notify.snapshot()}")

    # 2. Serving: READY=1 once the port accepts connections.
    notify = Notify(f"{tmp}/notify.sock")
    prom = f"{tmp}/metrics/cbt-receiver.prom"
    os.mkdir(f"{tmp}/metrics")
    p = serve(tmp, notify, "--create", "--metrics-textfile", prom,
              "--metrics-every", "1s", "--gc-every", "3s", "--gc-grace",
              "1s", "--verify-every", "4s", "--metrics-listen", "0")
    try:
        run(tmp, p, notify, prom, err_log)
    finally:
        if p.poll() is None:
            p.kill()
    print("serve_service_test: OK")


def run(tmp, p, notify, prom, err_log):
    ready = notify.wait_for("READY", 30)
    if ready is None:
        fail(f"no READY=1 in 30 s; got {notify.snapshot()}", err_log)
    out = open(f"{tmp}/serve.out").read()
    m = re.search(r"\(port (\d+)", out)
    if not m:
        fail(f"serve did not say its port before READY=1: {out!r}", err_log)
    port = int(m.group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # accepts: READY=1 was not early
    if "session(s) open" not in ready[1].get("STATUS", ""):
        fail(f"READY=1 without a STATUS line: {ready[1]}")

    # WATCHDOG=1 every WATCHDOG_USEC / 3 (300 ms): at least 4 in 2 s.
    time.sleep(2.0)
    pings = [t for t, m in notify.snapshot() if m.get("WATCHDOG") == "1"
             and t >= ready[0]]
    if len(pings) < 4:
        fail(f"{len(pings)} WATCHDOG=1 pings in 2 s, expected >= 4 at "
             f"{WATCHDOG_USEC // 3000} ms", err_log)
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    # systemd kills a service whose pings are WATCHDOG_USEC apart.
    if max(gaps) >= WATCHDOG_USEC / 1e6:
        fail(f"watchdog pings too far apart: {gaps}")

    # A backup, the same bytes again (all deduped), a refused session.
    img = f"{tmp}/img"
    with open(img, "wb") as f:
        f.write(os.urandom(IMAGE_BYTES))
    send(port, img, "v1")
    send(port, img, "v2")
    refused = send(port, img, "v1", expect_ok=False)
    versions = subprocess.run(
        [f"{BIN}/cbt-receiver", "versions", "--vault", f"{tmp}/vault",
         "--json"], capture_output=True, text=True, check=True).stdout
    listing = json.loads(versions)
    stored = {v["version"]: v["stored_bytes"] for v in listing}
    if set(stored) != {"v1", "v2"}:
        fail(f"vault holds {sorted(stored)}, expected v1 and v2")
    if stored["v1"] < IMAGE_BYTES or stored["v2"] != 0:
        fail(f"unexpected stored bytes per version: {stored}")

    # Metrics: rewritten every second.
    time.sleep(1.5)
    got = metrics(prom)
    want = {
        "cbt_receiver_received_bytes_total": IMAGE_BYTES,  # v2 sent hashes
        "cbt_receiver_stored_bytes_total": stored["v1"] + stored["v2"],
        "cbt_receiver_deduped_bytes_total": IMAGE_BYTES,  # all of v2
        'cbt_receiver_sessions_total{outcome="committed"}': 2,
        'cbt_receiver_sessions_total{outcome="refused"}': 1,
        'cbt_receiver_sessions_total{outcome="failed"}': 0,
        'cbt_receiver_operations_total{operation="commit",outcome="ok"}': 2,
        "cbt_receiver_sessions_open": 0,
        "cbt_receiver_backend_errors_total": 0,
    }
    for name, value in want.items():
        if got.get(name) != value:
            fail(f"{name} = {got.get(name)}, expected {value}\n"
                 f"{open(prom).read()}", err_log)
    # The same numbers over HTTP (--metrics-listen), nothing but GET /metrics.
    m = re.search(r"metrics on HTTP port (\d+)",
                  open(f"{tmp}/serve.out").read())
    if not m:
        fail("serve did not say its metrics port", err_log)
    url = f"http://127.0.0.1:{m.group(1)}"
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        if "version=0.0.4" not in r.headers.get("Content-Type", ""):
            fail(f"/metrics Content-Type {r.headers.get('Content-Type')}")
        scraped = parse_metrics(r.read().decode())
    for name in ["cbt_receiver_received_bytes_total",
                 "cbt_receiver_stored_bytes_total",
                 "cbt_receiver_deduped_bytes_total"]:
        if scraped.get(name) != want[name]:
            fail(f"GET /metrics: {name} = {scraped.get(name)}, expected "
                 f"{want[name]}")
    for path, method, code in [("/", "GET", 404), ("/metrics", "POST", 405)]:
        try:
            urllib.request.urlopen(urllib.request.Request(
                url + path, method=method, data=b"x" if method == "POST"
                else None), timeout=5)
            fail(f"{method} {path} answered 200")
        except urllib.error.HTTPError as e:
            if e.code != code:
                fail(f"{method} {path}: {e.code}, expected {code}")
    if os.stat(prom).st_mode & 0o777 != 0o644:
        fail(f"metrics file mode {oct(os.stat(prom).st_mode)}, want 0644")

    # Audit lines: v1's start, commit and end; the refused repeat.
    for pattern in [
        r"AUDIT event=session-start host=h volume=d version=v1 outcome=ok",
        rf"AUDIT event=commit host=h volume=d version=v1 outcome=ok "
        rf"bytes={stored['v1']} received_bytes={IMAGE_BYTES} deduped_bytes=0 ",
        rf"AUDIT event=commit host=h volume=d version=v2 outcome=ok "
        rf"bytes=0 received_bytes=0 deduped_bytes={IMAGE_BYTES} ",
        r"AUDIT event=session-end host=h volume=d version=v1 "
        r"outcome=committed",
        r'AUDIT event=session-start host=h volume=d version=v1 '
        r'outcome=refused error="[^"]*already exists',
    ]:
        if not find_audit(err_log, pattern):
            fail(f"no audit line matching {pattern!r}", err_log)
    if "already exists" not in refused.stderr:
        fail(f"the refused sender was not told why: {refused.stderr}")

    # Scheduled GC (every 3 s) and verify (every 4 s) run and say so.
    if not find_audit(err_log, r"AUDIT event=gc trigger=schedule outcome=ok "
                      r"duration_ms=\d+ indexes=2 ", 15):
        fail("no scheduled GC with outcome=ok over 2 indexes", err_log)
    if not find_audit(err_log, r"AUDIT event=verify trigger=schedule "
                      r"outcome=ok duration_ms=\d+ versions=2 ", 15):
        fail("no scheduled verify with outcome=ok over 2 versions", err_log)
    time.sleep(1.2)
    status = [m["STATUS"] for _, m in notify.snapshot() if "STATUS" in m]
    if not any("last gc ok at" in s for s in status):
        fail(f"STATUS= never told the last GC: {status[-3:]}")
    time.sleep(1.2)
    got = metrics(prom)
    for name in ['cbt_receiver_operations_total{operation="gc",outcome="ok"}',
                 'cbt_receiver_operations_total{operation="verify",'
                 'outcome="ok"}']:
        if got.get(name, 0) < 1:
            fail(f"{name} = {got.get(name)}, expected >= 1", err_log)

    # Damage a pack: the next scheduled verify reports it, serve goes on.
    packs = []
    for root, _, files in os.walk(f"{tmp}/vault"):
        packs += [os.path.join(root, f) for f in files
                  if "pack" in root and not f.endswith((".tmp", "-wal",
                                                         "-shm"))]
    if not packs:
        fail(f"no pack files found under {tmp}/vault to damage")
    target = max(packs, key=os.path.getsize)
    with open(target, "r+b") as f:
        f.seek(os.path.getsize(target) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    line = find_audit(err_log, r"AUDIT event=verify trigger=schedule "
                      r"outcome=damaged ", 15)
    if not line or "damaged_versions=h/d@v" not in line:
        fail(f"the damaged pack was not reported by verify: {line}", err_log)
    time.sleep(1.2)
    got = metrics(prom)
    if got.get("cbt_receiver_verify_last_damaged_versions", 0) < 1:
        fail("cbt_receiver_verify_last_damaged_versions not raised", err_log)
    if p.poll() is not None:
        fail(f"serve exited ({p.returncode}) after a damaged verify", err_log)

    # Damage an index: the next scheduled GC fails, deletes nothing, says
    # why, counts as a backend error; serve goes on.
    idx = f"{tmp}/vault/hosts/h/d/versions/v2.idx"
    if not os.path.exists(idx):
        fail(f"no index at {idx} to damage: {os.listdir(os.path.dirname(idx))}")
    with open(idx, "r+b") as f:
        f.truncate(100)
    line = find_audit(err_log, r"AUDIT event=gc trigger=schedule "
                      r"outcome=error ", 15)
    if not line or "stopped before deleting anything" not in line:
        fail(f"the failed GC was not reported with its reason: {line}",
             err_log)
    time.sleep(1.2)
    got = metrics(prom)
    if got.get('cbt_receiver_operations_total{operation="gc",'
               'outcome="error"}', 0) < 1 or \
            got.get("cbt_receiver_backend_errors_total", 0) < 1:
        fail("the failed GC is not in the metrics", err_log)
    if p.poll() is not None:
        fail(f"serve exited ({p.returncode}) after a failed GC", err_log)

    # SIGTERM: STOPPING=1, exit 0, the metrics written once more.
    before = os.stat(prom).st_mtime_ns
    time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    if p.wait(timeout=30) != 0:
        fail(f"serve exited {p.returncode} on SIGTERM", err_log)
    if notify.wait_for("STOPPING", 2) is None:
        fail(f"no STOPPING=1 on SIGTERM: {notify.snapshot()[-3:]}")
    if os.stat(prom).st_mtime_ns == before:
        fail("the metrics file was not written at exit")


if __name__ == "__main__":
    main()
