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
