"""Resumable streams: PortForwarder's relay mode (pai_magic.core.ssh.forward) through a REAL
OpenSSH sshd to the relay of the kernel supervisor (pai_magic.kernel.supervisor.Relay, run in
this process), in front of plain TCP servers standing in for a kernel's ports.

What must hold: a dropped SSH link (``forwarder.drop()``, and ``ss -K`` on the SSH connection
as root) is invisible to the local client and to the server: every byte arrives exactly once
and in order both ways, bytes sent during the outage included, and no side sees a close; the
relay's buffer cap drops a stream cleanly; a stream the relay no longer knows is closed
locally; a server-side close reaches the client as EOF after all its data.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from typing import Any, Callable

import pytest

from pai_magic.core.errors import UnreachableError
from pai_magic.core.ssh.connect import SshTarget, connect
from pai_magic.core.ssh.forward import Forward, PortForwarder
from pai_magic.core.ssh.known_hosts import KnownHosts
from pai_magic.kernel.supervisor import Relay

TOTAL = 6 << 20


def pattern(offset: int, size: int) -> bytes:
    """Bytes of a long stream whose every position is checkable (not a repeating short block)."""
    out = bytearray()
    block = offset // 32
    while len(out) < (offset % 32) + size:
        out += hashlib.sha256(block.to_bytes(8, "big")).digest()
        block += 1
    start = offset % 32
    return bytes(out[start:start + size])


class Server:
    """A loopback TCP server standing in for a kernel port; ``handler(conn)`` per connection."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.conns = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self.handler, args=(conn,), daemon=True).start()

    def close(self) -> None:
        try:  # wakes the accept() blocked in the thread; close() alone leaves the port listening
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def echo(conn: socket.socket) -> None:
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


class Gate:
    """Whether the laptop is 'online': while closed, connecting fails as an unreachable host
    does. A FAKE only for an outage longer than a reconnect (the real sshd is always up here);
    the links themselves are real and are killed for real."""

    def __init__(self, sshd: Any) -> None:
        self.open = threading.Event()
        self.open.set()
        self.sshd = sshd
        self.kh = KnownHosts()

    def __call__(self) -> Any:
        if not self.open.is_set():
            raise UnreachableError("offline (test gate)")
        return connect(SshTarget("127.0.0.1", self.sshd.port, "job~relay/0"), self.sshd.client_key,
                       known_hosts=self.kh)


@pytest.fixture
def link(sshd):
    gate = Gate(sshd)
    made: list[Any] = []

    def make(server: Server, **relay_kw: Any) -> tuple[PortForwarder, Relay]:
        relay = Relay([server.port], **relay_kw).start()
        fwd = PortForwarder(gate, [Forward(0, "127.0.0.1", server.port)])
        fwd.set_relay(relay.port)
        made.append((fwd, relay))
        return fwd, relay

    make.gate = gate  # type: ignore[attr-defined]
    yield make
    for fwd, relay in made:
        fwd.close()
        relay.close()


def read_to_eof(client: socket.socket) -> bytes:
    """Everything the client receives until the forwarder's EOF, then the client closed."""
    got = bytearray()
    with client:
        while True:
            data = client.recv(1 << 20)
            if not data:
                return bytes(got)
            got.extend(data)


def wait_until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def kill_ssh_connections(sshd: Any) -> bool:
    """``ss -K`` on the client side of every connection to the sshd, as the kernel test does."""
    out = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", f":{sshd.port}"],
                         capture_output=True, text=True, timeout=30)
    return f":{sshd.port}" in out.stdout


def test_a_long_stream_both_ways_survives_killed_links(link, sshd):
    server = Server(echo)
    fwd, relay = link(server)
    can_kill = bool(shutil.which("ss")) and os.geteuid() == 0
    client = socket.create_connection(("127.0.0.1", fwd.local_ports[0]), timeout=120)
    sent = {"n": 0}
    got = bytearray()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while sent["n"] < TOTAL:
                chunk = pattern(sent["n"], min(50_000, TOTAL - sent["n"]))
                client.sendall(chunk)
                sent["n"] += len(chunk)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def reader() -> None:
        try:
            while len(got) < TOTAL:
                data = client.recv(65536)
                if not data:
                    raise AssertionError(f"the local client saw a close after {len(got)} bytes")
                got.extend(data)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    kills = 0
    for round_ in range(6):
        # kill when the stream is mid-way both ways, at different points each round
        target = (round_ + 1) * TOTAL // 8
        wait_until(lambda: len(got) >= target or errors, 120, f"{target} bytes echoed")
        assert not errors, errors
        wait_until(lambda: fwd.connected, 60, "the link to be up")
        if round_ % 2 and can_kill:
            before_kill = fwd.connects
            kill_ssh_connections(sshd)
            wait_until(lambda: fwd.connects > before_kill, 60, "a new transport after `ss -K`")
        else:
            fwd.drop()
        kills += 1
        # bytes sent while the link is down arrive too
        before = sent["n"]
        wait_until(lambda: sent["n"] > before + 100_000 or sent["n"] >= TOTAL or errors, 60,
                   "the client to keep sending across the outage")
    for t in threads:
        t.join(180)
    client.close()
    assert not errors, errors
    assert len(got) == TOTAL and bytes(got) == pattern(0, TOTAL)
    assert fwd.connects >= kills + 1
    assert server.conns == 1  # the server side never saw a reconnect


def test_buffer_cap_drops_the_stream_and_an_unknown_stream_is_closed_locally(link):
    flood = threading.Event()
    closed = threading.Event()

    def firehose(conn: socket.socket) -> None:
        with conn:
            conn.recv(1)
            flood.set()
            try:
                while True:
                    conn.sendall(b"z" * 65536)
            except OSError:
                closed.set()  # the relay dropped the stream: the kernel-side connection closed

    server = Server(firehose)
    fwd, relay = link(server, cap=1 << 20)
    client = socket.create_connection(("127.0.0.1", fwd.local_ports[0]), timeout=60)
    client.sendall(b"go")
    assert flood.wait(30)
    link.gate.open.clear()  # offline: the relay buffers the firehose while nobody reads it
    fwd.drop()
    assert closed.wait(60), "the relay kept buffering past its cap"
    wait_until(lambda: not relay.streams, 30, "the relay to forget the dropped stream")
    link.gate.open.set()
    # the forwarder resumes, the relay does not know the stream: the local socket is closed
    client.settimeout(60)
    total = 0
    while True:
        data = client.recv(1 << 20)
        if not data:
            break
        total += len(data)
    client.close()
    wait_until(lambda: fwd.streams == 0, 30, "the forwarder to forget the stream")
    # a new connection works again (the old behaviour after a lost stream)
    server2 = Server(echo)
    fwd2, _relay2 = link(server2)
    with socket.create_connection(("127.0.0.1", fwd2.local_ports[0]), timeout=30) as sock:
        sock.sendall(b"hello\n")
        assert sock.recv(100) == b"hello\n"


def test_server_close_reaches_the_client_as_eof_after_all_data(link):
    size = 3 << 20

    def send_then_close(conn: socket.socket) -> None:
        with conn:
            conn.recv(1)
            conn.sendall(pattern(0, size))

    server = Server(send_then_close)
    fwd, relay = link(server)
    client = socket.create_connection(("127.0.0.1", fwd.local_ports[0]), timeout=60)
    client.sendall(b"g")
    got = bytearray(client.recv(65536))
    link.gate.open.clear()
    fwd.drop()  # the rest (and the close) wait in the relay while the link is down
    time.sleep(0.5)  # an outage of some length (not a synchronisation: nothing waits on it)
    link.gate.open.set()
    got += read_to_eof(client)
    assert len(got) == size and bytes(got) == pattern(0, size)
    wait_until(lambda: not relay.streams and fwd.streams == 0, 30, "both sides to forget the stream")


def test_a_close_lost_with_the_link_is_sent_again_and_the_relay_forgets_the_stream(link, monkeypatch):
    """The relay's close reached the forwarder; the forwarder's own close was on its way when the
    link died. The relay keeps a stream (a thread, the kernel socket, its buffer) until it has
    that close, so the forwarder resumes the stream once to deliver it. FAKE: only the loss in
    flight (the frames handed to the channel are dropped as a dying link drops them); the link
    itself is killed for real, at that moment."""
    from pai_magic.core.ssh import forward
    from pai_magic.core.ssh.relay_wire import frame

    def send_then_close(conn: socket.socket) -> None:
        with conn:
            conn.recv(1)
            conn.sendall(pattern(0, 100_000))

    server = Server(send_then_close)
    fwd, relay = link(server)
    lost = threading.Event()
    real_to_chan = forward._RelayStream._to_chan

    def dying_link(stream: Any) -> None:
        if stream.peer_closed and frame(b"C") in stream.wq and not lost.is_set():
            stream.wq = bytearray()  # "sent", never delivered
            lost.set()
            fwd.drop()
            return
        real_to_chan(stream)

    monkeypatch.setattr(forward._RelayStream, "_to_chan", dying_link)
    client = socket.create_connection(("127.0.0.1", fwd.local_ports[0]), timeout=60)
    client.sendall(b"g")
    assert read_to_eof(client) == pattern(0, 100_000)
    assert lost.is_set()
    wait_until(lambda: not relay.streams and fwd.streams == 0, 30, "both sides to forget the stream")


def test_a_local_close_closes_the_server_side(link):
    seen = threading.Event()

    def wait_eof(conn: socket.socket) -> None:
        with conn:
            while conn.recv(65536):
                pass
            seen.set()

    server = Server(wait_eof)
    fwd, relay = link(server)
    with socket.create_connection(("127.0.0.1", fwd.local_ports[0]), timeout=30) as sock:
        sock.sendall(b"x" * 1000)
        wait_until(lambda: relay.streams, 30, "the stream to open")
    assert seen.wait(30)
    wait_until(lambda: not relay.streams and fwd.streams == 0, 30, "both sides to forget the stream")


def test_a_refused_server_port_closes_the_local_socket(link):
    server = Server(echo)
    fwd, relay = link(server)
    server.close()  # the kernel's port is closed (a restart in progress)
    with socket.create_connection(("127.0.0.1", fwd.local_ports[0]), timeout=30) as sock:
        sock.settimeout(30)
        assert sock.recv(10) == b""
    assert not relay.streams
