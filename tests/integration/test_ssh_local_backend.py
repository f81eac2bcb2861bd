"""End to end through the embedded backend (a real subprocess over real HTTP): a job with the
ssh plugin and keep-alive reaches RUNNING, its SSH info is the portal's text, stock OpenSSH
with exactly the printed command (plus -i and pai_magic's known-hosts options) runs echo in
the task, and pai_magic's own exec/upload/download work by job name; the profile key added
with PUT /users/me also opens the task; the job's host keys are forgotten when it ends."""
from __future__ import annotations

import re
import shlex
import subprocess
import time

import pytest

from pai_magic.core.client import PaiClient
from pai_magic.core.jobs import stop_job, submit_job
from pai_magic.core.profiles import Profile
from pai_magic.core.protocol import JobSpec, build_protocol
from pai_magic.core.ssh import info as ssh_info_mod
from pai_magic.core.ssh.keys import ensure_key, generate_key
from pai_magic.core.ssh.known_hosts import KnownHosts, job_alias_prefix
from pai_magic.core.ssh.openssh import known_hosts_options
from pai_magic.core.ssh.tasks import (add_key_to_profile, download_from_task, resolve_target, run_in_task,
                                      upload_to_task)
from tests.fixtures.services import need_binary


@pytest.fixture
def client(local_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no developer key: pai_magic generates one
    (tmp_path / "home").mkdir()
    prof = Profile(name="e2e", url=local_backend.url, user=local_backend.user, token=local_backend.token)
    with PaiClient(prof) as c:
        yield c


def _wait_running(client, name, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = client.get_job(name)
        if detail.state == "RUNNING" and detail.tasks and all(t.state == "RUNNING" for t in detail.tasks):
            return detail
        assert not detail.terminal, f"job ended as {detail.state}: {detail.diagnostics}"
        time.sleep(0.3)
    pytest.fail(f"job {name} did not reach RUNNING")


def _submit(client, public_key, stem="ssh_e2e"):
    spec = JobSpec(name=stem, image="ubuntu:22.04", commands=["echo started"], ssh_public_key=public_key,
                   keep_alive=True)
    return submit_job(client, build_protocol(spec))


def test_ssh_job_info_stock_ssh_exec_and_transfers(client, tmp_path):
    need_binary("ssh", "openssh-client")
    key = ensure_key()
    assert key.generated
    name = _submit(client, key.public_line)
    try:
        detail = _wait_running(client, name)
        info = ssh_info_mod.ssh_info(client, name)
        assert info.has_ssh and len(info.endpoints) == 1
        assert "You can connect to this container by one of the following commands" in info.text
        printed = re.search(r"^ssh -p \d+ root@\S+$", info.text, re.M).group(0)
        ep = info.endpoints[0]
        assert printed == f"ssh -p {ep.port} root@{ep.host}"
        assert f"ssh -p {ep.port} -i {key.private_path} root@{ep.host}" in info.lines

        # stock OpenSSH: exactly the printed command, plus -i and pai_magic's known-hosts options
        target, _ = resolve_target(client, name)
        argv = shlex.split(printed) + ["-i", str(key.private_path)] + known_hosts_options(target) + \
            ["-o", "BatchMode=yes", "echo", "hi from the task"]
        res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout == "hi from the task\n"
        assert KnownHosts().has(target.host_key_alias)  # first use recorded under the task's alias

        # pai_magic's own client, by job name
        out: list[str] = []
        status = run_in_task(client, name, "echo $PAI_JOB_NAME; exit 3", on_stdout=out.append)
        assert status == 3 and "".join(out).strip().endswith(name)
        src = tmp_path / "payload"
        (src / "d").mkdir(parents=True)
        (src / "d" / "x.txt").write_text("x" * 10000)
        up = upload_to_task(client, name, src, ".")
        assert [f.verified for f in up.files] == ["sha256"]
        down = download_from_task(client, name, "payload", tmp_path / "back")
        assert (tmp_path / "back" / "d" / "x.txt").read_text() == "x" * 10000
        assert down.files[0].sha256 == up.files[0].sha256
    finally:
        stop_job(client, name, wait=True, timeout=60)
    # once the job ended, asking for its SSH info forgets its host keys
    ended = ssh_info_mod.ssh_info(client, name)
    assert ended.lines == [] and ended.state in ("STOPPED", "SUCCEEDED", "FAILED")
    assert not [a for a in KnownHosts().aliases() if a.startswith(job_alias_prefix(detail.full_name))]


def test_profile_key_opens_a_job_submitted_with_another_userssh_key(client, tmp_path):
    key = ensure_key()
    first = add_key_to_profile(client, key)
    assert first["added"] and first["title"].startswith("pai_magic-")
    assert any(k.get("value", "").split()[1:2] == [key.public_line.split()[1]] for k in first["keys"])
    again = add_key_to_profile(client, key)
    assert not again["added"] and len(again["keys"]) == len(first["keys"])  # no duplicate
    other = generate_key(tmp_path / "other_key")
    name = _submit(client, other.public_line, stem="ssh_profile")
    try:
        _wait_running(client, name)
        res: list[str] = []
        assert run_in_task(client, name, "echo via-profile-key", key=key, on_stdout=res.append) == 0
        assert "".join(res) == "via-profile-key\n"
        assert run_in_task(client, name, "echo via-userssh", key=other, on_stdout=res.append) == 0
    finally:
        stop_job(client, name, wait=True, timeout=60)


def test_ssh_info_of_a_job_without_the_plugin_is_the_portals_explanation(client):
    name = submit_job(client, build_protocol(JobSpec(name="no_ssh", image="ubuntu:22.04",
                                                     commands=["echo hi"], keep_alive=True)))
    try:
        _wait_running(client, name)
        info = ssh_info_mod.ssh_info(client, name)
        assert not info.has_ssh and info.text == ssh_info_mod.PORTAL_NO_SSH
        from pai_magic.core.errors import InvalidInputError

        with pytest.raises(InvalidInputError) as err:
            run_in_task(client, name, "echo no")
        assert "--ssh" in str(err.value)
    finally:
        stop_job(client, name, wait=True, timeout=60)


def test_ssh_right_after_submit_waits_for_the_task_to_run(client):
    """The usual notebook flow: submit with --ssh, then %pai_ssh at once, before RUNNING."""
    from pai_magic.core.jobs import wait_for

    key = ensure_key()
    spec = JobSpec(name="ssh_now", image="ubuntu:22.04", commands=["sleep 2", "echo up"],
                   ssh_public_key=key.public_line, keep_alive=True)
    name = submit_job(client, build_protocol(spec))
    try:
        out: list[str] = []
        assert run_in_task(client, name, "echo $PAI_JOB_NAME", on_stdout=out.append) == 0
        assert name in "".join(out)
        # wait_for(until=...) stops waiting once the job runs instead of at its end
        detail = wait_for(client, name, timeout=30, poll=0.5, until=lambda d: d.state == "RUNNING")
        assert detail.state == "RUNNING"
    finally:
        stop_job(client, name)
