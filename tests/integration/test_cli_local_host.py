"""`pai-magic local` on a non-loopback address says who can then run commands on this machine."""
from __future__ import annotations

import subprocess
import sys

from pai_magic.cli.local_cmd import _is_loopback


def test_loopback_detection():
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert _is_loopback("127.0.0.2")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("10.0.0.5") and not _is_loopback("lab-box")


def test_network_address_warns_on_stderr(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "pai_magic", "local", "--host", "0.0.0.0", "--port", "0",
                             "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://0.0.0.0:")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "not loopback" in err and "runs commands on this machine" in err
