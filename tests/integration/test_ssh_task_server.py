"""The embedded backend's per-task SSH server (pai_magic.local.task_ssh), started in-process:
stock OpenSSH ssh, scp and sftp with the portal's command shape, and pai_magic's own client
(exec, cancel, transfers) against it; key-only auth; close() ends every process it started."""
from __future__ import annotations

import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from pai_magic.core.errors import AuthError, UnreachableError
from pai_magic.core.ssh.connect import SshTarget, connect
from pai_magic.core.ssh.exec import CANCELLED_STATUS, run_capture, run_command
from pai_magic.core.ssh.known_hosts import host_key_alias
from pai_magic.core.ssh.transfer import download, upload
from pai_magic.local.task_ssh import HOST_KEY_NAME, start_task_ssh
from tests.fixtures.services import need_binary
from tests.fixtures.sshd import write_ed25519_pair
from tests.integration.test_ssh_sshd import _gone


class TaskServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = root / "user_key"
        self.public = write_ed25519_pair(self.key, "user@laptop")
        self.job_key = root / "job_key"
        self.job_public = write_ed25519_pair(self.job_key, "userssh")
        self.cwd = root / "work dir"
        self.cwd.mkdir()
        self.host_keys = root / "host-keys"
        home = root / "home"  # the task's HOME: no developer ~/.bashrc runs inside the tests
        home.mkdir()
        self.server = start_task_ssh("127.0.0.1", 0, [self.public, "# comment\n" + self.job_public],
                                     self.cwd, {"PAI_JOB_NAME": "train_x", "PAI_TASK_INDEX": "0",
                                                "HOME": str(home)}, self.host_keys)
        self.port = self.server.port
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.server.host_public_line}\n")

    def ssh(self, *args: str, key: Path | None = None, input: str | None = None, user: str = "root"):
        argv = ["ssh", "-o", "BatchMode=yes", "-i", str(key or self.key), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-p", str(self.port), f"{user}@127.0.0.1", *args]
        return subprocess.run(argv, capture_output=True, text=True, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, timeout=60)

    def opts(self, port_flag: str = "-P") -> list[str]:
        return ["-o", "BatchMode=yes", "-i", str(self.key), "-o", f"UserKnownHostsFile={self.known_hosts}",
                port_flag, str(self.port)]

    def target(self) -> SshTarget:
        return SshTarget("127.0.0.1", self.port, host_key_alias("tester~train_x", "taskrole", 0))


@pytest.fixture
def task_server(tmp_path):
    need_binary("ssh", "openssh-client")
    srv = TaskServer(tmp_path)
    try:
        yield srv
    finally:
        srv.server.close()


def test_stock_ssh_runs_in_the_task_dir_with_its_env_and_status(task_server):
    res = task_server.ssh("echo hi; pwd; echo $PAI_JOB_NAME; echo to-err >&2; exit 4")
    assert res.returncode == 4, res.stderr
    assert res.stdout == f"hi\n{task_server.cwd}\ntrain_x\n"
    assert res.stderr == "to-err\n"


def test_both_the_profile_key_and_the_jobs_userssh_key_work_and_others_do_not(task_server, tmp_path):
    assert task_server.ssh("echo job-key", key=task_server.job_key).stdout == "job-key\n"
    stranger = tmp_path / "stranger"
    write_ed25519_pair(stranger)
    res = task_server.ssh("echo no", key=stranger)
    assert res.returncode == 255 and "Permission denied" in res.stderr


def test_any_user_name_is_accepted_the_key_authenticates(task_server):
    assert task_server.ssh("echo ok", user="someone").stdout == "ok\n"


def test_pty_and_interactive_shell(task_server):
    res = task_server.ssh("-tt", "tty; echo $TERM")
    assert res.returncode == 0 and "/dev/pts/" in res.stdout
    res = task_server.ssh("-tt", input="echo inshell $((40+2))\nexit 5\n")
    assert res.returncode == 5 and "inshell 42" in res.stdout


def test_scp_both_ways_and_sftp_batch(task_server, tmp_path):
    need_binary("scp", "openssh-client")
    need_binary("sftp", "openssh-client")
    local = tmp_path / "notes.txt"
    local.write_bytes(b"line one\n" * 5000)
    res = subprocess.run(["scp", *task_server.opts(), str(local), "root@127.0.0.1:copied.txt"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 0, res.stderr
    assert (task_server.cwd / "copied.txt").read_bytes() == local.read_bytes()
    res = subprocess.run(["scp", *task_server.opts(), f"root@127.0.0.1:{task_server.cwd}/copied.txt",
                          str(tmp_path / "back.txt")], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 0 and (tmp_path / "back.txt").read_bytes() == local.read_bytes()
    batch = tmp_path / "batch"
    batch.write_text(f"pwd\nmkdir sub\nput {local} sub/n.txt\nrename sub/n.txt sub/m.txt\nls sub\n"
                     f"get sub/m.txt {tmp_path}/m.txt\nrm copied.txt\n")
    res = subprocess.run(["sftp", "-b", str(batch), *task_server.opts(), "root@127.0.0.1"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"Remote working directory: {task_server.cwd}" in res.stdout
    assert (task_server.cwd / "sub" / "m.txt").read_bytes() == local.read_bytes()
    assert (tmp_path / "m.txt").read_bytes() == local.read_bytes()
    assert not (task_server.cwd / "copied.txt").exists()


def test_pai_magic_client_exec_and_verified_transfers(task_server, tmp_path):
    src = tmp_path / "data"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (src / "a.txt").write_text("alpha\n")
    with connect(task_server.target(), task_server.key) as session:
        out: list[str] = []
        assert run_command(session, "echo $PAI_TASK_INDEX; ls", on_stdout=out.append) == 0
        assert "".join(out).startswith("0\n")
        up = upload(session, src, "uploaded")  # relative: the task's working directory
        assert {f.verified for f in up.files} == {"sha256"}
        assert (task_server.cwd / "uploaded" / "inner" / "blob.bin").read_bytes() == \
            (src / "inner" / "blob.bin").read_bytes()
        down = download(session, "uploaded", tmp_path / "back")
        assert len(down.files) == 2
    assert (tmp_path / "back" / "a.txt").read_text() == "alpha\n"
    assert (tmp_path / "back" / "inner" / "blob.bin").read_bytes() == (src / "inner" / "blob.bin").read_bytes()


def test_cancel_ends_the_remote_process(task_server):
    marker = f"{500 + uuid.uuid4().int % 1000 / 1000:.3f}"
    cancel = threading.Event()
    with connect(task_server.target(), task_server.key) as session:
        status = run_command(session, f"echo go; sleep {marker}",
                             on_stdout=lambda t: cancel.set() if "go" in t else None, cancel=cancel)
    assert status == CANCELLED_STATUS
    assert _gone(f"sleep {marker}")


def test_wrong_key_is_refused_by_pai_magic_too(task_server, tmp_path):
    stranger = tmp_path / "stranger"
    write_ed25519_pair(stranger)
    with pytest.raises(AuthError):
        connect(task_server.target(), stranger)


def test_close_ends_running_commands_and_the_port(task_server):
    marker = f"{400 + uuid.uuid4().int % 1000 / 1000:.3f}"
    session = connect(task_server.target(), task_server.key)
    errors: list[BaseException] = []
    started = threading.Event()

    def run() -> None:
        try:
            run_command(session, f"echo up; sleep {marker}", on_stdout=lambda t: started.set())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert started.wait(30)
    task_server.server.close()
    worker.join(30)
    session.close()
    assert not worker.is_alive() and errors and isinstance(errors[0], UnreachableError)
    assert _gone(f"sleep {marker}")
    with pytest.raises(UnreachableError):
        connect(task_server.target(), task_server.key)


def test_host_key_is_made_once_per_directory(task_server, tmp_path):
    first = (task_server.host_keys / HOST_KEY_NAME).read_bytes()
    assert os.stat(task_server.host_keys / HOST_KEY_NAME).st_mode & 0o077 == 0
    # the same task environment (its own HOME: the machine's ~/.bashrc must not run in the test)
    other = start_task_ssh("127.0.0.1", 0, [task_server.public], task_server.cwd, dict(task_server.server.env),
                           task_server.host_keys)
    try:
        assert other.host_public_line == task_server.server.host_public_line
        assert (task_server.host_keys / HOST_KEY_NAME).read_bytes() == first
        with connect(SshTarget("127.0.0.1", other.port, task_server.target().host_key_alias),
                     task_server.key) as session:  # same alias, same key: accepted
            assert run_capture(session, "echo same").stdout == "same\n"
    finally:
        other.close()


def test_a_remote_without_a_hasher_is_verified_by_size(tmp_path):
    """A task whose PATH has a shell and setsid but neither openssl nor sha256sum."""
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "bash", "setsid", "sleep"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    key = tmp_path / "k"
    public = write_ed25519_pair(key)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    server = start_task_ssh("127.0.0.1", 0, [public], cwd, {"PATH": str(bindir), "HOME": str(tmp_path),
                                                            "SHELL": str(bindir / "sh")}, tmp_path / "hk")
    try:
        src = tmp_path / "f.bin"
        src.write_bytes(os.urandom(70_000))
        target = SshTarget("127.0.0.1", server.port, host_key_alias("t~nohash", "taskrole", 0))
        with connect(target, key) as session:
            assert run_capture(session, "command -v sha256sum openssl; echo end").stdout == "end\n"
            up = upload(session, src, "f.bin")
            assert [f.verified for f in up.files] == ["size"]
            down = download(session, "f.bin", tmp_path / "back.bin")
            assert [f.verified for f in down.files] == ["size"]
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes() == (cwd / "f.bin").read_bytes()
    finally:
        server.close()


def test_a_passphrase_protected_key_connects_when_given_the_passphrase(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "locked"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.BestAvailableEncryption(b"open sesame")))
    os.chmod(path, 0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    server = start_task_ssh("127.0.0.1", 0, [public], tmp_path, {"HOME": str(tmp_path)}, tmp_path / "hk")
    target = SshTarget("127.0.0.1", server.port, host_key_alias("t~locked", "taskrole", 0))
    try:
        with pytest.raises(AuthError) as err:
            connect(target, path)
        assert "passphrase" in str(err.value)
        with connect(target, path, passphrase="open sesame") as session:
            assert run_capture(session, "echo unlocked").stdout == "unlocked\n"
    finally:
        server.close()


def test_many_commands_on_one_connection_reuse_channel_ids_safely(task_server):
    with connect(task_server.target(), task_server.key) as session:
        for i in range(25):
            res = run_capture(session, f"echo n{i}; exit {i % 4}")
            assert (res.exit_status, res.stdout) == (i % 4, f"n{i}\n")
