#!/usr/bin/env python3
"""Issue 13's receiver fault campaign: SIGKILL cbt-receiver at seeded points.

One vault, two hosts (one encrypted with a tenant key, one plaintext), a
seeded sequence of operations through the real programs: full and
incremental sends (`cbtctl send` | `cbt-receiver receive`), prune, gc and
restores. Each operation with a crash point runs cbt-receiver and SIGKILLs it

  receive  after the receiver consumed a seeded number of stream bytes
           (fed through a pipe this script controls), or after the whole
           stream at a seeded delay (the commit), or the stream is cut at a
           seeded byte (not a crash: the receiver must refuse it);
  gc, prune, restore
           once the process has done a seeded fraction of the I/O (bytes
           read + written, /proc/PID/io) a complete run of that kind did,
           or at a seeded delay;

then checks the vault before anything else runs (verify clean, no version
lost or half-made), lets the same operation run to completion, and checks
it all: `verify --key-file` exits 0, the versions listed are exactly the
versions committed minus those prune removed by its rule, and every one of
them restores byte-equal to the source image it was made from.

`--full-disk` (root: it mounts a tmpfs) also fills the vault's filesystem
in the middle of a receive and of a gc: a clear error, nothing lost, the
retry succeeds once space is freed.

Prints a JSON summary; exit 0 only if nothing was lost or damaged. A
failure names the seed and the crash point: rerun with the same --seed and
--crashes (and --keep to look at the vault). Kill points measured in bytes
are reproducible; those measured in time or I/O vary with the machine's
load, the sequence of operations does not.

Usage: crash_campaign.py --bin-dir BUILD/bin [--seed S] [--crashes N]
                         [--workdir DIR] [--full-disk] [--keep]
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import termios
import time

CHUNK = 65536
TIMEOUT = 120  # seconds for any one program run
SKIP = 77  # CTest SKIP_RETURN_CODE


class CampaignFailure(Exception):
    """An invariant broke: the message says which, and how to reproduce."""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def io_bytes(pid):
    """Bytes read + written by PID so far (0 if it is gone)."""
    try:
        with open(f'/proc/{pid}/io') as f:
            fields = dict(line.split(': ') for line in f.read().splitlines())
        return int(fields['rchar']) + int(fields['wchar'])
    except (OSError, KeyError, ValueError):
        return 0


class Run:
    """What happened to one program run: rc (-9 when killed), output."""

    def __init__(self, cmd, rc, out, err, io_total=0, seconds=0.0):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err
        self.io_total, self.seconds = io_total, seconds

    @property
    def killed(self):
        return self.rc == -signal.SIGKILL

    def describe(self):
        return (f"`{' '.join(self.cmd)}` exited {self.rc}\n"
                f"  stdout: {self.out.strip()[:2000]}\n"
                f"  stderr: {self.err.strip()[:2000]}")


class Programs:
    """Runs cbtctl and cbt-receiver, optionally SIGKILLing the receiver."""

    def __init__(self, bin_dir, tmp):
        self.cbtctl = os.path.join(bin_dir, 'cbtctl')
        self.receiver = os.path.join(bin_dir, 'cbt-receiver')
        for p in (self.cbtctl, self.receiver):
            if not os.access(p, os.X_OK):
                raise SystemExit(f'crash_campaign: {p} is not an executable '
                                 '(give --bin-dir BUILD/bin)')
        self.tmp = tmp
        self.n = 0

    def run(self, cmd, ok=(0,), stdin=None):
        """Runs to completion; a return code outside `ok` is a failure."""
        r = self.start(cmd, stdin_file=stdin).finish()
        if r.rc not in ok:
            raise CampaignFailure(f'unexpected exit: {r.describe()}')
        return r

    def start(self, cmd, stdin_pipe=False, stdin_file=None):
        self.n += 1
        return Proc(cmd, os.path.join(self.tmp, f'out.{self.n}'),
                    stdin_pipe, stdin_file)


class Proc:
    """One running program; its output goes to files (no pipe deadlock)."""

    def __init__(self, cmd, out_prefix, stdin_pipe, stdin_file):
        self.cmd = [str(c) for c in cmd]
        self.out_path, self.err_path = out_prefix + '.out', out_prefix + '.err'
        with open(self.out_path, 'wb') as out, open(self.err_path, 'wb') as err:
            stdin = subprocess.PIPE if stdin_pipe else (
                open(stdin_file, 'rb') if stdin_file else subprocess.DEVNULL)
            self.t0 = time.monotonic()
            self.p = subprocess.Popen(self.cmd, stdin=stdin, stdout=out,
                                      stderr=err)
            if stdin_file:
                stdin.close()
        self.last_io = 0

    def alive(self):
        """True while running; never reaps (its /proc entry stays readable)."""
        if self.p.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.p.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def feed(self, data):
        """Writes data to stdin; False if the program stopped reading."""
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
            return True
        except (BrokenPipeError, ValueError):
            return False

    def wait_consumed(self, limit=10.0):
        """Waits until the program has read everything written to it."""
        fd = self.p.stdin.fileno()
        end = time.monotonic() + limit
        buf = bytearray(4)
        while time.monotonic() < end and self.alive():
            fcntl.ioctl(fd, termios.FIONREAD, buf)
            if int.from_bytes(buf, sys.byteorder) == 0:
                return
            time.sleep(0.0005)

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass

    def wait_io(self, threshold, limit=TIMEOUT):
        """Polls /proc/PID/io until threshold bytes of I/O or the exit."""
        end = time.monotonic() + limit
        while self.alive() and time.monotonic() < end:
            self.last_io = max(self.last_io, io_bytes(self.p.pid))
            if self.last_io >= threshold:
                return
            time.sleep(0.001)

    def kill(self):
        if self.alive():
            os.kill(self.p.pid, signal.SIGKILL)
        return self.finish()

    def finish(self):
        if self.p.stdin:
            self.close_stdin()
        # Wait for the exit without reaping, to read its I/O total.
        end, pause = time.monotonic() + TIMEOUT, 0.0005
        while self.alive():
            if time.monotonic() > end:
                self.p.kill()
                self.p.wait()
                raise CampaignFailure(f"`{' '.join(self.cmd)}` ran over {TIMEOUT} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        io_total = io_bytes(self.p.pid)
        rc = self.p.wait()
        seconds = time.monotonic() - self.t0
        with open(self.out_path, errors='replace') as f:
            out = f.read()
        with open(self.err_path, errors='replace') as f:
            err = f.read()
        os.unlink(self.out_path)
        os.unlink(self.err_path)
        return Run(self.cmd, rc, out, err, io_total, seconds)


class Volume:
    """One source volume and the versions the vault should hold of it."""

    def __init__(self, host, name, size, key_file, work):
        self.host, self.name, self.size, self.key_file = host, name, size, key_file
        self.dir = os.path.join(work, f'{host}.{name}')
        os.makedirs(self.dir)
        self.image = os.path.join(self.dir, 'image')
        self.versions = {}  # id -> {'sha256', 'source', 'order', 'protected'}
        self.replica = os.path.join(self.dir, 'replica')  # incremental restores
        self.replica_version = None
        self.next_id = 1

    @property
    def label(self):
        return f'{self.host}/{self.name}'

    def newest(self):
        return max(self.versions, key=lambda v: self.versions[v]['order'],
                   default=None)

    def key_args(self):
        return ['--key-file', self.key_file] if self.key_file else []


class Campaign:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.rng = random.Random(args.seed)
        self.tmp = os.path.join(work, 'tmp')
        os.makedirs(self.tmp)
        self.progs = Programs(args.bin_dir, self.tmp)
        self.vault = os.path.join(work, 'vault')
        self.key = os.path.join(work, 'tenant.key')
        self.order = 0
        self.crash_index = 0  # crash points injected so far
        self.est_io = {}  # kind -> I/O bytes of the last complete run
        self.startup_io = 0  # I/O bytes of a run that does nothing
        self.est_commit = 0.05  # seconds from end of stream to exit
        self.stats = {
            'crash_points': 0, 'crash_points_by_kind': {},
            'finished_before_kill': {}, 'measured': {}, 'operations': {},
            'stream_cuts_refused': 0, 'receives_killed_after_commit': 0,
            'versions_committed': 0, 'versions_pruned': 0,
            'restores_compared': 0, 'verify_runs': 0,
            'lost_versions': 0, 'corrupted_versions': 0,
            'half_made_versions': 0,
        }

    # ---- bookkeeping -------------------------------------------------

    def bump(self, table, key, n=1):
        self.stats[table][key] = self.stats[table].get(key, 0) + n

    def where(self):
        extra = (f' --inject-damage {self.args.inject_damage} --damage-kind '
                 f'{self.args.damage_kind}' if self.args.inject_damage else '')
        return (f'[seed {self.args.seed}, crash point {self.crash_index}; '
                f'reproduce: {sys.argv[0]} --bin-dir {self.args.bin_dir} '
                f'--seed {self.args.seed} --crashes {self.args.crashes}{extra} --keep]')

    def fail(self, what):
        raise CampaignFailure(f'{what} {self.where()}')

    def receiver(self, *args):
        return [self.progs.receiver, args[0], '--vault', self.vault, *args[1:]]

    def listed(self):
        r = self.progs.run(self.receiver('versions', '--json'))
        return {(v['host'], v['volume'], v['version']): v
                for v in json.loads(r.out)}

    # ---- invariants --------------------------------------------------

    def verify(self, when):
        r = self.progs.start(self.receiver('verify', '--key-file', self.key,
                                           '--json')).finish()
        self.stats['verify_runs'] += 1
        if r.rc != 0:
            self.stats['corrupted_versions'] += 1
            self.fail(f'verify reports damage {when}: {r.describe()}')
        if json.loads(r.out).get('chunks_checksum_only', 0):
            self.fail(f'verify checked sealed chunks by checksum only {when}')

    def check_versions(self, when, in_flight=None, may_vanish=()):
        """Listed versions == expected, give or take the operation running.

        in_flight: (volume, id) of a receive that may or may not have
        committed; may_vanish: keys prune may have removed by its rule.
        Returns the listing."""
        listed = self.listed()
        expected = {(v.host, v.name, i) for v in self.vols for i in v.versions}
        for key in sorted(expected - set(listed)):
            if key not in may_vanish:
                self.stats['lost_versions'] += 1
                self.fail(f'LOST version {key[0]}/{key[1]}@{key[2]} {when}')
        flight = None
        if in_flight:
            vol, vid = in_flight
            flight = (vol.host, vol.name, vid)
        for key in sorted(set(listed) - expected):
            if key != flight:
                self.stats['half_made_versions'] += 1
                self.fail(f'UNEXPECTED version {key[0]}/{key[1]}@{key[2]} '
                          f'{when} (never committed by this campaign)')
        return listed

    def restore_compare(self, vol, vid, when):
        target = os.path.join(self.tmp, 'check.img')
        r = self.progs.start(self.receiver(
            'restore', '--host', vol.host, '--volume', vol.name, '--version',
            vid, '--target', target, *vol.key_args())).finish()
        if r.rc != 0:
            self.stats['corrupted_versions'] += 1
            self.fail(f'restore of {vol.label}@{vid} failed {when}: '
                      f'{r.describe()}')
        got = sha256_file(target)
        os.unlink(target)
        with contextlib.suppress(OSError):
            os.unlink(target + '.cbtd-state')
        self.stats['restores_compared'] += 1
        want = vol.versions[vid]['sha256']
        if got != want:
            self.stats['corrupted_versions'] += 1
            self.fail(f'CORRUPTED: {vol.label}@{vid} restores to sha256 {got}, '
                      f'its source {vol.versions[vid]["source"]} has {want} {when}')

    def full_check(self, when):
        self.verify(when)
        self.check_versions(when)
        for vol in self.vols:
            for vid in sorted(vol.versions):
                self.restore_compare(vol, vid, when)

    # ---- the sources -------------------------------------------------

    def mutate(self, vol):
        """Rewrites a few seeded regions of the image; returns the extent
        files (changes, discards) describing what changed."""
        changes, discards = [], []
        with open(vol.image, 'r+b') as f:
            for _ in range(self.rng.randint(1, 6)):
                length = self.rng.choice([4096, 12288, CHUNK, 3 * CHUNK,
                                          vol.size // 3])
                off = self.rng.randrange(0, vol.size, 4096)
                length = min(length, vol.size - off)
                style = self.rng.random()
                if style < 0.1:  # a discarded, chunk-aligned range
                    off -= off % CHUNK
                    length = min(max(length - length % CHUNK, CHUNK),
                                 vol.size - off)
                    f.seek(off)
                    f.write(bytes(length))
                    discards.append((off, length))
                    continue
                if style < 0.2:
                    data = bytes(length)  # zeros written, not discarded
                elif style < 0.4:
                    data = (b'cbtd compressible %d ' % off) * (length // 20 + 1)
                    data = data[:length]
                else:
                    data = self.rng.randbytes(length)
                f.seek(off)
                f.write(data)
                changes.append((off, length))
        paths = []
        for name, extents in (('changes', changes), ('discards', discards)):
            path = os.path.join(self.tmp, name)
            with open(path, 'w') as out:
                out.write('# offset length\n')
                out.writelines(f'{o} {n}\n' for o, n in extents)
            paths.append(path if extents else None)
        return paths

    def new_image(self, vol):
        with open(vol.image, 'wb') as f:
            data = bytearray(self.rng.randbytes(vol.size))
            data[CHUNK:3 * CHUNK] = bytes(2 * CHUNK)  # a zero region
            f.write(data)

    def make_stream(self, vol):
        """A new version's source and stream; returns (id, stream, mode)."""
        vid = f'v{vol.next_id:04d}'
        vol.next_id += 1
        base = vol.newest()
        cmd = [self.progs.cbtctl, 'send', vol.image, '--host', vol.host,
               '--volume', vol.name, '--version-id', vid, *vol.key_args()]
        roll = self.rng.random()
        if base is None or roll < 0.08:
            mode = 'full'
            self.new_image(vol) if base is None else self.mutate(vol)
            cmd += ['--chunk-size', CHUNK]
        else:
            idx = os.path.join(self.tmp, 'base.idx')
            self.export_index(vol, base, idx)
            changes, discards = self.mutate(vol)
            cmd += ['--base-index', idx]
            if roll < 0.25 or changes is None:
                mode = 'hash'  # read everything, send what differs
                cmd += ['--full']
            else:
                mode = 'incremental'
                cmd += ['--changes', changes]
                if discards:
                    cmd += ['--discards', discards]
        source = os.path.join(vol.dir, f'{vid}.img')
        shutil.copyfile(vol.image, source)
        stream = os.path.join(self.tmp, 'stream')
        self.progs.run(cmd + ['-o', stream])
        self.order += 1
        return vid, stream, mode, {'sha256': sha256_file(source),
                                   'source': source, 'order': self.order,
                                   'protected': False}

    def export_index(self, vol, vid, path):
        with open(path, 'wb') as out:
            r = subprocess.run(self.receiver(
                'versions', '--host', vol.host, '--volume', vol.name,
                '--export-index', vid), stdout=out, stderr=subprocess.PIPE,
                timeout=TIMEOUT)
        if r.returncode != 0:
            self.fail(f'export of {vol.label}@{vid} failed: {r.stderr!r}')

    # ---- operations ----------------------------------------------------

    def op_receive(self, crash):
        vol = self.rng.choice(self.vols)
        vid, stream, mode, record = self.make_stream(vol)
        with open(stream, 'rb') as f:
            data = f.read()
        self.bump('operations', 'receive_' + mode)
        plan = self.rng.choice(['input', 'input', 'commit', 'cut']) if crash else None
        what = f'receive of {vol.label}@{vid} ({mode}, {len(data)} bytes)'
        killed = False
        if plan is None:
            r = self.progs.run(self.receiver('receive', '--input', stream))
        elif plan == 'cut':
            at = self.rng.randrange(0, len(data))
            proc = self.progs.start(self.receiver('receive'), stdin_pipe=True)
            proc.feed(data[:at])
            r = proc.finish()
            what += f' cut at byte {at}'
            if r.rc != 3 or '[no version was created]' not in r.err:
                self.fail(f'{what}: expected exit 3 and "[no version was '
                          f'created]": {r.describe()}')
            self.stats['stream_cuts_refused'] += 1
            self.check_versions(f'after the {what}')
        else:
            proc = self.progs.start(self.receiver('receive'), stdin_pipe=True)
            if plan == 'input':
                at = self.rng.randrange(0, len(data))
                what += f' killed after consuming {at} bytes'
                proc.feed(data[:at])
                proc.wait_consumed()
            else:
                delay = self.est_commit * self.rng.random() ** 2
                what += f' killed {delay * 1000:.1f} ms after its end'
                proc.feed(data)
                proc.close_stdin()
                t = time.monotonic()
                time.sleep(delay)
            r = proc.kill()
            killed = r.killed
            if killed:
                self.note_crash('receive_' + plan, what)
            else:
                if r.rc != 0:
                    self.fail(f'{what}: {r.describe()}')
                self.bump('finished_before_kill', 'receive_' + plan)
                if plan == 'commit':
                    self.est_commit = max(self.est_commit, time.monotonic() - t)
        # Never partial: absent, or complete and byte-equal.
        when = f'after the {what}'
        listed = self.check_versions(when, in_flight=(vol, vid))
        present = (vol.host, vol.name, vid) in listed
        if killed:
            self.verify(when)
            if present:
                self.stats['receives_killed_after_commit'] += 1
                vol.versions[vid] = record
                self.restore_compare(vol, vid, when + ' (committed before it died)')
            # The next run completes: it commits, or finds the version there.
            r = self.progs.start(self.receiver('receive', '--input', stream)).finish()
            if present:
                if r.rc != 3 or 'already exists' not in r.err:
                    self.fail(f'retry {when}: expected exit 3 "already exists": '
                              f'{r.describe()}')
            elif r.rc != 0:
                self.fail(f'retry {when} failed: {r.describe()}')
            present = True
        elif plan == 'cut':
            self.progs.run(self.receiver('receive', '--input', stream))
            present = True
        if not present:
            self.fail(f'{what} reported success but {vol.label}@{vid} is not listed')
        vol.versions[vid] = record
        self.stats['versions_committed'] += 1
        os.unlink(stream)
        return killed

    def measured_kill(self, kind, cmd):
        """Runs cmd and SIGKILLs it once it has done a seeded fraction of the
        I/O (bytes read + written) of the last complete run of its kind,
        counted past what the program's start-up alone does. Returns
        (Run, point); the first run of a kind is only measured."""
        proc = self.progs.start(cmd)
        est = self.est_io.get(kind)
        if est is None:
            r = proc.finish()
            self.est_io[kind] = r.io_total
            return r, None
        frac = self.rng.random()
        threshold = self.startup_io + int(frac * max(0, est - self.startup_io))
        proc.wait_io(threshold)
        r = proc.kill()
        if not r.killed:
            self.est_io[kind] = r.io_total
        return r, f'after {frac:.3f} of its I/O ({threshold} of ~{est} bytes)'

    def run_to_end(self, kind, cmd, ok=(0,)):
        r = self.progs.start(cmd).finish()
        if r.rc not in ok:
            self.fail(f'{kind} run to completion failed: {r.describe()}')
        if r.rc == 0:
            self.est_io[kind] = r.io_total
        return r

    def op_gc(self, crash):
        self.bump('operations', 'gc')
        cmd = self.receiver('gc', '--grace-seconds', '0', '--repack-below',
                            self.rng.choice(['0.5', '0.5', '0.9']), '--json')
        if not crash:
            self.run_to_end('gc', cmd)
            return False
        r, point = self.measured_kill('gc', cmd)
        what = f'gc killed {point}'
        if not r.killed:
            if r.rc != 0:
                self.fail(f'gc failed: {r.describe()}')
            self.bump('finished_before_kill' if point else 'measured', 'gc')
            return False
        self.note_crash('gc', what)
        self.verify(f'after the {what}')
        self.check_versions(f'after the {what}')
        self.run_to_end('gc', cmd)
        return True

    def prune_plan(self):
        """Seeded policy; returns (args, vols in scope, keys it removes)."""
        keep = self.rng.randint(1, 2)
        if self.rng.random() < 0.5:
            scope = [self.rng.choice(self.vols)]
            args = ['--host', scope[0].host, '--volume', scope[0].name]
        else:
            scope, args = self.vols, []
        removed = set()
        for vol in scope:
            ids = sorted(vol.versions, key=lambda i: -vol.versions[i]['order'])
            for vid in ids[keep:]:
                if not vol.versions[vid]['protected']:
                    removed.add((vol.host, vol.name, vid))
        return ['--keep-last', str(keep), *args], removed

    def op_prune(self, crash):
        self.bump('operations', 'prune')
        if self.rng.random() < 0.15:  # move a volume's protection now and then
            vol = self.rng.choice(self.vols)
            old = sorted(vol.versions, key=lambda i: vol.versions[i]['order'])[:-1]
            if old:
                for vid in old:
                    if vol.versions[vid]['protected']:
                        self.progs.run(self.receiver(
                            'versions', '--host', vol.host, '--volume', vol.name,
                            '--unprotect', vid))
                        vol.versions[vid]['protected'] = False
                vid = self.rng.choice(old)
                self.progs.run(self.receiver('versions', '--host', vol.host,
                                             '--volume', vol.name, '--protect', vid))
                vol.versions[vid]['protected'] = True
                self.bump('operations', 'protect')
        policy, removed = self.prune_plan()
        cmd = self.receiver('prune', *policy, '--json')
        killed = False
        if crash:
            r, point = self.measured_kill('prune', cmd)
            killed = r.killed
            if killed:
                when = f'after prune {" ".join(policy)} killed {point}'
                self.note_crash('prune', when[6:])
                self.verify(when)
                self.check_versions(when, may_vanish=removed)
            elif r.rc != 0:
                self.fail(f'prune failed: {r.describe()}')
            else:
                self.bump('finished_before_kill' if point else 'measured', 'prune')
        if not crash or killed:
            r = self.run_to_end('prune', cmd)
        listed = self.check_versions(f'after prune {" ".join(policy)}',
                                     may_vanish=removed)
        for key in removed:
            if key in listed:
                self.fail(f'prune {" ".join(policy)} kept {key}, which its '
                          'rule removes')
        for vol in self.vols:
            for vid in list(vol.versions):
                if (vol.host, vol.name, vid) in removed:
                    os.unlink(vol.versions.pop(vid)['source'])
                    self.stats['versions_pruned'] += 1
            if vol.replica_version not in vol.versions:
                vol.replica_version = None
        return killed

    def op_restore(self, crash):
        vol = self.rng.choice(self.vols)
        vid = self.rng.choice(sorted(vol.versions))
        incremental = (vol.replica_version is not None and
                       vol.replica_version != vid and self.rng.random() < 0.75)
        kind = 'restore_incremental' if incremental else 'restore_full'
        self.bump('operations', kind)
        target = vol.replica if incremental else os.path.join(self.tmp, 'r.img')
        cmd = self.receiver('restore', '--host', vol.host, '--volume', vol.name,
                            '--version', vid, '--target', target,
                            *vol.key_args())
        if incremental:
            cmd += ['--from', vol.replica_version]
        what = f'{kind} of {vol.label}@{vid}' + (
            f' from {vol.replica_version}' if incremental else '')
        killed = False
        if crash:
            r, point = self.measured_kill(kind, cmd)
            killed = r.killed
            if killed:
                what += f' killed {point}'
                self.note_crash(kind, what)
                self.verify(f'after the {what}')
                self.check_versions(f'after the {what}')
            else:
                self.bump('finished_before_kill' if point else 'measured', kind)
        if not crash or killed:
            # The next run: an incremental restore after a kill must either
            # complete correctly or refuse (the target's state says
            # "incomplete"); then a full restore brings the target back.
            r = self.progs.start(cmd).finish()
            if r.rc != 0 and not (incremental and killed):
                self.fail(f'{what}: the run to completion failed: {r.describe()}')
            if r.rc != 0:
                # Refused: the state file must say why, truthfully: a target
                # whose state says "complete" holds exactly that version.
                if r.rc != 3 or 'do a full restore instead' not in r.err:
                    self.fail(f'{what}: the retry failed without refusing for '
                              f'the target\'s state: {r.describe()}')
                with open(target + '.cbtd-state') as f:
                    state = json.load(f)
                if state['state'] == 'complete':
                    if (state['version'] not in vol.versions or
                            sha256_file(target) !=
                            vol.versions[state['version']]['sha256']):
                        self.stats['corrupted_versions'] += 1
                        self.fail(f'{what}: the target\'s state says it holds '
                                  f'{state["version"]} complete, its bytes differ')
                    self.stats['restores_compared'] += 1
                elif state['state'] != 'incomplete':
                    self.fail(f'{what}: the target\'s state is {state}')
                self.bump('operations', 'restore_incremental_refused_after_kill')
                full = [c for c in cmd if c not in ('--from', vol.replica_version)]
                self.run_to_end('restore_full', full)
        elif r.rc != 0:
            self.fail(f'{what} failed: {r.describe()}')
        got = sha256_file(target)
        if got != vol.versions[vid]['sha256']:
            self.stats['corrupted_versions'] += 1
            self.fail(f'CORRUPTED: {what} (then run to completion) wrote '
                      f'bytes with sha256 {got}, not those of its source')
        self.stats['restores_compared'] += 1
        if incremental:
            vol.replica_version = vid
        elif vol.replica_version is None or self.rng.random() < 0.3:
            os.replace(target, vol.replica)
            os.replace(target + '.cbtd-state', vol.replica + '.cbtd-state')
            vol.replica_version = vid
        return killed

    def note_crash(self, kind, what):
        self.stats['crash_points'] += 1
        self.bump('crash_points_by_kind', kind)
        print(f'crash point {self.stats["crash_points"]}/{self.args.crashes}: '
              f'{what}', file=sys.stderr, flush=True)

    # ---- the campaign --------------------------------------------------

    def setup(self):
        self.progs.run([self.progs.cbtctl, 'key', 'create', '--key-file', self.key])
        self.startup_io = self.progs.run([self.progs.receiver, '--version']).io_total
        sizes = [self.rng.randrange(4 << 20, 8 << 20, CHUNK),
                 self.rng.randrange(4 << 20, 8 << 20, 4096) + 12288]
        self.vols = [Volume('enc1', 'root', sizes[0], self.key, self.work),
                     Volume('plain1', 'data', sizes[1], None, self.work)]
        os.makedirs(self.vault)
        with open(os.path.join(self.vault, '.probe'), 'w'):
            pass
        os.unlink(os.path.join(self.vault, '.probe'))
        for vol in self.vols:  # a first version each, no crash
            vid, stream, mode, record = self.make_stream(vol)
            self.progs.run(self.receiver('receive', '--create', '--input', stream))
            vol.versions[vid] = record
            self.stats['versions_committed'] += 1
        self.full_check('after the first versions')

    def run(self):
        self.setup()
        ops = [(self.op_receive, 5), (self.op_gc, 2), (self.op_prune, 1),
               (self.op_restore, 2)]
        step = 0
        while self.stats['crash_points'] < self.args.crashes:
            step += 1
            if step > 20 * self.args.crashes + 50:
                self.fail('too many operations finished before their kill')
            op = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
            self.crash_index = self.stats['crash_points'] + 1
            if sum(len(v.versions) for v in self.vols) > 8:  # keeps restores cheap
                op = self.op_prune
            crash = self.rng.random() < 0.9
            killed = op(crash)
            if killed and self.args.inject_damage == self.stats['crash_points']:
                self.damage()
            self.full_check(f'after step {step} ({op.__name__[3:]}, '
                            f'{"killed" if killed else "not killed"})')
            self.stats['steps'] = step
        # The vault ends collectable: a last gc and check.
        self.op_gc(False)
        self.full_check('at the end')
        self.check_collected()

    def check_collected(self):
        """After the last gc --grace-seconds 0, nothing the crashes left
        behind remains: no temporary file, and the pack files are exactly the
        packs the chunk index knows (docs/vault.md: gc removes the others)."""
        files, temps = set(), []
        for root, _, names in os.walk(self.vault):
            for name in names:
                if '.tmp.' in name:
                    temps.append(os.path.join(root, name))
                elif name.endswith('.pack'):
                    tenant = os.path.relpath(root, self.vault).split(os.sep)[1]
                    files.add((tenant, name[:-len('.pack')]))
        db = sqlite3.connect('file:' + os.path.join(self.vault, 'index',
                             'chunks.sqlite') + '?mode=ro&immutable=1', uri=True)
        try:
            known = set((t, p) for p, t in db.execute(
                'SELECT p.name, t.name FROM packs p JOIN tenants t USING (tenant_id)'))
        finally:
            db.close()
        self.stats['packs_at_end'] = len(files)
        if temps:
            self.fail(f'temporary files left after the last gc: {temps}')
        if files - known:
            self.fail(f'pack files no index knows, left after the last gc: '
                      f'{sorted(files - known)}')
        if known - files:
            self.fail(f'packs the index knows are missing: {sorted(known - files)}')

    def damage(self):
        """--inject-damage: break the vault on purpose; the campaign must fail.
        pack-byte flips a byte of the newest pack (live: it holds the newest
        version's chunks or a repack of live ones); drop-index deletes the
        newest version's index (a lost version)."""
        if self.args.damage_kind == 'drop-index':
            vol = self.vols[0]
            victim = os.path.join(self.vault, 'hosts', vol.host, vol.name,
                                  'versions', vol.newest() + '.idx')
            os.unlink(victim)
            what = f'deleted {victim}'
        else:
            packs = []
            for root, _, files in os.walk(os.path.join(self.vault, 'tenants')):
                packs += [os.path.join(root, f) for f in files if f.endswith('.pack')]
            victim = max(packs, key=os.path.getmtime)
            with open(victim, 'r+b') as f:
                f.seek(40)
                b = f.read(1)
                f.seek(40)
                f.write(bytes([b[0] ^ 0x55]))
            what = f'flipped byte 40 of {victim}'
        print(f'crash_campaign: --inject-damage: {what}', file=sys.stderr)

class FullDisk:
    """The vault's filesystem fills up in the middle of a receive and of a
    gc: a clear error, nothing lost, the retry succeeds once space is freed."""

    FS_BYTES = 40 << 20

    def __init__(self, args, work):
        self.args, self.work = args, os.path.join(work, 'full-disk')
        os.makedirs(self.work)
        self.rng = random.Random(args.seed)
        self.progs = Programs(args.bin_dir, self.work)
        self.mnt = os.path.join(self.work, 'fs')
        self.vault = os.path.join(self.mnt, 'vault')
        self.filler = os.path.join(self.mnt, 'filler')
        self.sources = {}  # (volume, version) -> source image
        self.stats = {'full_disk_receives_failed': 0, 'full_disk_gcs_failed': 0,
                      'full_disk_gcs_succeeded_anyway': 0, 'retries_succeeded': 0,
                      'restores_compared': 0, 'verify_runs': 0,
                      'lost_versions': 0, 'corrupted_versions': 0}

    def fail(self, what):
        raise CampaignFailure(
            f'full disk: {what} [seed {self.args.seed}; reproduce: {sys.argv[0]} '
            f'--bin-dir {self.args.bin_dir} --seed {self.args.seed} --crashes 0 '
            '--full-disk --keep]')

    def receiver(self, *args):
        return [self.progs.receiver, args[0], '--vault', self.vault, *args[1:]]

    def fill(self, leave_bytes):
        """Fills the filesystem, then frees leave_bytes of it."""
        block = bytes(1 << 20)
        with open(self.filler, 'ab') as f:
            try:
                while True:
                    f.write(block)
                    f.flush()
            except OSError:
                pass
        size = os.path.getsize(self.filler)
        os.truncate(self.filler, max(0, size - leave_bytes))

    def send(self, volume, vid, size=None, base=None, rewrite_chunks=0):
        """A new source image (or a rewrite of the last) and its stream."""
        image = os.path.join(self.work, f'{volume}.img')
        cmd = [self.progs.cbtctl, 'send', image, '--host', 'fd', '--volume',
               volume, '--version-id', vid]
        if base is None:
            with open(image, 'wb') as f:
                f.write(self.rng.randbytes(size))
            cmd += ['--chunk-size', CHUNK]
        else:
            n = os.path.getsize(image) // CHUNK
            with open(image, 'r+b') as f:
                for i in self.rng.sample(range(n), rewrite_chunks):
                    f.seek(i * CHUNK)
                    f.write(self.rng.randbytes(CHUNK))
            idx = os.path.join(self.work, 'base.idx')
            with open(idx, 'wb') as out:
                subprocess.run(self.receiver('versions', '--host', 'fd', '--volume',
                                             volume, '--export-index', base),
                               stdout=out, check=True, timeout=TIMEOUT)
            cmd += ['--base-index', idx, '--full']
        source = os.path.join(self.work, f'{volume}.{vid}.src')
        shutil.copyfile(image, source)
        self.sources[(volume, vid)] = source
        stream = os.path.join(self.work, f'{volume}.{vid}.stream')
        self.progs.run(cmd + ['-o', stream])
        return stream

    def check(self, when, expect):
        """verify clean, the versions listed == expect, each restores equal."""
        r = self.progs.start(self.receiver('verify', '--json')).finish()
        self.stats['verify_runs'] += 1
        if r.rc != 0:
            self.stats['corrupted_versions'] += 1
            self.fail(f'verify fails {when}: {r.describe()}')
        listed = {(v['volume'], v['version']) for v in json.loads(
            self.progs.run(self.receiver('versions', '--json')).out)}
        if listed - set(expect):
            self.fail(f'UNEXPECTED versions {sorted(listed - set(expect))} {when}')
        if set(expect) - listed:
            self.stats['lost_versions'] += len(set(expect) - listed)
            self.fail(f'LOST versions {sorted(set(expect) - listed)} {when}')
        for volume, vid in sorted(expect):
            target = os.path.join(self.work, 'restored.img')  # not on the full fs
            self.progs.run(self.receiver('restore', '--host', 'fd', '--volume',
                                         volume, '--version', vid, '--target', target))
            if sha256_file(target) != sha256_file(self.sources[(volume, vid)]):
                self.stats['corrupted_versions'] += 1
                self.fail(f'CORRUPTED: fd/{volume}@{vid} restores to other bytes {when}')
            os.unlink(target)
            os.unlink(target + '.cbtd-state')
            self.stats['restores_compared'] += 1

    def vault_files(self):
        return {os.path.relpath(os.path.join(root, n), self.vault)
                for root, _, names in os.walk(self.vault) for n in names}

    @staticmethod
    def names_the_problem(err):
        return ('No space left on device' in err or
                "free space on the vault's filesystem" in err)

    def run(self):
        os.makedirs(self.mnt)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={self.FS_BYTES}',
                        'cbtd-full-disk', self.mnt], check=True)
        try:
            self.scenario()
        finally:
            subprocess.run(['umount', '-l', self.mnt])
        return self.stats

    def check_while_full(self, when, have):
        """The checks on the full filesystem: reading needs no free byte
        (the chunk index keeps its -wal and -shm files between opens)."""
        self.check(f'{when} (no space freed)', have)

    def expect_enospc(self, what, r, must_say=''):
        if r.rc <= 0 or r.rc == 4:
            self.fail(f'{what} did not fail cleanly: {r.describe()}')
        if not self.names_the_problem(r.err) or must_say not in r.err:
            self.fail(f'the error of {what} does not say "No space left on '
                      f'device" or "free space on the vault\'s filesystem"'
                      f'{" and " + must_say if must_say else ""}: '
                      f'{r.describe()}')
        self.stats['errors'].append(f'{what}: exit {r.rc}: {r.err.strip()}')

    def scenario(self):
        self.stats['errors'] = []
        have = [('a', 'v1')]
        self.progs.run(self.receiver('receive', '--create', '--input',
                                     self.send('a', 'v1', size=4 << 20)))
        self.check('before the disk is full', have)

        # A 20 MiB full backup with 8 MiB free: the first 16 MiB pack fails
        # in the middle of the stream; then with no byte free at all.
        stream = self.send('b', 'v1', size=20 << 20)
        for leave in (8 << 20, 0):
            self.fill(leave_bytes=leave)
            before = self.vault_files()
            r = self.progs.start(self.receiver('receive', '--input', stream)).finish()
            what = f'a receive with {leave >> 20} MiB free'
            self.expect_enospc(what, r, must_say='[no version was created]')
            self.stats.setdefault('files_left_by_the_failed_receives', []).extend(
                sorted(self.vault_files() - before))
            self.stats['full_disk_receives_failed'] += 1
            self.check_while_full(f'after {what}', have)
            os.unlink(self.filler)
            self.check(f'after {what}, space freed', have)
        self.progs.run(self.receiver('receive', '--input', stream))
        self.stats['retries_succeeded'] += 1
        have.append(('b', 'v1'))
        self.check('after the retry with space freed', have)

        # GC on a full disk: v1 of a pruned, 40 of its 64 chunks rewritten
        # by v2, so its pack is 3/8 live and must be repacked (written):
        # with 512 KiB free (the repack's 1.5 MiB pack fails), and none.
        self.progs.run(self.receiver('gc', '--grace-seconds', '0'))
        self.progs.run(self.receiver('receive', '--input',
                                     self.send('a', 'v2', base='v1', rewrite_chunks=40)))
        self.progs.run(self.receiver('prune', '--host', 'fd', '--volume', 'a',
                                     '--keep-last', '1'))
        have = [('a', 'v2'), ('b', 'v1')]
        for leave in (512 << 10, 0):
            self.fill(leave_bytes=leave)
            r = self.progs.start(self.receiver('gc', '--grace-seconds', '0',
                                               '--json')).finish()
            what = f'gc with {leave >> 10} KiB free'
            if r.rc == 0:
                self.stats['full_disk_gcs_succeeded_anyway'] += 1
                self.stats['errors'].append(f'{what}: succeeded: {r.out}')
            else:
                self.expect_enospc(what, r)
                self.stats['full_disk_gcs_failed'] += 1
            self.check_while_full(f'after {what}', have)
            os.unlink(self.filler)
            self.check(f'after {what}, space freed', have)
        r = self.progs.run(self.receiver('gc', '--grace-seconds', '0', '--json'))
        self.stats['gc_after_freeing'] = {k: v for k, v in json.loads(r.out).items()
                                          if k in ('packs_repacked', 'packs_deleted',
                                                   'orphan_packs_removed')}
        self.stats['retries_succeeded'] += 1
        self.check('after gc with space freed', have)


def main():
    ap = argparse.ArgumentParser(
        description='SIGKILL cbt-receiver at seeded points of receive, prune, '
        'gc and restore, and check that no version is lost, damaged or half-made.')
    ap.add_argument('--bin-dir', required=True, help='directory of cbtctl and cbt-receiver')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--crashes', type=int, default=25,
                    help='crash points to inject (0: none)')
    ap.add_argument('--workdir', default='/dev/shm' if os.access('/dev/shm', os.W_OK)
                    else tempfile.gettempdir(),
                    help='parent of the temporary directory (default /dev/shm)')
    ap.add_argument('--full-disk', action='store_true',
                    help='also fill the vault filesystem mid-receive and mid-gc (root)')
    ap.add_argument('--keep', action='store_true', help='keep the work directory')
    ap.add_argument('--inject-damage', type=int, default=0, metavar='N',
                    help='self-test: flip a pack byte after crash point N; '
                    'the campaign must then fail')
    ap.add_argument('--damage-kind', choices=['pack-byte', 'drop-index'],
                    default='pack-byte', help='what --inject-damage breaks')
    args = ap.parse_args()
    if args.crashes < 0:
        ap.error(f'--crashes must be 0 or more, not {args.crashes}')
    if not os.path.isdir(args.workdir):
        ap.error(f'--workdir {args.workdir} is not a directory')
    args.bin_dir = os.path.abspath(args.bin_dir)
    # SIGTERM (a timeout, ^C from a wrapper) still cleans up and unmounts.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('crash_campaign: terminated'))

    work = tempfile.mkdtemp(prefix='cbtd-crash.', dir=args.workdir)
    summary = {'seed': args.seed, 'crashes_requested': args.crashes}
    t0 = time.monotonic()
    rc = 0
    campaign = None
    try:
        if args.crashes:
            campaign = Campaign(args, work)
            try:
                campaign.run()
            finally:
                summary.update(campaign.stats)
        if args.full_disk:
            if os.geteuid() != 0:
                summary['full_disk'] = 'skipped: needs root to mount a tmpfs'
                print('crash_campaign: SKIP full disk: needs root to mount a tmpfs',
                      file=sys.stderr)
                if not args.crashes:
                    rc = SKIP
            else:
                fd = FullDisk(args, work)
                try:
                    fd.run()
                finally:
                    summary['full_disk'] = fd.stats
    except CampaignFailure as e:
        summary['failure'] = str(e)
        print(f'FAIL: {e}', file=sys.stderr)
        rc = 1
    finally:
        summary['wall_seconds'] = round(time.monotonic() - t0, 1)
        if args.keep:
            summary['workdir'] = work
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(summary, indent=2, sort_keys=True))
    return rc


if __name__ == '__main__':
    sys.exit(main())
