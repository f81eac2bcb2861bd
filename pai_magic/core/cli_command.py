"""Command lines that run this very install's CLI, for a face to hand to a shell.

Why: a JupyterLab terminal runs a *login* shell when the server has no terminal of its own
(jupyter_server_terminals adds ``-l``), and a login shell rebuilds ``PATH`` from
``/etc/profile``: a bare ``pai-magic`` there is not found when Jupyter was started from a
virtual environment or a pyenv version that is not on the login ``PATH``, or it is another
install's. The console script beside this interpreter, by absolute path, is the same code the
server runs; ``python -m pai_magic`` is the fallback. The profile is named explicitly, so a
terminal opened from a sidebar on a non-default profile reaches the same cluster.
"""
from __future__ import annotations

import os
import shlex
import sys
import sysconfig
from pathlib import Path

from pai_magic.core.models import JobDetail

SCRIPT = "pai-magic"


def cli_argv() -> list[str]:
    """``[".../bin/pai-magic"]`` from this interpreter's scripts folder (or the user scheme's),
    else ``[sys.executable, "-m", "pai_magic"]``."""
    schemes = [sysconfig.get_default_scheme(), f"{os.name}_user"]
    for scheme in schemes:
        try:
            folder = sysconfig.get_path("scripts", scheme)
        except KeyError:  # a scheme this platform does not have
            continue
        script = Path(folder) / SCRIPT
        if script.is_file() and os.access(script, os.X_OK):
            return [str(script)]
    return [sys.executable, "-m", "pai_magic"]


def task_shell_command(job: str, *, task: str | None = None, profile: str | None = None) -> str:
    """The shell line that opens an interactive shell in a job's task (``pai-magic ssh``)."""
    argv = cli_argv() + ["ssh", job]
    if task:
        argv += ["--task", task]
    if profile:
        argv += ["--profile", profile]
    return shlex.join(argv)


def task_shell_commands(detail: JobDetail, profile: str | None = None) -> dict[str, str]:
    """One shell line per task, keyed ``role/index``; ``--task`` only when the job has several
    (the CLI's default is the first role's task 0, the only one then)."""
    several = len(detail.tasks) > 1
    return {f"{t.role}/{t.index}": task_shell_command(detail.full_name, task=f"{t.role}/{t.index}" if several
                                                      else None, profile=profile)
            for t in detail.tasks}
