"""The SSH faces over the real embedded backend: ``pai-magic ssh-key|ssh-info|ssh|upload|
download`` and ``%pai_ssh_key``, ``%pai_ssh_info``, ``%pai_ssh``, ``%pai_upload``,
``%pai_download``, plus the SSH lines under a live ``%%pai_job --ssh`` status (thin faces:
parse, one core call, render; errors are one line)."""
from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest
from IPython.core.error import UsageError

from pai_magic.cli import main
from pai_magic.core.client import PaiClient
from pai_magic.core.jobs import stop_job, submit_job
from pai_magic.core.profiles import load_profile
from pai_magic.core.protocol import JobSpec, build_protocol
from pai_magic.core.ssh.keys import ensure_key
from pai_magic.core.ssh.known_hosts import KnownHosts, job_alias_prefix


@pytest.fixture
def cluster_env(local_backend, monkeypatch, tmp_path):
    monkeypatch.setenv("PAI_URL", local_backend.url)
    monkeypatch.setenv("PAI_USER", local_backend.user)
    monkeypatch.setenv("PAI_TOKEN", local_backend.token)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # pai_magic's own key, not the developer's
    return local_backend


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def ssh_job(cluster_env):
    key = ensure_key()
    client = PaiClient(load_profile())
    name = submit_job(client, build_protocol(JobSpec(name="faces", image="ubuntu:22.04", commands=["echo up"],
                                                     ssh_public_key=key.public_line, keep_alive=True)))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        detail = client.get_job(name)
        if detail.state == "RUNNING" and all(t.state == "RUNNING" for t in detail.tasks):
            break
        time.sleep(0.3)
    else:
        pytest.fail("ssh job did not reach RUNNING")
    try:
        yield name
    finally:
        stop_job(client, name, wait=True, timeout=60)
        client.close()


def test_cli_ssh_key_info_command_and_transfers(ssh_job, capsys, tmp_path):
    code, out, err = _cli(capsys, "ssh-key", "--json")
    assert code == 0, err
    key = json.loads(out)
    assert key["public_key"].startswith("ssh-ed25519 ") and key["generated"]
    code, out, err = _cli(capsys, "ssh-key", "--add")
    assert code == 0 and "Added to your OpenPAI profile as 'pai_magic-" in out
    code, out, _ = _cli(capsys, "ssh-key", "--add", "--json")
    assert json.loads(out)["added"] is False

    code, out, err = _cli(capsys, "ssh-info", ssh_job)
    assert code == 0, err
    assert "1. Use your default SSH private key:" in out and "root@127.0.0.1" in out
    code, out, _ = _cli(capsys, "ssh-info", ssh_job, "--json")
    assert json.loads(out)["tasks"][0]["command"].startswith("ssh -p ")

    code, out, err = _cli(capsys, "ssh", ssh_job, "--", "echo", "out-line;", "echo", "err-line", ">&2;", "exit", "5")
    assert code == 5 and out == "out-line\n" and err == "err-line\n"
    code, out, err = _cli(capsys, "ssh", ssh_job, "--task", "taskrole/0", "--", "pwd")
    assert code == 0 and out.strip().startswith("/")

    code, out, err = _cli(capsys, "ssh", ssh_job, "--print-command", "--", "echo via openssh")
    assert code == 0, err
    argv = shlex.split(out)
    assert "-i" in argv and any(a.startswith("HostKeyAlias=") for a in argv)
    res = subprocess.run(argv[:-3] + ["-o", "BatchMode=yes"] + argv[-3:], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 0 and res.stdout == "via openssh\n", res.stderr

    code, out, err = _cli(capsys, "ssh", ssh_job)  # no command, no terminal: one line, exit 2
    assert code == 2 and err.count("\n") == 1 and "-- CMD" in err

    src = tmp_path / "in.txt"
    src.write_text("payload\n")
    code, out, err = _cli(capsys, "upload", str(src), f"{ssh_job}:in.txt")
    assert code == 0 and "verified by sha256" in out, err
    code, out, err = _cli(capsys, "download", f"{ssh_job}:in.txt", str(tmp_path / "back.txt"), "--json")
    assert code == 0, err
    assert json.loads(out)["files"][0]["verified"] == "sha256"
    assert (tmp_path / "back.txt").read_text() == "payload\n"
    code, out, err = _cli(capsys, "download", f"{ssh_job}:no/such/file", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code, out, err = _cli(capsys, "upload", str(src), "not-a-remote-spec")
    assert code == 2 and "JOB:PATH" in err


def test_magics_key_info_ssh_and_transfers(ssh_job, ipy, capsys, tmp_path):
    view = ipy.run_line_magic("pai_ssh_key", "")
    assert view.text.startswith("ssh-ed25519 ") and "Copy</button>" in view._repr_html_()
    assert "Added to your OpenPAI profile" in ipy.run_line_magic("pai_ssh_key", "--add").text

    info = ipy.run_line_magic("pai_ssh_info", ssh_job)
    assert "You can connect to this container" in info.text
    assert info._repr_html_().count("Copy</button>") == 2  # portal command + the one with our key

    capsys.readouterr()
    assert ipy.run_line_magic("pai_ssh", f"{ssh_job} -o res -- echo streamed; echo warn >&2; exit 4") is None
    printed = capsys.readouterr()
    assert "streamed\n" in printed.out and "warn\n" in printed.err and "[exit status 4]" in printed.err
    assert ipy.user_ns["res"] == {"status": 4, "stdout": "streamed\n", "stderr": "warn\n"}

    folder = tmp_path / "nb_data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.bin").write_bytes(b"\x00\x01" * 50000)
    up = ipy.run_line_magic("pai_upload", f"{folder} {ssh_job}:.")
    assert "uploaded 1 file(s)" in up.text and "sha256" in up.text
    assert "upload: 100%" in capsys.readouterr().out  # text progress outside a kernel
    down = ipy.run_line_magic("pai_download", f"{ssh_job}:nb_data {tmp_path / 'got'}")
    assert "downloaded 1 file(s)" in down.text
    assert (tmp_path / "got" / "sub" / "w.bin").read_bytes() == b"\x00\x01" * 50000

    with pytest.raises(UsageError) as err:
        ipy.run_line_magic("pai_ssh", ssh_job)
    assert "give the command after --" in str(err.value)
    with pytest.raises(UsageError) as err:
        ipy.run_line_magic("pai_ssh", f"{ssh_job} --task bad/x -- ls")
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError) as err:
        ipy.run_line_magic("pai_download", f"{ssh_job}:missing.txt {tmp_path}")
    assert "does not exist" in str(err.value) and "\n" not in str(err.value)


def test_live_status_of_an_ssh_job_shows_the_command_and_forgets_keys_at_the_end(cluster_env, ipy):
    from pai_magic.magics.ssh import ssh_status_lines
    from pai_magic.magics.session import get_session

    key = ensure_key()
    session = get_session(ipy)
    client = session.client()
    name = submit_job(client, build_protocol(JobSpec(name="live", image="ubuntu:22.04", commands=["echo up"],
                                                     ssh_public_key=key.public_line, keep_alive=True)))
    try:
        deadline = time.monotonic() + 90
        while client.get_job(name).state != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.3)
        lines = ssh_status_lines(session, name, client.user, "RUNNING")
        assert lines and lines[0].startswith("SSH taskrole/0: ssh -p ") and str(key.private_path) in lines[0]
        ipy.run_line_magic("pai_ssh", f"{name} -- true")  # records the task's host key
        assert any(a.startswith(job_alias_prefix(f"{client.user}~{name}")) for a in KnownHosts().aliases())
    finally:
        stop_job(client, name, wait=True, timeout=60)
    assert ssh_status_lines(session, name, client.user, "STOPPED") is None
    assert not any(a.startswith(job_alias_prefix(f"{client.user}~{name}")) for a in KnownHosts().aliases())


def test_cli_ssh_without_a_command_in_a_terminal_execs_openssh(ssh_job, tmp_path):
    """`pai-magic ssh NAME` on a real pty: OpenSSH takes the terminal, runs a shell in the task."""
    import os
    import pty
    import select
    import sys

    from tests.fixtures.local_backend import REPO_ROOT

    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TERM="dumb")
    proc = subprocess.Popen([sys.executable, "-m", "pai_magic", "ssh", ssh_job], stdin=slave, stdout=slave,
                            stderr=slave, env=env, cwd=str(tmp_path), start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        os.write(master, b"echo in-task-$((6*7)); exit 3\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert proc.wait(timeout=30) == 3, seen.decode(errors="replace")
        # the last output may still sit in the pty when ssh has exited: read it to the end
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side of the pty is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"in-task-42" in seen, seen.decode(errors="replace")
