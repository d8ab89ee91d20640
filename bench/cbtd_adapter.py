"""The cbtd side of the benchmark: one function per step.

Every cbtd command line the benchmark runs is built here, so a change of a
flag in cbtctl or cbt-receiver is a one-line fix in this file. The harness
(bench.py) only runs and measures what these functions return.

A step is a `Step`: either one command or a pipeline sender | receiver, or a
gRPC pair (a receiver that serves while the sender runs) in its own network
namespace, so the loopback byte counters belong to this step alone.
"""

import dataclasses
import json
import os
import re
import subprocess
from typing import Optional


@dataclasses.dataclass
class Step:
    kind: str                      # "single", "pipe" or "grpc"
    sender: list                   # argv of the sending process
    receiver: Optional[list] = None  # argv of the receiving process
    listen: Optional[str] = None   # grpc: address the receiver serves on


def _help_ok(argv):
    try:
        r = subprocess.run(argv + ["--help"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


class Cbtd:
    """Command lines for cbtctl / cbt-receiver.

    vault: the receiver's vault directory; certs: directory made by
    scripts/make-certs.sh (ca.crt, server.crt/key, client.crt/key).
    """

    HOST = "bench-host"

    def __init__(self, bin_dir, certs_dir=None, compression="zstd",
                 chunk_bytes=None, key_file=None):
        self.cbtctl = os.path.join(bin_dir, "cbtctl")
        self.receiver = os.path.join(bin_dir, "cbt-receiver")
        self.certs = certs_dir
        self.compression = compression
        self.chunk_bytes = chunk_bytes
        self.key_file = key_file  # None: plaintext (no encryption)

    def create_key(self, path):
        """A new tenant key at `path` (cbtctl key create)."""
        subprocess.run([self.cbtctl, "key", "create", "--key-file", path],
                       check=True, capture_output=True)
        return path

    def _key_args(self):
        return ["--key-file", self.key_file] if self.key_file else []

    # --- what exists in this build -----------------------------------------
    def has_send(self):
        return _help_ok([self.cbtctl, "send"])

    def has_receive(self):
        return _help_ok([self.receiver, "receive"])

    def has_restore(self):
        return _help_ok([self.receiver, "restore"])

    def has_grpc(self):
        return self.certs is not None and _help_ok([self.receiver, "serve"])

    def transport(self):
        """'grpc' when the loopback TLS transport exists, else 'pipe'."""
        return "grpc" if self.has_grpc() else "pipe"

    # --- the four steps -------------------------------------------------------
    # `version` names the new version (sends within one second must not
    # collide with cbtctl's default, the UTC second).
    def _send(self, src, volume, version, extra, vault, transport,
              base=False):
        argv = [self.cbtctl, "send", src, "--host", self.HOST,
                "--volume", volume, "--version-id", version] + extra
        if base and transport == "grpc":  # the receiver hands the index over
            argv += ["--base-version", self.newest_version(vault, volume)]
        elif base:
            argv += ["--base-index", self.base_index(vault, volume)]
        if self.compression == "none":
            argv += ["--compression", "none"]
        if self.chunk_bytes:
            argv += ["--chunk-size", str(self.chunk_bytes)]
        argv += self._key_args()
        if transport == "grpc":
            addr = "127.0.0.1:47211"
            argv += ["--to", addr,
                     "--tls-cert", f"{self.certs}/{self.HOST}.crt",
                     "--tls-key", f"{self.certs}/{self.HOST}.key",
                     "--ca", f"{self.certs}/ca.crt"]
            serve = [self.receiver, "serve", "--vault", vault,
                     "--listen", addr,
                     "--tls-cert", f"{self.certs}/server.crt",
                     "--tls-key", f"{self.certs}/server.key",
                     "--client-ca", f"{self.certs}/ca.crt", "--create"]
            return Step("grpc", argv, serve, addr)
        return Step("pipe", argv, [self.receiver, "receive", "--vault", vault,
                                   "--create", "--json"])

    def full_backup(self, src, volume, version, vault, transport):
        return self._send(src, volume, version, ["--full"], vault, transport)

    def incremental_external(self, src, volume, version, vault, extents_file,
                             transport):
        """(a) the changed set is given: the hypervisor path."""
        return self._send(src, volume, version, ["--changes", extents_file],
                          vault, transport, base=True)

    def incremental_hash(self, src, volume, version, vault, transport):
        """(b) tracking lost: read everything, send what differs."""
        return self._send(src, volume, version, ["--full"], vault, transport,
                          base=True)

    def full_restore(self, vault, volume, dst):
        """dst may be /dev/null: every chunk read and checked, none kept."""
        return Step("single", [self.receiver, "restore", "--vault", vault,
                               "--host", self.HOST, "--volume", volume,
                               "--version", self.newest_version(vault, volume),
                               "--target", dst] + self._key_args())

    def full_to_file(self, src, volume, version, stream_path):
        """The sender alone: a full stream written to a file."""
        step = self._send(src, volume, version, ["--full"], None, "pipe")
        return Step("single", step.sender + ["--output", stream_path])

    def receive_file(self, vault, stream_path):
        """The receiver alone: a stream file applied to the vault."""
        return Step("single", [self.receiver, "receive", "--vault", vault,
                               "--create", "--input", stream_path, "--json"])

    def has_compression_flag(self):
        r = subprocess.run([self.cbtctl, "send", "--help"],
                           capture_output=True, text=True)
        return "--compression" in r.stdout

    @staticmethod
    def sender_counters(stderr_text):
        """Counters cbtctl send prints: 'N chunks read, N sent, N by
        reference, N zero; N payload bytes'."""
        m = re.search(r"(\d+) chunks read, (\d+) sent, (\d+) by reference, "
                      r"(\d+) zero; (\d+) payload bytes", stderr_text)
        if m:
            keys = ("chunks_read", "chunks_sent", "chunk_refs", "zero_chunks",
                    "payload_bytes")
            return dict(zip(keys, map(int, m.groups())))
        # Over gRPC: 'read X MiB, sent Y MiB (Z MiB on the wire), skipped W
        # MiB; N reconnects'.
        m = re.search(r"read ([\d.]+) MiB, sent ([\d.]+) MiB \(([\d.]+) MiB "
                      r"on the wire\), skipped ([\d.]+) MiB; (\d+) reconnects",
                      stderr_text)
        if m:
            mb = [int(float(x) * (1 << 20)) for x in m.groups()[:4]]
            return {"read_bytes": mb[0], "sent_bytes": mb[1],
                    "payload_bytes": mb[2], "skipped_bytes": mb[3],
                    "reconnects": int(m.group(5))}
        return None

    # --- vault lookups ----------------------------------------------------------
    def base_index(self, vault, volume):
        """Newest version's index object (receiver/vault.h layout)."""
        d = os.path.join(vault, "hosts", self.HOST, volume, "versions")
        if not os.path.isdir(d):
            return None
        files = [os.path.join(d, f) for f in os.listdir(d)
                 if f.endswith(".idx")]
        return max(files, key=os.path.getmtime) if files else None

    def newest_version(self, vault, volume):
        p = self.base_index(vault, volume)
        return os.path.basename(p)[:-len(".idx")] if p else "none"

    def chunk_bytes_of(self, vault, volume):
        """Chunk size recorded in the newest index ("CBTDIDX1" | u32le
        json_len | json ...), or None."""
        p = self.base_index(vault, volume)
        if not p:
            return None
        try:
            with open(p, "rb") as f:
                head = f.read(12)
                if head[:8] != b"CBTDIDX1":
                    return None
                n = int.from_bytes(head[8:12], "little")
                meta = json.loads(f.read(n))
        except (OSError, ValueError):
            return None
        for k in ("chunk_size_bytes", "chunk_size", "chunk_bytes"):
            if k in meta:
                return int(meta[k])
        return None
