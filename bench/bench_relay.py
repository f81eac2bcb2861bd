"""Resumable streams (the kernel's links) against direct forwards, on the same private sshd.

Run from the repository root:  python bench/bench_relay.py [--rounds 3]

One PortForwarder per mode over a private OpenSSH sshd (tests/fixtures/sshd.py) to a loopback
echo server; the relay (pai_magic.kernel.supervisor.Relay) runs in this process. Measured:
the round trip of a 100-byte message (what a kernel's small messages see) and the throughput
of 8 MiB echoed. Ratios relay/direct only (medians of interleaved rounds): absolute figures
depend on the machine. Goal: round trip ratio <= 3 (well under a millisecond either way).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pai_magic.core.ssh.connect import SshTarget, connect  # noqa: E402
from pai_magic.core.ssh.forward import Forward, PortForwarder  # noqa: E402
from pai_magic.core.ssh.known_hosts import KnownHosts  # noqa: E402
from pai_magic.kernel.supervisor import Relay  # noqa: E402
from tests.fixtures.sshd import PrivateSshd  # noqa: E402
from tests.kernel.test_relay import Server, echo  # noqa: E402


def measure(sshd: PrivateSshd, port: int, relay: bool) -> tuple[float, float]:
    kh = KnownHosts()
    fwd = PortForwarder(lambda: connect(SshTarget("127.0.0.1", sshd.port, "bench/0"), sshd.client_key,
                                        known_hosts=kh), [Forward(0, "127.0.0.1", port)])
    rel = Relay([port]).start() if relay else None
    if rel is not None:
        fwd.set_relay(rel.port)
    try:
        sock = socket.create_connection(("127.0.0.1", fwd.local_ports[0]), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"x")
        sock.recv(10)
        started = time.perf_counter()
        for _ in range(300):
            sock.sendall(b"y" * 100)
            got = 0
            while got < 100:
                got += len(sock.recv(1000))
        round_trip = (time.perf_counter() - started) / 300
        big = b"z" * (8 << 20)
        started = time.perf_counter()
        writer = threading.Thread(target=sock.sendall, args=(big,))
        writer.start()
        got = 0
        while got < len(big):
            got += len(sock.recv(1 << 20))
        writer.join()
        throughput = len(big) / (time.perf_counter() - started)
        sock.close()
        return round_trip, throughput
    finally:
        fwd.close()
        if rel is not None:
            rel.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sshd = PrivateSshd(Path(tempfile.mkdtemp()) / "sshd").start()
    server = Server(echo)
    try:
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for relay in (False, True):
                runs[relay].append(measure(sshd, server.port, relay))
    finally:
        server.close()
        sshd.stop()
    rt = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    bw = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    print(f"round trip: direct {rt[False] * 1e3:.2f} ms, relay {rt[True] * 1e3:.2f} ms, "
          f"ratio {rt[True] / rt[False]:.2f} (goal <= 3)")
    print(f"throughput: direct {bw[False] / 1e6:.0f} MB/s, relay {bw[True] / 1e6:.0f} MB/s, "
          f"ratio {bw[True] / bw[False]:.2f}")


if __name__ == "__main__":
    main()
