"""Port forwarding over one SSH transport (pai_magic.core.ssh.forward) against the embedded
backend's task SSH server AND a private OpenSSH sshd; the task server's direct-tcpip rules
(loopback only, EOF passed on, both ends closed) also with stock ``ssh -L``."""
from __future__ import annotations

import socket
import subprocess
import threading
import time

import paramiko
import pytest

from pai_magic.core.ssh.connect import SshTarget, connect
from pai_magic.core.ssh.forward import Forward, PortForwarder
from pai_magic.core.ssh.known_hosts import KnownHosts
from pai_magic.local.task_ssh import loopback_destination, start_task_ssh
from tests.fixtures.services import free_port, need_binary
from tests.fixtures.sshd import write_ed25519_pair


class EchoServer:
    """A loopback TCP server: echoes lines; 'bye' makes it half-close after answering."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed_by_peer = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    self.closed_by_peer.set()  # the client's EOF came through
                    return
                conn.sendall(data)
                if data.endswith(b"bye\n"):
                    conn.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk


@pytest.fixture
def echo():
    srv = EchoServer()
    yield srv
    srv.close()


@pytest.fixture
def task_server(tmp_path):
    key = tmp_path / "user_key"
    public = write_ed25519_pair(key)
    (tmp_path / "cwd").mkdir()
    server = start_task_ssh("127.0.0.1", 0, [public], tmp_path / "cwd", {"HOME": str(tmp_path)},
                            tmp_path / "host-keys")
    server.key = key  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.close()


def _target(port: int, alias: str) -> SshTarget:
    return SshTarget("127.0.0.1", port, alias)


def test_loopback_rule():
    assert all(loopback_destination(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(loopback_destination(h) for h in ("10.0.0.1", "8.8.8.8", "example.com", "", "0.0.0.0"))


def test_forwarder_through_the_task_server(task_server, echo):
    kh = KnownHosts()
    fwd = PortForwarder(lambda: connect(_target(task_server.port, "job~a/0"), task_server.key, known_hosts=kh),
                        [Forward(0, "127.0.0.1", echo.port), Forward(0, "localhost", echo.port)])
    try:
        p1, p2 = fwd.local_ports
        # many connections on both ports at once, one transport
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda p=p: results.append(roundtrip(p, b"x" * 300_000 + b"\n")))
                   for p in (p1, p2, p1, p2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [b"x" * 300_000 + b"\n"] * 4
        assert fwd.connects == 1
        # the remote side's half-close reaches the local client, which still can send
        with socket.create_connection(("127.0.0.1", p1), timeout=20) as sock:
            sock.sendall(b"bye\n")
            assert sock.recv(100) == b"bye\n"
            assert sock.recv(100) == b""  # EOF from the far end
        assert echo.closed_by_peer.wait(20)  # and our close reached the far end
        # a dropped link: same local port, new transport on the next connection
        fwd.drop()
        assert roundtrip(p1, b"again\n") == b"again\n"
        assert fwd.connects == 2 and fwd.local_ports == [p1, p2]
    finally:
        fwd.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p1), timeout=5)


def test_task_server_refuses_non_loopback_and_closed_ports(task_server):
    session = connect(_target(task_server.port, "job~b/0"), task_server.key, known_hosts=KnownHosts())
    try:
        with pytest.raises(paramiko.ChannelException) as refused:
            session.transport.open_channel("direct-tcpip", ("10.1.2.3", 80), ("127.0.0.1", 1), timeout=10)
        assert refused.value.code == paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        with pytest.raises(paramiko.ChannelException) as closed:
            session.transport.open_channel("direct-tcpip", ("127.0.0.1", free_port()), ("127.0.0.1", 1),
                                           timeout=10)
        assert closed.value.code == paramiko.OPEN_FAILED_CONNECT_FAILED
    finally:
        session.close()


def test_stock_ssh_L_through_the_task_server(task_server, echo, tmp_path):
    need_binary("ssh", "openssh-client")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{task_server.port} {task_server.host_public_line}\n")
    local = free_port()
    base = ["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(task_server.key),
            "-o", f"UserKnownHostsFile={known}", "-o", "ExitOnForwardFailure=yes", "-p", str(task_server.port)]
    proc = subprocess.Popen(base + ["-N", "-L", f"{local}:127.0.0.1:{echo.port}", "root@127.0.0.1"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert roundtrip(local, b"through ssh -L\n") == b"through ssh -L\n"
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and proc.poll() is None, "ssh -L did not come up"
                time.sleep(0.1)
    finally:
        # SIGKILL, as below: what is under test is the forward, not how fast the stock client
        # winds down; once (on a loaded machine) ssh -N took over 10 s to exit on SIGTERM
        proc.kill()
        proc.communicate(timeout=30)
    # a destination off the loopback is refused to stock ssh too
    bad = free_port()
    proc = subprocess.Popen(base + ["-N", "-L", f"{bad}:192.0.2.1:80", "root@127.0.0.1"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", bad), timeout=10) as sock:
                    sock.settimeout(20)
                    assert sock.recv(10) == b""  # accepted locally, then closed: the open was refused
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
    finally:
        proc.kill()
        _out, err = proc.communicate(timeout=30)
    assert "administratively prohibited" in err


def test_forwarder_against_openssh_sshd(sshd, echo):
    kh = KnownHosts()
    fwd = PortForwarder(lambda: connect(_target(sshd.port, "job~c/0"), sshd.client_key, known_hosts=kh),
                        [Forward(0, "127.0.0.1", echo.port)])
    try:
        port = fwd.local_ports[0]
        assert roundtrip(port, b"openssh\n") == b"openssh\n"
        # a killed sshd session is a dead transport: the next connection makes a new one
        assert sshd.kill_sessions() >= 1
        deadline = time.monotonic() + 30
        while fwd.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert roundtrip(port, b"after kill\n") == b"after kill\n"
        assert fwd.connects == 2 and fwd.local_ports == [port]
    finally:
        fwd.close()


def test_taken_local_port_is_one_line(task_server):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        from pai_magic.core.errors import InvalidInputError

        with pytest.raises(InvalidInputError, match="is taken"):
            PortForwarder(lambda: None, [Forward(busy.getsockname()[1], "127.0.0.1", 1)])  # type: ignore


class _FirstPickCollides(PortForwarder):
    """A FAKE for a race this machine produces only now and then: the system's first pick for a
    listener is a port the task reserved (the CI run saw it: the kernel in the task then failed
    to bind its shell port). The first bind is steered to that port; the rest are real picks."""

    steer: list[int] = []

    def _listen(self, fwd: Forward) -> socket.socket:
        if fwd.local_port == 0 and self.steer:
            return super()._listen(Forward(self.steer.pop(0), fwd.remote_host, fwd.remote_port))
        return super()._listen(fwd)


def test_listeners_never_take_the_tasks_own_ports():
    reserved = free_port()
    _FirstPickCollides.steer = [reserved]
    fwd = _FirstPickCollides(lambda: None, [Forward(0, "127.0.0.1", reserved)], avoid=[reserved])  # type: ignore
    try:
        assert fwd.local_ports[0] != reserved
        # and the port it stepped over is free again for the task's kernel to bind
        with socket.socket() as kernel:
            kernel.bind(("127.0.0.1", reserved))
    finally:
        fwd.close()
