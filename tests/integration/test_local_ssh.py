"""Jobs with the ssh runtime plugin: each task answers SSH on containerPorts.ssh (real paramiko)."""
from __future__ import annotations

import io
import socket
import time

import paramiko
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from pai_magic.core.errors import AuthError
from pai_magic.core.protocol import JobSpec, build_protocol

T = 10


def new_key() -> tuple[paramiko.PKey, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption()).decode()
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    return pkey, f"{pkey.get_name()} {pkey.get_base64()} test@local"


def run(port: int, pkey: paramiko.PKey, command: str) -> tuple[int, str]:
    """Through pai_magic's own client: the task's host key is pinned per job, never auto-added."""
    from pai_magic.core.ssh.connect import SshTarget, connect
    from pai_magic.core.ssh.exec import run_capture

    target = SshTarget("127.0.0.1", port, host_key_alias=f"test~local-ssh.{port}.pai")
    with connect(target, pkey) as session:
        result = run_capture(session, command, timeout=T)
    return result.exit_status, result.stdout


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def test_ssh_into_a_running_task_with_the_job_key_and_the_profile_key(fresh_local_backend):
    b = fresh_local_backend
    job_key, job_pub = new_key()
    profile_key, profile_pub = new_key()
    stranger, _ = new_key()
    put = requests.put(f"{b.api}/users/me", headers=b.headers(), timeout=T, json={
        "data": {"username": b.user, "extension": {"sshKeys": [{"title": "p", "value": profile_pub, "time": 1}]}},
        "patch": True})
    assert put.status_code == 201
    job = build_protocol(JobSpec(name="sshjob", image="ubuntu:22.04", ssh_public_key=job_pub,
                                 commands=["echo marker > here.txt", "sleep 300"]))
    assert b.submit(job).status_code == 202
    detail = b.wait(job["name"], ("RUNNING",))
    task = detail["taskRoles"]["taskrole"]["taskStatuses"][0]
    port = int(task["containerPorts"]["ssh"])
    assert task["containerIp"] == "127.0.0.1"
    deadline = time.monotonic() + 10
    while refused(port) and time.monotonic() < deadline:
        time.sleep(0.05)

    code, out = run(port, job_key, "echo $PAI_JOB_NAME; echo $PAI_CONTAINER_SSH_PORT; cat here.txt")
    assert code == 0
    assert out.split() == [f"{b.user}~{job['name']}", str(port), "marker"]
    for _ in range(10):  # a command that ends at once still gets its exec answered and its status
        code, out = run(port, profile_key, "exit 7")
        assert code == 7
    with pytest.raises(AuthError):
        run(port, stranger, "true")

    assert requests.put(f"{b.api}/jobs/{b.user}~{job['name']}/executionType", json={"value": "STOP"},
                        headers=b.headers(), timeout=T).status_code == 202
    b.wait(job["name"], ("STOPPED",))
    deadline = time.monotonic() + 10
    while not refused(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refused(port), "the task's SSH server ends with the task"


def test_a_job_without_the_plugin_has_no_ssh_server(local_backend):
    b = local_backend
    job = build_protocol(JobSpec(name="nossh", image="ubuntu:22.04", commands=["sleep 300"]))
    assert b.submit(job).status_code == 202
    detail = b.wait(job["name"], ("RUNNING",))
    port = int(detail["taskRoles"]["taskrole"]["taskStatuses"][0]["containerPorts"]["ssh"])
    assert refused(port)
    requests.put(f"{b.api}/jobs/{b.user}~{job['name']}/executionType", json={"value": "STOP"},
                 headers=b.headers(), timeout=T)
    b.wait(job["name"], ("STOPPED",))
