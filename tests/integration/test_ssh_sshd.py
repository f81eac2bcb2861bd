"""pai_magic's SSH client against a real, private OpenSSH sshd on loopback: streamed commands
and exit statuses, Ctrl-C, a silent dead peer, 200 MB transfers verified by sha256, transfers
cut mid-way (sshd's session processes SIGKILLed) leaving nothing under the final name, a
changed host key refused (also by stock ssh with our options), an unreachable port."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from pai_magic.core.errors import AuthError, HostKeyError, PaiTimeoutError, TransferError, UnreachableError
from pai_magic.core.ssh.connect import SshOptions, SshTarget, connect
from pai_magic.core.ssh.exec import CANCELLED_STATUS, run_capture, run_command
from pai_magic.core.ssh.known_hosts import KnownHosts, forget_job_keys, host_key_alias
from pai_magic.core.ssh.openssh import openssh_argv
from pai_magic.core.ssh.transfer import PART_MARK, download, upload
from tests.fixtures.services import free_port
from pai_magic.local.shim import descendants
from tests.fixtures.sshd import write_ed25519_pair

BIG = 200 * 1024 * 1024
JOB = "root~sshtest_job"


def _target(sshd, job=JOB, role="worker", index=0):
    return SshTarget("127.0.0.1", sshd.port, host_key_alias(job, role, index), label=f"task {role}/{index} of {job}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _random_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        left = size
        n = 0
        while left:
            # vary each MiB so a misplaced block changes the hash
            chunk = (n.to_bytes(8, "big") + block[8:])[:min(left, len(block))]
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            n += 1
    return h.hexdigest()


def _parts(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if PART_MARK in p.name]


def _gone(pattern: str, within: float = 10.0) -> bool:
    """True once no process matches ``pattern`` (bounded poll, not a timing assertion)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode != 0:
            return True
        time.sleep(0.1)
    return False


# ----------------------------------------------------------------------------- commands
def test_output_streams_while_the_command_runs_and_the_status_comes_back(sshd, tmp_path):
    flag = tmp_path / "flag"
    out: list[str] = []
    err: list[str] = []

    def on_out(text: str) -> None:
        out.append(text)
        if "first" in text:
            flag.touch()  # the command waits for this: without streaming it would never end

    command = f"echo first; while [ ! -e {flag} ]; do sleep 0.05; done; echo second; echo oops >&2; exit 7"
    with connect(_target(sshd), sshd.client_key) as session:
        status = run_command(session, command, on_stdout=on_out, on_stderr=err.append, timeout=60)
    assert status == 7
    assert "".join(out) == "first\nsecond\n" and "".join(err) == "oops\n"


def test_utf8_split_across_packets_and_stdin_eof(sshd):
    with connect(_target(sshd), sshd.client_key) as session:
        res = run_capture(session, "python3 -c \"import sys; sys.stdout.buffer.write('é'.encode()*40000)\"")
        assert res.exit_status == 0 and res.stdout == "é" * 40000
        res = run_capture(session, "cat; echo done")  # stdin is closed: cat ends at once
        assert res.stdout == "done\n"
        res = run_capture(session, "echo $FOO", env={"FOO": "bar baz"})
        assert res.stdout == "bar baz\n"


def test_cancel_closes_the_channel_and_interrupts_the_remote_command(sshd):
    marker = f"{600 + int(uuid.uuid4().int % 1000) / 1000:.3f}"
    cancel = threading.Event()

    def on_out(text: str) -> None:
        if "started" in text:
            cancel.set()

    with connect(_target(sshd), sshd.client_key) as session:
        status = run_command(session, f"echo started; sleep {marker}", on_stdout=on_out, cancel=cancel)
        assert status == CANCELLED_STATUS
        assert run_capture(session, "echo still usable").stdout == "still usable\n"
    assert _gone(f"sleep {marker}")


def test_keyboard_interrupt_propagates_after_closing_the_channel(sshd):
    marker = f"{700 + int(uuid.uuid4().int % 1000) / 1000:.3f}"

    def on_out(text: str) -> None:
        raise KeyboardInterrupt  # what Ctrl-C in a kernel does inside the loop

    with connect(_target(sshd), sshd.client_key) as session:
        with pytest.raises(KeyboardInterrupt):
            run_command(session, f"echo started; sleep {marker}", on_stdout=on_out)
    assert _gone(f"sleep {marker}")


def test_a_silent_dead_peer_is_detected_not_waited_on(sshd):
    """SIGSTOP freezes sshd's session processes: the TCP link stays up but nothing answers.
    The bounded probe notices; paramiko's keepalive alone would wait forever."""
    opts = SshOptions(probe_interval=1.0, probe_timeout=2.0)
    session = connect(_target(sshd), sshd.client_key, options=opts)
    stopped: list[int] = []
    try:
        def freeze(text: str) -> None:
            for pid in descendants(sshd.proc.pid):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)

        with pytest.raises(UnreachableError) as err:
            run_command(session, "echo started; sleep 600", on_stdout=freeze)
        assert "\n" not in str(err.value) and "stopped answering" in str(err.value)
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        session.close()


def test_a_command_timeout_is_one_line(sshd):
    with connect(_target(sshd), sshd.client_key) as session:
        with pytest.raises(PaiTimeoutError) as err:
            run_command(session, "sleep 30", timeout=0.5)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------- connecting
def test_unreachable_port_fails_with_one_line(tmp_path):
    key = tmp_path / "k"
    write_ed25519_pair(key)
    port = free_port()
    with pytest.raises(UnreachableError) as err:
        connect(SshTarget("127.0.0.1", port, host_key_alias(JOB, "worker", 0)), key)
    message = str(err.value)
    assert "\n" not in message and f"127.0.0.1:{port}" in message and "refused" in message


def test_a_key_the_server_does_not_know_is_refused_with_one_line(sshd, tmp_path):
    other = tmp_path / "other"
    write_ed25519_pair(other)
    with pytest.raises(AuthError) as err:
        connect(_target(sshd), other)
    assert "\n" not in str(err.value) and "ssh-key --add" in str(err.value)


def test_changed_host_key_within_a_job_is_refused_and_other_jobs_are_not(sshd):
    kh = KnownHosts()
    with connect(_target(sshd), sshd.client_key):
        pass
    learned = kh.lookup(host_key_alias(JOB, "worker", 0))
    assert [k.key_base64 for k in learned] == [sshd.host_public.split()[1]]
    sshd.restart(new_host_key=True)
    with pytest.raises(HostKeyError) as err:
        connect(_target(sshd), sshd.client_key)
    assert "\n" not in str(err.value) and "changed" in str(err.value)
    assert kh.lookup(host_key_alias(JOB, "worker", 0)) == learned  # the old key stays
    # stock ssh with the options pai_magic gives it refuses too, without asking anything
    argv = openssh_argv(_target(sshd), sshd.client_key, command="echo hi", batch=True)
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 255 and "hi" not in res.stdout
    assert "HOST IDENTIFICATION HAS CHANGED" in res.stderr or "verification failed" in res.stderr
    # a new job on the same ip:port is trusted on its first use
    with connect(_target(sshd, job="root~next_job"), sshd.client_key) as session:
        assert run_capture(session, "echo ok").stdout == "ok\n"
    # once the first job ended and its keys were forgotten, it connects again
    forget_job_keys(JOB)
    with connect(_target(sshd), sshd.client_key):
        pass


def test_stock_ssh_and_pai_magic_share_one_known_hosts_entry(sshd):
    target = _target(sshd, role="stock")
    argv = openssh_argv(target, sshd.client_key, command="echo hi from ssh", batch=True)
    assert "StrictHostKeyChecking=accept-new" in " ".join(argv)
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi from ssh\n"
    entries = KnownHosts().lookup(target.host_key_alias)
    assert [e.key_base64 for e in entries] == [sshd.host_public.split()[1]]
    assert "StrictHostKeyChecking=yes" in " ".join(openssh_argv(target, sshd.client_key))
    with connect(target, sshd.client_key) as session:  # pai_magic accepts what ssh recorded
        assert run_capture(session, "echo again").stdout == "again\n"
    assert not Path(os.path.expanduser("~/.ssh/known_hosts")).exists() or \
        target.host_key_alias not in Path(os.path.expanduser("~/.ssh/known_hosts")).read_text()


# --------------------------------------------------------------------------- transfers
def test_200mb_upload_and_download_match_by_sha256(sshd, tmp_path):
    src = tmp_path / "big.bin"
    digest = _random_file(src, BIG)
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    seen: list[int] = []
    with connect(_target(sshd), sshd.client_key) as session:
        up = upload(session, src, str(remote_dir) + "/", on_progress=lambda p: seen.append(p.bytes_done))
        assert up.files[0].verified == "sha256" and up.files[0].sha256 == digest
        assert _sha256(remote_dir / "big.bin") == digest
        assert seen == sorted(seen) and seen[-1] == BIG
        back = tmp_path / "back.bin"
        down = download(session, str(remote_dir / "big.bin"), back)
    assert down.files[0].verified == "sha256" and _sha256(back) == digest
    assert _parts(remote_dir) == [] and _parts(tmp_path) == []


def test_directories_recursively_with_modes_and_empty_files(sshd, tmp_path):
    src = tmp_path / "project"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "empty_dir").mkdir()
    (src / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(src / "run.sh", 0o755)
    (src / "sub" / "data.bin").write_bytes(os.urandom(300_000))
    (src / "sub" / "deeper" / "empty.txt").write_text("")
    remote = tmp_path / "remote"
    remote.mkdir()
    with connect(_target(sshd), sshd.client_key) as session:
        up = upload(session, src, str(remote))
        assert len(up.files) == 3 and {f.verified for f in up.files} == {"sha256"}
        assert os.stat(remote / "project" / "run.sh").st_mode & 0o777 == 0o755
        assert (remote / "project" / "empty_dir").is_dir()
        assert run_capture(session, f"sh {remote}/project/run.sh").stdout == "run\n"
        dest = tmp_path / "down"
        dest.mkdir()
        download(session, str(remote / "project"), dest)
    for rel in ("run.sh", "sub/data.bin", "sub/deeper/empty.txt"):
        assert (dest / "project" / rel).read_bytes() == (src / rel).read_bytes()
    assert os.stat(dest / "project" / "run.sh").st_mode & 0o777 == 0o755
    assert (dest / "project" / "empty_dir").is_dir()


def test_upload_cut_mid_way_leaves_nothing_under_the_final_name(sshd, tmp_path):
    src = tmp_path / "big.bin"
    _random_file(src, 64 * 1024 * 1024)
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "big.bin").write_bytes(b"the previous version")
    killed: list[int] = []

    def cut(p) -> None:
        if p.bytes_done > p.bytes_total // 3 and not killed:
            killed.append(sshd.kill_sessions())

    session = connect(_target(sshd), sshd.client_key, options=SshOptions(io_timeout=20))
    try:
        with pytest.raises(TransferError) as err:
            upload(session, src, str(remote / "big.bin"), on_progress=cut)
    finally:
        session.close()
    assert killed and killed[0] > 0
    assert "\n" not in str(err.value) and "nothing was written under" in str(err.value)
    assert (remote / "big.bin").read_bytes() == b"the previous version"
    assert all(p.startswith(".big.bin" + PART_MARK) for p in _parts(remote))


def test_download_cut_mid_way_leaves_nothing_locally(sshd, tmp_path):
    src = tmp_path / "big.bin"
    _random_file(src, 64 * 1024 * 1024)
    dest_dir = tmp_path / "dest"
    dest_dir.mkdir()
    killed: list[int] = []

    def cut(p) -> None:
        if p.bytes_done > p.bytes_total // 3 and not killed:
            killed.append(sshd.kill_sessions())

    session = connect(_target(sshd), sshd.client_key, options=SshOptions(io_timeout=20))
    try:
        with pytest.raises(TransferError):
            download(session, str(src), dest_dir / "big.bin", on_progress=cut)
    finally:
        session.close()
    assert killed and list(dest_dir.iterdir()) == []


def test_a_corrupted_upload_is_not_renamed(sshd, tmp_path, monkeypatch):
    """Fake (named so): the remote sha256sum is made to disagree, a fault a healthy sshd
    cannot produce on demand; the verified-before-rename path must refuse the file."""
    from pai_magic.core.ssh import transfer

    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(100_000))
    remote = tmp_path / "remote"
    remote.mkdir()
    monkeypatch.setattr(transfer, "_remote_sha256sum", lambda session, paths: ["0" * 64 for _ in paths])
    with connect(_target(sshd), sshd.client_key) as session:
        with pytest.raises(TransferError) as err:
            upload(session, src, str(remote / "f.bin"))
    assert "sha256" in str(err.value)
    assert list(remote.iterdir()) == []


def test_missing_paths_are_one_line_errors(sshd, tmp_path):
    from pai_magic.core.errors import InvalidInputError, NotFoundError

    with connect(_target(sshd), sshd.client_key) as session:
        with pytest.raises(NotFoundError):
            download(session, str(tmp_path / "nope"), tmp_path / "x")
        with pytest.raises(NotFoundError):
            upload(session, tmp_path / "nope", str(tmp_path))
        (tmp_path / "a.txt").write_text("a")
        (tmp_path / "plain").write_text("not a directory")
        with pytest.raises(InvalidInputError) as err:
            upload(session, tmp_path / "a.txt", str(tmp_path / "plain" / "a.txt"))
    assert "\n" not in str(err.value) and "not a directory" in str(err.value)


def test_upload_creates_missing_remote_folders_like_mkdir_p(sshd, tmp_path):
    """A fresh container has no inputs/ folder: `%pai_upload data.csv job:inputs/data.csv` just works."""
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "f").write_text("f")
    with connect(_target(sshd), sshd.client_key) as session:
        upload(session, tmp_path / "a.txt", str(tmp_path / "r" / "inputs" / "a.txt"))
        upload(session, tmp_path / "a.txt", str(tmp_path / "r2" / "dir") + "/")
        upload(session, tmp_path / "tree", str(tmp_path / "r3" / "deep" / "copy"))
    assert (tmp_path / "r" / "inputs" / "a.txt").read_text() == "a"
    assert (tmp_path / "r2" / "dir" / "a.txt").read_text() == "a"
    assert (tmp_path / "r3" / "deep" / "copy" / "f").read_text() == "f"
