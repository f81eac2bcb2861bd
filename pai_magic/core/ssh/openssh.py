"""The stock OpenSSH ``ssh`` command line for a task, checked against pai_magic's known_hosts.

Why: an interactive terminal is best served by OpenSSH itself (``pai-magic ssh NAME`` execs
it), but it must check host keys exactly as pai_magic does: the same file, the same per-task
alias, no prompt, never the user's ``~/.ssh/known_hosts``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from pai_magic.core.errors import NotFoundError
from pai_magic.core.paths import ensure_private_dir
from pai_magic.core.ssh.connect import SshTarget
from pai_magic.core.ssh.known_hosts import KnownHosts


def _opt_value(value: str) -> str:
    """ssh_config tokenising splits on spaces: quote a path that has them."""
    return f'"{value}"' if any(c.isspace() for c in value) else value


def known_hosts_options(target: SshTarget, known_hosts: KnownHosts | None = None) -> list[str]:
    """``-o`` options that make OpenSSH use pai_magic's file and the task's alias.

    ``StrictHostKeyChecking=yes`` once the task's key is recorded (a changed key is refused),
    ``accept-new`` before (trust on first use, recorded under the alias, never prompted).
    """
    kh = known_hosts or KnownHosts()
    ensure_private_dir(kh.path.parent)  # ssh cannot record a first key in a missing folder
    strict = "yes" if kh.has(target.host_key_alias) else "accept-new"
    return ["-o", f"UserKnownHostsFile={_opt_value(str(kh.path))}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"HostKeyAlias={target.host_key_alias}",
            "-o", f"StrictHostKeyChecking={strict}",
            "-o", "CheckHostIP=no",
            "-o", "HashKnownHosts=no"]


def openssh_argv(target: SshTarget, key_path: str | Path | None, *, command: str | None = None,
                 known_hosts: KnownHosts | None = None, batch: bool = False, tty: bool | None = None,
                 connect_timeout: int = 10, alive_interval: int = 15, ssh_binary: str | None = None) -> list[str]:
    """``ssh -p PORT -i KEY -o ... root@IP [-- COMMAND]`` ready for ``os.execvp``/``subprocess``.

    ``batch`` adds BatchMode (never ask anything); ``tty`` forces (-t) or forbids (-T) a
    terminal; ServerAlive options make a vanished peer end the session instead of hanging.
    """
    binary = ssh_binary or shutil.which("ssh")
    if not binary:
        raise NotFoundError("OpenSSH's ssh is not installed: install openssh-client, or use "
                            "pai-magic ssh NAME -- CMD (which needs no ssh binary).")
    argv = [binary, "-p", str(target.port)]
    if key_path:
        argv += ["-i", str(key_path), "-o", "IdentitiesOnly=yes"]
    argv += known_hosts_options(target, known_hosts)
    argv += ["-o", f"ConnectTimeout={int(connect_timeout)}",
             "-o", f"ServerAliveInterval={int(alive_interval)}", "-o", "ServerAliveCountMax=3"]
    if batch:
        argv += ["-o", "BatchMode=yes"]
    if tty is True:
        argv.append("-t")
    elif tty is False:
        argv.append("-T")
    argv.append(f"{target.user}@{target.host}")
    if command:
        argv += ["--", command]
    return argv
