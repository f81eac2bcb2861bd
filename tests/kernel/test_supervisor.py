"""The supervisor that runs in the task (pai_magic/kernel/supervisor.py), run for real as the
task runs it: a kernel port some other process listens on is said in one line and the start
ends (status 98) instead of a kernel that dies binding it after the readiness check, which
connects, was fooled by the other listener."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from pai_magic.kernel.job import PORT_NAMES, SUPERVISOR


def test_a_taken_kernel_port_ends_the_start_with_its_reason(tmp_path: Path):
    folder = tmp_path / "kernel"
    folder.mkdir()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        free = []
        for _ in PORT_NAMES[1:]:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                free.append(s.getsockname()[1])
        ports = dict(zip(PORT_NAMES, [taken, *free]))
        (folder / "kernel.json").write_text(json.dumps({**ports, "ip": "127.0.0.1", "transport": "tcp",
                                                        "key": "", "signature_scheme": "hmac-sha256"}))
        (folder / "start-1").write_text("")
        proc = subprocess.Popen([sys.executable, str(SUPERVISOR), str(folder), "60"],
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (folder / "kernel-1.exit").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert (folder / "kernel-1.exit").read_text() == "98"
            assert not (folder / "kernel-1.ready").exists()
        finally:
            (folder / "stop").write_text("")
            _, err = proc.communicate(timeout=30)
    assert f"port {taken} (shell_port) on the task's loopback is taken by another process" in err, err


def test_hello_names_the_relay_which_answers_bad_requests_in_one_line(tmp_path: Path):
    """The relay the supervisor runs (resumable streams, see its docstring) is named in
    hello.json; a request it cannot serve gets one ERR line and a close, so the forwarder
    closes the local socket and ZeroMQ retries as it would after a refused connection."""
    folder = tmp_path / "kernel"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, str(SUPERVISOR), str(folder), "60"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (folder / "hello.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        hello = json.loads((folder / "hello.json").read_text())
        assert len(hello["ports"]) == len(PORT_NAMES) and hello["relay"] > 0

        def ask(line: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", hello["relay"]), timeout=30) as sock:
                sock.sendall(line)
                answer = b""
                while True:
                    chunk = sock.recv(100)
                    if not chunk:
                        return answer
                    answer += chunk

        assert ask(b"PAIRELAY1 ab12 9 0 N\n") == b"ERR unknown port index\n"
        assert ask(b"PAIRELAY1 ab12 0 0 R\n") == b"ERR unknown stream\n"
        assert ask(b"PAIRELAY1 ab12 0 0 N\n") == b"ERR kernel port refused\n"  # no kernel started
        assert ask(b"GET / HTTP/1.0\n") == b"ERR bad handshake\n"
    finally:
        (folder / "stop").write_text("")
        proc.communicate(timeout=30)


def test_the_relay_never_listens_on_a_kernel_port(monkeypatch):
    """The kernel's ports are only declared until the kernel binds them: a relay that the system
    handed one of them would make the kernel fail. A fake socket class steers the first pick
    onto a kernel port (the system's own picks are random); the relay must step over it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pai_supervisor_under_test", SUPERVISOR)
    assert spec is not None and spec.loader is not None
    sup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sup)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    kernel_port = probe.getsockname()[1]
    probe.close()
    steer = [kernel_port]
    real_socket = socket.socket

    class FirstPickIsAKernelPort(real_socket):  # the fake: only the first bind to port 0 is steered
        def bind(self, address):
            if address[1] == 0 and steer:
                address = (address[0], steer.pop())
            return super().bind(address)

    monkeypatch.setattr(sup.socket, "socket", FirstPickIsAKernelPort)
    relay = sup.Relay([kernel_port, 1, 2, 3, 4])
    try:
        assert not steer, "the fake did not steer the first pick"
        assert relay.port != kernel_port
        with real_socket() as kernel:  # the kernel can still bind its port
            kernel.bind(("127.0.0.1", kernel_port))
    finally:
        relay.close()


def test_in_an_image_without_pai_magic_the_supervisor_imports_the_wire_from_beside_it(tmp_path: Path):
    """The job's Python has only the standard library: the supervisor and the relay's wire are
    copied in side by side (as the kernel job does), and ``python -S`` (no site-packages, so no
    pai_magic) still runs it up to its own one-line verdict, here that ipykernel is missing."""
    from pai_magic.kernel.job import RELAY_WIRE

    def run(with_wire: bool) -> tuple[Path, str]:
        folder = tmp_path / ("with" if with_wire else "without")
        folder.mkdir()
        (folder / "supervisor.py").write_bytes(SUPERVISOR.read_bytes())
        if with_wire:
            (folder / "pai_relay_wire.py").write_bytes(RELAY_WIRE.read_bytes())
        proc = subprocess.Popen([sys.executable, "-S", "-E", str(folder / "supervisor.py"), str(folder), "60"],
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while proc.poll() is None and not (folder / "error").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            (folder / "stop").write_text("")
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate(timeout=30)
        return folder, err

    folder, err = run(with_wire=True)
    assert "has no ipykernel" in (folder / "error").read_text() and "Traceback" not in err, err
    _, err = run(with_wire=False)  # the wire is what made the difference
    assert "ModuleNotFoundError" in err, err
