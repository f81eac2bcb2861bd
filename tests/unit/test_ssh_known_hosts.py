"""pai_magic's known_hosts: one alias per job task (lowercase, collision-free), trust on first
use, a changed key refused with one line, a job's keys forgotten, OpenSSH-compatible lines."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import subprocess

import pytest

from pai_magic.core.errors import HostKeyError
from pai_magic.core.ssh.known_hosts import KnownHosts, forget_job_keys, host_key_alias, job_alias_prefix

KEY_A = ("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIMGKrvQRxNEqblW4SDZf6HwbQMwWyGiiibAF7hTIdx/b")
KEY_B = ("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIPyF8s3l2+0i5QPhZ5xZ1M4mV8m6Y6C0n3mO5H1k2A3b")


def test_aliases_are_lowercase_and_keep_case_variants_apart():
    a = host_key_alias("alice~Train", "worker", 0)
    b = host_key_alias("alice~train", "worker", 0)
    assert a == a.lower() and b == "alice~train.worker.0.a0.pai"
    assert a != b
    assert host_key_alias("alice~train", "worker", 0, 1) != b  # a retry is a new container
    assert a.startswith(job_alias_prefix("alice~Train")) and not b.startswith(job_alias_prefix("alice~Train"))
    assert " " not in a and "," not in a and "*" not in a


def test_trust_on_first_use_then_refuse_a_changed_key(tmp_path):
    kh = KnownHosts(tmp_path / "known_hosts")
    alias = host_key_alias("alice~train", "worker", 0)
    assert kh.check(alias, *KEY_A, where="task worker/0 of job alice~train (10.0.0.5:2222)") is True
    assert kh.check(alias, *KEY_A) is False
    before = kh.path.read_text()
    with pytest.raises(HostKeyError) as err:
        kh.check(alias, *KEY_B, where="task worker/0 of job alice~train (10.0.0.5:2222)")
    message = str(err.value)
    assert "\n" not in message and "changed" in message and "alice~train" in message
    assert "forget_host_key" in message  # says what to do next
    assert kh.path.read_text() == before  # nothing learned from a refused key
    # another job on the same ip:port is a different container: trusted on its first use
    assert kh.check(host_key_alias("alice~other", "worker", 0), *KEY_B) is True


def test_forget_job_drops_only_that_job(tmp_path):
    kh = KnownHosts(tmp_path / "kh")
    kh.add(host_key_alias("alice~a", "worker", 0), *KEY_A)
    kh.add(host_key_alias("alice~a", "ps", 1), *KEY_A)
    kh.add(host_key_alias("alice~ab", "worker", 0), *KEY_B)  # prefix of a job name is not the job
    assert kh.forget_job("alice~a") == 2
    assert kh.aliases() == [host_key_alias("alice~ab", "worker", 0)]
    assert forget_job_keys("alice~zzz", kh) == 0


def test_hashed_entries_written_by_openssh_are_understood(tmp_path):
    alias = host_key_alias("bob~j", "worker", 0)
    salt = os.urandom(20)
    digest = hmac.new(salt, alias.encode(), hashlib.sha1).digest()
    line = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()} {KEY_A[0]} {KEY_A[1]}\n"
    kh = KnownHosts(tmp_path / "kh")
    kh.path.write_text("# comment\n\n" + line)
    assert [k.key_base64 for k in kh.lookup(alias)] == [KEY_A[1]]
    with pytest.raises(HostKeyError):
        kh.check(alias, *KEY_B)
    assert kh.forget_job("bob~j", aliases=[alias]) == 1


def test_file_is_readable_by_stock_ssh_keygen(tmp_path):
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen not installed")
    kh = KnownHosts(tmp_path / "kh")
    alias = host_key_alias("alice~train", "worker", 3)
    kh.check(alias, *KEY_A)
    out = subprocess.run(["ssh-keygen", "-F", alias, "-f", str(kh.path)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=30)
    assert out.returncode == 0 and KEY_A[1] in out.stdout
    assert (os.stat(kh.path).st_mode & 0o077) == 0


def test_default_location_is_inside_the_config_dir():
    from pai_magic.core.paths import config_dir

    assert KnownHosts().path == config_dir() / "ssh" / "known_hosts"
    assert os.path.expanduser("~/.ssh/known_hosts") != str(KnownHosts().path)
