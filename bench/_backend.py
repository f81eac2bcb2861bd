"""The embedded backend as a subprocess, started the same way by every benchmark: its own data
folder, a free port on loopback, one user whose password comes through the environment."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOB_USER_ENV = "PAI_LOCAL_JOB_USER"


def start_backend(data_dir: Path, user: str, password: str, **env: str) -> tuple[subprocess.Popen, str]:
    """``(process, url)`` of a backend in ``data_dir``; ``env`` adds variables (PAI_LOCAL_JOB_USER ...)."""
    # a benchmark's jobs run this machine's Python, which may sit in root's private home: jobs run as
    # the backend's own user unless the caller says otherwise (see `pai-magic local --job-user`)
    environ = dict(os.environ, BENCH_PW=password, PYTHONPATH=str(REPO))
    environ.setdefault(JOB_USER_ENV, "root")
    environ.update(env)
    proc = subprocess.Popen([sys.executable, "-m", "pai_magic.local", "--port", "0", "--data-dir", str(data_dir),
                             "--user", user, "--password-env", "BENCH_PW"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environ, cwd=str(REPO))
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("the backend did not start")
    return proc, url
