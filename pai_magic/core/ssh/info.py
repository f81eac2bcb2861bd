"""SSH info for a job, in the words the OpenPAI web portal uses.

There is no ssh-info endpoint in OpenPAI v1.x: the portal's job page builds the text itself
(``task-role-container-list.jsx``, ``showSshInfo``) from the task's ``containerIp`` and
``containerPorts.ssh`` when the job config has an ``ssh`` runtime plugin with a non-empty
``userssh``; otherwise it explains how to enable SSH. Researchers know that text, so
pai_magic prints the same lines, and adds ready-to-run commands with pai_magic's key and
known_hosts for the copy buttons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pai_magic.core.models import JobDetail, TaskStatus

# The portal's strings, verbatim (including the trailing space after "properly:").
PORTAL_HEADER = "You can connect to this container by one of the following commands if SSH is set up properly: \n"
PORTAL_FOOTER = 'If you are using a different username in your docker, please change "root" to your pre-defined username.'
PORTAL_NO_SSH = ("This job does not contain SSH info.\n"
                 'If you want to use SSH, please enable it in the "Tools -> SSH" Section on the Job Submission Page.')
PORTAL_KEY_PLACEHOLDER = "<your-private-key-file-path>"
# How faces label each kind of ``SshInfo.commands`` line.
SSH_LINE_LABELS = {
    "portal": "the portal's command: needs your default SSH key or ssh-agent",
    "key": "with pai_magic's key (-i): works as is",
}
SSH_USER = "root"


def portal_ssh_text(port: str | int, ip: str) -> str:
    """The portal's SSH Info dialog body for one RUNNING task of a job with user SSH."""
    parts = [
        PORTAL_HEADER,
        "1. Use your default SSH private key:\n",
        f"ssh -p {port} {SSH_USER}@{ip}\n",
        "2. Use a pre-downloaded SSH private key:\n",
        f"On Windows:\nssh -p {port} -i {PORTAL_KEY_PLACEHOLDER} {SSH_USER}@{ip}\n",
        f"On Unix-like System:\nchmod 400 {PORTAL_KEY_PLACEHOLDER} && ssh -p {port} -i "
        f"{PORTAL_KEY_PLACEHOLDER} {SSH_USER}@{ip}\n\n",
        PORTAL_FOOTER,
    ]
    return "\n".join(parts)


def portal_command(port: str | int, ip: str) -> str:
    """``ssh -p <port> root@<ip>``: the first command of the portal's text."""
    return f"ssh -p {port} {SSH_USER}@{ip}"


@dataclass
class SshEndpoint:
    """One RUNNING task reachable over SSH."""

    role: str
    index: int
    host: str
    port: int
    user: str = SSH_USER

    @property
    def task(self) -> str:
        return f"{self.role}/{self.index}"

    @property
    def command(self) -> str:
        return portal_command(self.port, self.host)

    def command_with_key(self, key_path: str) -> str:
        return f"ssh -p {self.port} -i {key_path} {self.user}@{self.host}"

    @property
    def portal_text(self) -> str:
        return portal_ssh_text(self.port, self.host)


@dataclass
class SshInfo:
    """What every face shows: portal text, copyable command lines, or why there is none."""

    job: str
    state: str
    has_ssh: bool
    endpoints: list[SshEndpoint] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # tasks with SSH that do not run yet
    key_path: str | None = None
    message: str | None = None

    @property
    def lines(self) -> list[str]:
        """Commands for copy buttons: the portal's, then the same with pai_magic's key."""
        out: list[str] = []
        for ep in self.endpoints:
            out.append(ep.command)
            if self.key_path:
                out.append(ep.command_with_key(self.key_path))
        return out

    @property
    def commands(self) -> list[dict[str, str]]:
        """``lines``, each with its task and kind, so a face can label them: ``portal`` (the
        portal's command: works only with the user's default key or agent) and ``key`` (with
        ``-i`` and pai_magic's key: works as is)."""
        out: list[dict[str, str]] = []
        for ep in self.endpoints:
            out.append({"task": ep.task, "kind": "portal", "line": ep.command})
            if self.key_path:
                out.append({"task": ep.task, "kind": "key", "line": ep.command_with_key(self.key_path)})
        return out

    @property
    def text(self) -> str:
        if not self.has_ssh:
            return PORTAL_NO_SSH
        blocks = []
        for ep in self.endpoints:
            block = f"SSH to {ep.task}:\n{ep.portal_text}"
            if self.key_path:
                block += f"\n\nWith pai_magic's key:\n{ep.command_with_key(self.key_path)}"
            blocks.append(block)
        if self.message:
            blocks.append(self.message)
        return "\n\n".join(blocks)

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "state": self.state, "has_ssh": self.has_ssh, "text": self.text,
                "lines": self.lines, "message": self.message if self.has_ssh else PORTAL_NO_SSH,
                "key_path": self.key_path, "waiting": list(self.waiting),
                "tasks": [{"task": ep.task, "role": ep.role, "index": ep.index, "host": ep.host,
                           "port": ep.port, "user": ep.user, "command": ep.command,
                           "text": ep.portal_text} for ep in self.endpoints]}

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access for faces that treat the info as JSON."""
        return self.as_dict().get(key, default)


def _ssh_port(task: TaskStatus) -> int | None:
    ports = task.ports.get("ssh") or []
    return ports[0] if ports else None


def build_ssh_info(detail: JobDetail, job_config: dict[str, Any] | None, *,
                   key_path: str | None = None) -> SshInfo:
    """SSH info from a job's detail and config (pure: no network)."""
    from pai_magic.core.protocol import job_has_ssh

    has = bool(job_config) and job_has_ssh(job_config or {})
    info = SshInfo(job=detail.full_name, state=detail.state, has_ssh=has, key_path=key_path)
    if not has:
        info.message = PORTAL_NO_SSH
        return info
    for task in detail.tasks:
        port = _ssh_port(task)
        if task.state == "RUNNING" and port and task.container_ip:
            info.endpoints.append(SshEndpoint(task.role, task.index, task.container_ip, port))
        else:
            info.waiting.append(f"{task.role}/{task.index}")
    if not info.endpoints:
        if detail.terminal:
            info.message = f"Job {detail.full_name} is {detail.state}: its containers are gone, so there is no SSH."
        else:
            info.message = (f"Job {detail.full_name} is {detail.state}: SSH info appears once a task is RUNNING "
                            "(the portal's SSH Info button is disabled until then).")
    elif info.waiting:
        info.message = f"Not running yet: {', '.join(info.waiting)}."
    return info


def ssh_info(client: Any, name: str, *, key_path: str | None = None) -> SshInfo:
    """SSH info of job ``name`` (``name`` or ``user~name``) on the client's cluster.

    ``key_path`` defaults to the key pai_magic would connect with (if one exists yet).
    """
    detail = client.get_job(name)
    config = client.job_config(name)
    if key_path is None:
        key_path = _default_key_path(client)
    if detail.terminal:
        from pai_magic.core.ssh.known_hosts import forget_job_keys

        forget_job_keys(detail.full_name)
    return build_ssh_info(detail, config, key_path=key_path)


def ssh_info_lines(client: Any, name: str, *, key_path: str | None = None) -> dict[str, Any]:
    """``ssh_info`` as JSON-ready data (for the server extension and widgets)."""
    return ssh_info(client, name, key_path=key_path).as_dict()


def _default_key_path(client: Any) -> str | None:
    from pai_magic.core.ssh.keys import find_key

    configured = getattr(getattr(client, "profile", None), "ssh_key", None)
    try:
        key = find_key(configured)
    except Exception:  # noqa: BLE001 - a broken key setting must not hide the SSH info
        return None
    return str(key.private_path) if key else None
