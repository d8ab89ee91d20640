#!/usr/bin/env python3
"""Issue 13, network faults: `cbtctl send --to` through a TCP proxy this
script controls, to a real `cbt-receiver serve` over mutual TLS.

Each round changes the source image and sends it (full or incremental on the
newest version) while the proxy does one seeded fault to every connection:
  cut    closes both sides after a seeded number of bytes (16 KiB-1 MiB);
  stall  stops forwarding for 2-6 s after a seeded number of bytes;
  slow   forwards at 1-4 MiB/s;
  mixed  any of the above, per connection;
  down   closes every connection at once, for the whole send (sent with
         --retries 0): the send must fail, leaving nothing.
After each round: the send's exit status is the outcome on disk (exit 0:
the version is listed; otherwise it is not, or the error says it was
created), `verify` exits 0, and every listed version restores byte-equal to
the image it was made from. A round that failed is sent again with the
proxy healthy and must succeed. Prints a JSON summary; exit 1 on a finding.

  network_faults.py --bin-dir build/bin [--seed S] [--rounds N]
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST, VOLUME, CHUNK, SIZE = 'nethost', 'disk', 65536, 8 << 20
FAULTS = ('cut', 'stall', 'slow', 'mixed', 'down')


class Finding(Exception):
    pass


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


class Proxy:
    """Forwards 127.0.0.1:port to the receiver, doing `fault` to each
    connection (None: healthy)."""

    def __init__(self, upstream, rng):
        self.upstream, self.rng, self.fault = upstream, rng, None
        self.faults_done = 0
        self.sock = socket.create_server(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            client, _ = self.sock.accept()
            try:
                server = socket.create_connection(('127.0.0.1', self.upstream))
            except OSError:
                client.close()
                continue
            fault = self.fault
            if fault == 'mixed':
                fault = self.rng.choice(FAULTS[:3])
            at = self.rng.randint(16 << 10, 1 << 20)
            if fault == 'down':  # the receiver is unreachable
                client.close()
                server.close()
                continue
            plan = {'fault': fault, 'at': at,
                    'stall': self.rng.uniform(2, 6),
                    'rate': self.rng.randint(1, 4) << 20, 'done': False}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(a, b, plan),
                                 daemon=True).start()

    def pump(self, src, dst, plan):
        moved = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                moved += len(data)
                if plan['fault'] and not plan['done'] and moved >= plan['at']:
                    if plan['fault'] == 'cut':
                        plan['done'] = True
                        self.faults_done += 1
                        break
                    if plan['fault'] == 'stall':
                        plan['done'] = True
                        self.faults_done += 1
                        time.sleep(plan['stall'])
                if plan['fault'] == 'slow':
                    time.sleep(len(data) / plan['rate'])
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Campaign:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.rng = random.Random(args.seed)
        self.vault = os.path.join(work, 'vault')
        self.image = os.path.join(work, 'disk.img')
        self.versions = {}  # id -> sha256 of its source
        self.stats = {'rounds': 0, 'cuts_and_stalls': 0, 'sends_ok': 0,
                      'sends_failed_cleanly': 0, 'retries_ok': 0,
                      'restores_compared': 0, 'lost_or_corrupted': 0,
                      'partial_versions': 0}
        self.bin = lambda name: os.path.join(args.bin_dir, name)

    def run(self, cmd, timeout=300):
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout)

    def start_receiver(self):
        certs = os.path.join(self.work, 'certs')
        subprocess.run([os.path.join(ROOT, 'scripts/make-certs.sh'), certs,
                        '--host', HOST], check=True, capture_output=True)
        probe = socket.create_server(('127.0.0.1', 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.log = open(os.path.join(self.work, 'receiver.log'), 'w')
        self.receiver = subprocess.Popen(
            [self.bin('cbt-receiver'), 'serve', '--vault', self.vault,
             '--create', '--listen', f'127.0.0.1:{self.port}',
             '--tls-cert', f'{certs}/server.crt', '--tls-key',
             f'{certs}/server.key', '--client-ca', f'{certs}/ca.crt'],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', self.port)).close()
                break
            except OSError:
                time.sleep(0.1)
        self.tls = ['--tls-cert', f'{certs}/{HOST}.crt', '--tls-key',
                    f'{certs}/{HOST}.key', '--ca', f'{certs}/ca.crt',
                    '--server-name', 'localhost']

    def mutate(self):
        with open(self.image, 'r+b') as f:
            for _ in range(self.rng.randint(4, 40)):
                f.seek(self.rng.randrange(SIZE // CHUNK) * CHUNK)
                f.write(self.rng.randbytes(CHUNK))

    def send(self, vid, port, retries=5):
        cmd = [self.bin('cbtctl'), 'send', self.image, '--host', HOST,
               '--volume', VOLUME, '--version-id', vid, '--to',
               f'127.0.0.1:{port}', '--chunk-size', str(CHUNK),
               '--no-progress', '--retries', str(retries), *self.tls]
        if self.versions:
            cmd += ['--base-version', max(self.versions), '--full']
        return self.run(cmd)

    def listed(self):
        r = self.run([self.bin('cbt-receiver'), 'versions', '--vault',
                      self.vault, '--json'])
        if r.returncode != 0:
            raise Finding(f'versions failed: {r.stderr}')
        return {v['version'] for v in json.loads(r.stdout)}

    def check(self, when):
        r = self.run([self.bin('cbt-receiver'), 'verify', '--vault',
                      self.vault])
        if r.returncode != 0:
            self.stats['lost_or_corrupted'] += 1
            raise Finding(f'verify failed {when}: {r.stdout}{r.stderr}')
        listed = self.listed()
        if listed != set(self.versions):
            self.stats['partial_versions'] += 1
            raise Finding(f'{when}: listed {sorted(listed)}, committed '
                          f'{sorted(self.versions)}')
        target = os.path.join(self.work, 'restored.img')
        for vid, want in sorted(self.versions.items()):
            r = self.run([self.bin('cbt-receiver'), 'restore', '--vault',
                          self.vault, '--host', HOST, '--volume', VOLUME,
                          '--version', vid, '--target', target])
            got = sha256(target) if r.returncode == 0 else r.stderr
            os.unlink(target) if os.path.exists(target) else None
            self.stats['restores_compared'] += 1
            if got != want:
                self.stats['lost_or_corrupted'] += 1
                raise Finding(f'{vid} does not restore to its source {when}: '
                              f'{got}')

    def settle(self, vid, r, when):
        """Records the send's outcome; the exit status must be the vault's."""
        present = vid in self.listed()
        if r.returncode == 0 and not present:
            raise Finding(f'{when}: exit 0 but {vid} is not in the vault')
        if r.returncode != 0 and present:
            if 'was created' not in r.stderr or 'no version' in r.stderr:
                raise Finding(f'{when}: exit {r.returncode} says '
                              f'{r.stderr.strip()!r} but {vid} is in the vault')
        return present

    def round(self, n):
        fault = FAULTS[n % len(FAULTS)] if n < len(FAULTS) else \
            self.rng.choice(FAULTS)
        self.mutate()
        source = os.path.join(self.work, f'v{n:04d}.img')
        shutil.copyfile(self.image, source)
        vid = f'v{n:04d}'
        self.proxy.fault = fault
        before = self.proxy.faults_done
        r = self.send(vid, self.proxy.port, 0 if fault == 'down' else 5)
        self.proxy.fault = None
        self.stats['cuts_and_stalls'] += self.proxy.faults_done - before
        when = f'after round {n} ({fault}, seed {self.args.seed})'
        present = self.settle(vid, r, when)
        if fault == 'down' and present:
            raise Finding(f'{when}: a send through a link that is always cut '
                          f'committed')
        if present:
            self.stats['sends_ok'] += 1
        else:
            self.stats['sends_failed_cleanly'] += 1
            print(f'round {n} ({fault}): send failed cleanly: '
                  f'{r.stderr.strip()[-300:]}', file=sys.stderr)
            self.check(when)
            r = self.send(vid, self.port)  # healthy link: must succeed
            present = self.settle(vid, r, when + ', retried')
            if not present:
                raise Finding(f'{when}: the retry failed: {r.stderr}')
            self.stats['retries_ok'] += 1
        self.versions[vid] = sha256(source)
        os.unlink(source)
        self.check(when)
        self.stats['rounds'] += 1

    def main(self):
        with open(self.image, 'wb') as f:
            f.write(self.rng.randbytes(SIZE))
        self.start_receiver()
        self.proxy = Proxy(self.port, self.rng)
        try:
            for n in range(1, self.args.rounds + 1):
                self.round(n)
        finally:
            self.receiver.kill()
            self.receiver.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--bin-dir', required=True)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--rounds', type=int, default=8)
    p.add_argument('--workdir', default='/dev/shm')
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix='cbtd-netfault-', dir=args.workdir)
    c = Campaign(args, work)
    start = time.time()
    try:
        c.main()
    except Finding as e:
        print(f'FINDING: {e} (reproduce: {" ".join(sys.argv)}; work dir '
              f'{work} kept)', file=sys.stderr)
        print(json.dumps(c.stats))
        return 1
    c.stats['seconds'] = round(time.time() - start, 1)
    print(json.dumps(c.stats))
    shutil.rmtree(work)
    return 0


if __name__ == '__main__':
    sys.exit(main())
