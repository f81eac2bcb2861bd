"""SSH into a job's task by job name: what the faces call (one function per verb).

Each function resolves the job through the OpenPAI client (detail + config), picks the task
(``role/index``, default: the first task), connects with the user's key and pai_magic's
known_hosts, does one thing and closes the connection. A job that has ended has its host
keys forgotten here, so the next job on the same ip:port starts with a clean slate.
"""
from __future__ import annotations

import re
import socket
import threading
from pathlib import Path
from typing import Any

from pai_magic.core.errors import InvalidInputError, NotFoundError
from pai_magic.core.models import JobDetail, TaskStatus
from pai_magic.core.ssh.connect import SshOptions, SshSession, SshTarget, connect
from pai_magic.core.ssh.exec import Output, run_command
from pai_magic.core.ssh.keys import SshKey, ensure_key
from pai_magic.core.ssh.known_hosts import KnownHosts, forget_job_keys, host_key_alias
from pai_magic.core.ssh.openssh import openssh_argv
from pai_magic.core.ssh.transfer import ProgressFn, TransferResult, download, upload

_TASK_RE = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]*)(?:[/:.](\d+))?|(\d+))$")
_REMOTE_RE = re.compile(r"^((?:[A-Za-z0-9_-]+~)?[A-Za-z0-9_-]+):(.*)$")


def parse_task(spec: str | None) -> tuple[str | None, int]:
    """``"worker/1"`` -> ("worker", 1); ``"worker"`` -> ("worker", 0); None -> (None, 0)."""
    if spec is None or not str(spec).strip():
        return None, 0
    m = _TASK_RE.match(str(spec).strip())
    if not m:
        raise InvalidInputError(f"{spec!r} is not a task: write ROLE/INDEX, e.g. worker/0.")
    return m.group(1), int(m.group(2) or m.group(3) or 0)


def parse_remote(spec: str) -> tuple[str, str]:
    """``"JOB:path"`` (or ``"user~JOB:path"``) -> (job, path); the path may be empty (= '.')."""
    m = _REMOTE_RE.match((spec or "").strip())
    if not m:
        raise InvalidInputError(f"{spec!r} names no job: write JOB:PATH, e.g. train-3f2a:/data/out.")
    return m.group(1), m.group(2) or "."


def task_alias(detail: JobDetail, task: TaskStatus) -> str:
    """The known_hosts alias of a task: job + role/index + attempt (a retry is a new container)."""
    return host_key_alias(detail.full_name, task.role, task.index, task.attempt_id)


def task_target(detail: JobDetail, role: str | None = None, index: int = 0) -> SshTarget:
    """Where task ``role/index`` of a RUNNING job listens for SSH (raises one line if nowhere)."""
    if detail.terminal:
        raise InvalidInputError(f"Job {detail.full_name} is {detail.state}: its containers are gone, so "
                                "there is nothing to SSH into; submit a new job with --ssh.")
    task = detail.task(role, index)
    if task.state != "RUNNING":
        raise InvalidInputError(f"Task {task.role}/{task.index} of job {detail.full_name} is {task.state}, "
                                "not RUNNING: try again once it runs.")
    ports = task.ports.get("ssh") or []
    if not ports or not task.container_ip:
        raise InvalidInputError(f"Task {task.role}/{task.index} of job {detail.full_name} has no ssh port: "
                                "submit the job with --ssh (the ssh runtime plugin).")
    return SshTarget(host=task.container_ip, port=int(ports[0]), host_key_alias=task_alias(detail, task),
                     user="root", label=f"task {task.role}/{task.index} of job {detail.full_name}")


def _key_for(client: Any, key: SshKey | str | Path | None) -> SshKey | str | Path:
    if key is not None:
        return key
    return ensure_key(getattr(getattr(client, "profile", None), "ssh_key", None))


def _task_runs(detail: JobDetail, role: str | None, index: int) -> bool:
    return any((role is None or t.role == role) and t.index == index and t.state == "RUNNING"
               and t.container_ip for t in detail.tasks)


def resolve_target(client: Any, name: str, task: str | None = None, *,
                   wait: float = 0.0) -> tuple[SshTarget, JobDetail]:
    """The task's SSH target; a job without user SSH (the portal's test) is refused up front,
    since a cluster may still list an ssh port for it that nobody can log in to.

    ``wait`` seconds: a job just submitted is usually still WAITING when the person asks to
    SSH into it, so the faces wait (bounded, Ctrl-C stops it) for the task to run.
    """
    from pai_magic.core.jobs import wait_for
    from pai_magic.core.protocol import job_has_ssh

    role, index = parse_task(task)
    detail = client.get_job(name)
    if detail.tasks:
        # A task the job does not have will never run: say so now instead of waiting `wait` seconds.
        detail.task(role, index)
    if wait > 0 and not detail.terminal and not _task_runs(detail, role, index):
        detail = wait_for(client, name, timeout=wait, poll=2.0,
                          until=lambda d: _task_runs(d, role, index))
    if detail.terminal:
        forget_job_keys(detail.full_name)
    target = task_target(detail, role, index)
    config = client.job_config(name)
    if not (isinstance(config, dict) and job_has_ssh(config)):
        raise InvalidInputError(f"Job {detail.full_name} was submitted without SSH (no ssh plugin with a user "
                                "key): submit a new job with --ssh.")
    return target, detail


#: How long the faces wait for a just-submitted job's task to run before connecting.
START_WAIT = 120.0


def open_task_session(client: Any, name: str, *, task: str | None = None,
                      key: SshKey | str | Path | None = None, passphrase: str | None = None,
                      known_hosts: KnownHosts | None = None, options: SshOptions | None = None,
                      start_wait: float = START_WAIT) -> SshSession:
    """A connected, authenticated session to a task of job ``name`` (close it when done)."""
    target, _detail = resolve_target(client, name, task, wait=start_wait)
    return connect(target, _key_for(client, key), passphrase=passphrase, known_hosts=known_hosts,
                   options=options)


def run_in_task(client: Any, name: str, command: str, *, task: str | None = None,
                on_stdout: Output | None = None, on_stderr: Output | None = None,
                timeout: float | None = None, cancel: threading.Event | None = None,
                key: SshKey | str | Path | None = None, passphrase: str | None = None,
                known_hosts: KnownHosts | None = None, options: SshOptions | None = None,
                start_wait: float = START_WAIT) -> int:
    """Run ``command`` in the task, streaming output to the callbacks; returns the exit status."""
    if not command or not command.strip():
        raise InvalidInputError("Give a command to run, e.g. -- nvidia-smi.")
    with open_task_session(client, name, task=task, key=key, passphrase=passphrase,
                           known_hosts=known_hosts, options=options, start_wait=start_wait) as session:
        return run_command(session, command, on_stdout=on_stdout, on_stderr=on_stderr,
                           timeout=timeout, cancel=cancel)


def upload_to_task(client: Any, name: str, local: str | Path, remote: str, *, task: str | None = None,
                   on_progress: ProgressFn | None = None, verify: bool = True,
                   cancel: threading.Event | None = None, key: SshKey | str | Path | None = None,
                   passphrase: str | None = None, known_hosts: KnownHosts | None = None,
                   options: SshOptions | None = None, start_wait: float = START_WAIT) -> TransferResult:
    """SFTP ``local`` (file or directory) to ``remote`` in the task, verified, atomically renamed."""
    if not Path(local).expanduser().exists():
        raise NotFoundError(f"Local path {local} does not exist: check the name.")
    with open_task_session(client, name, task=task, key=key, passphrase=passphrase,
                           known_hosts=known_hosts, options=options, start_wait=start_wait) as session:
        return upload(session, local, remote, on_progress=on_progress, verify=verify, cancel=cancel)


def download_from_task(client: Any, name: str, remote: str, local: str | Path, *, task: str | None = None,
                       on_progress: ProgressFn | None = None, verify: bool = True,
                       cancel: threading.Event | None = None, key: SshKey | str | Path | None = None,
                       passphrase: str | None = None, known_hosts: KnownHosts | None = None,
                       options: SshOptions | None = None, start_wait: float = START_WAIT) -> TransferResult:
    """SFTP ``remote`` (file or directory) from the task to ``local``, verified, atomically renamed."""
    with open_task_session(client, name, task=task, key=key, passphrase=passphrase,
                           known_hosts=known_hosts, options=options, start_wait=start_wait) as session:
        return download(session, remote, local, on_progress=on_progress, verify=verify, cancel=cancel)


def task_openssh_argv(client: Any, name: str, *, task: str | None = None, command: str | None = None,
                      key: SshKey | str | Path | None = None, known_hosts: KnownHosts | None = None,
                      batch: bool = False, tty: bool | None = None,
                      start_wait: float = START_WAIT) -> list[str]:
    """The stock ``ssh`` command for the task, with its port, key and pai_magic's known_hosts."""
    target, _detail = resolve_target(client, name, task, wait=start_wait)
    chosen = _key_for(client, key)
    key_path = chosen.private_path if isinstance(chosen, SshKey) else Path(chosen)
    return openssh_argv(target, key_path, command=command, known_hosts=known_hosts, batch=batch, tty=tty)


def _unique_title(existing: list[dict[str, Any]], base: str) -> str:
    titles = {str(k.get("title", "")) for k in existing}
    if base not in titles:
        return base
    n = 2
    while f"{base}-{n}" in titles:
        n += 1
    return f"{base}-{n}"


def profile_entry(profile_keys: list[dict[str, Any]], key: SshKey) -> dict[str, Any] | None:
    """The entry of the OpenPAI profile's key list that holds ``key`` (same key material), if any."""
    material = key.public_line.split()[1]
    for entry in profile_keys:
        parts = str(entry.get("value", "")).split()
        if len(parts) >= 2 and parts[1] == material:
            return entry
    return None


def add_key_to_profile(client: Any, key: SshKey | None = None, *, title: str | None = None) -> dict[str, Any]:
    """Add the user's public key to the OpenPAI profile (``PUT /users/me``, keeping every key).

    Returns ``{"added": bool, "title": str, "public_key": str, "keys": [...]}``; a key already
    in the profile is not added twice. An application token is refused by the cluster (403):
    the client's error explains that a password login is needed.
    """
    key = key or ensure_key(getattr(getattr(client, "profile", None), "ssh_key", None))
    existing = list(client.ssh_keys())
    entry = profile_entry(existing, key)
    if entry is not None:
        return {"added": False, "title": str(entry.get("title", "")), "public_key": key.public_line,
                "keys": existing}
    base = title or f"pai_magic-{re.sub(r'[^A-Za-z0-9_.-]', '-', socket.gethostname())[:40]}"
    chosen = _unique_title(existing, base)
    stored = client.update_ssh_keys([(chosen, key.public_line)], replace=existing)
    return {"added": True, "title": chosen, "public_key": key.public_line, "keys": stored}


def key_status(client: Any | None = None, configured: str | Path | None = None) -> dict[str, Any]:
    """The key pai_magic uses (generated on first call) for ``ssh-key`` without ``--add``."""
    if configured is None and client is not None:
        configured = getattr(getattr(client, "profile", None), "ssh_key", None)
    key = ensure_key(configured)
    return {"private_path": str(key.private_path), "public_key": key.public_line,
            "fingerprint": key.fingerprint, "generated": key.generated}
