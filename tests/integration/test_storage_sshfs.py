"""sshfs with pai_magic's trust, against a real OpenSSH sshd: the host key is learned by the
SSH layer (paramiko, trust on first use under the task's alias) and stock sshfs checks the same
known_hosts entry; a changed host key is refused without a prompt; fusermount3 unmounts."""
from __future__ import annotations

import subprocess

import pytest

from pai_magic.core.errors import MountError
from pai_magic.core.storage import nfs, state
from pai_magic.core.storage.mounttable import find_mount
from pai_magic.core.storage.rootless import SshfsEndpoint, mount_sshfs
from tests.fixtures.services import need, need_binary


@pytest.fixture
def fuse_ok():
    need_binary("sshfs", "sshfs")
    need_binary("fusermount3", "fuse3")
    import os
    need(os.path.exists("/dev/fuse"), "FUSE needs /dev/fuse")


def _trust(sshd, alias):
    from pai_magic.core.ssh.connect import SshTarget, connect

    with connect(SshTarget("127.0.0.1", sshd.port, alias), sshd.client_key):
        pass


def test_sshfs_mount_reads_and_writes_both_ways_then_unmounts(sshd, fuse_ok, tmp_path):
    from pai_magic.core.ssh.known_hosts import KnownHosts

    remote = tmp_path / "remote, with comma and space"
    remote.mkdir()
    (remote / "from_server.txt").write_text("written on the server side")
    alias = "alice~helper_x.taskrole.0.a0.pai"
    _trust(sshd, alias)
    ep = SshfsEndpoint("127.0.0.1", sshd.port, "root", str(remote), str(sshd.client_key), str(KnownHosts().path), alias)
    mp = tmp_path / "local mount" / "not yet there"
    commands = mount_sshfs(ep, str(mp), timeout=30)
    try:
        assert commands[0] == ["mkdir", "-p", str(mp)] and commands[1][0] == "sshfs"
        entry = find_mount(mp)
        assert entry is not None and entry.is_sshfs
        assert (mp / "from_server.txt").read_text() == "written on the server side"
        (mp / "from_client.txt").write_text("written through sshfs")
        assert (remote / "from_client.txt").read_text() == "written through sshfs"
    finally:
        result = nfs.umount(str(mp))
    assert result.commands[0][:2] == ["fusermount3", "-u"] and find_mount(mp) is None


def test_a_changed_host_key_is_refused_without_prompt(sshd, fuse_ok, tmp_path):
    from pai_magic.core.ssh.known_hosts import KnownHosts

    alias = "alice~helper_y.taskrole.0.a0.pai"
    _trust(sshd, alias)
    sshd.restart(new_host_key=True)
    ep = SshfsEndpoint("127.0.0.1", sshd.port, "root", str(tmp_path), str(sshd.client_key), str(KnownHosts().path), alias)
    mp = tmp_path / "mp"
    try:
        with pytest.raises(MountError) as info:
            mount_sshfs(ep, str(mp), timeout=30, where="task taskrole/0 of job alice~helper_y")
    finally:
        if find_mount(mp) is not None:
            subprocess.run(["fusermount3", "-u", str(mp)], check=False)
    assert find_mount(mp) is None
    assert "does not match the one pai_magic recorded" in str(info.value)


def test_sshfs_refused_key_is_one_sentence(sshd, fuse_ok, tmp_path):
    from pai_magic.core.ssh.keys import generate_key
    from pai_magic.core.ssh.known_hosts import KnownHosts

    alias = "alice~helper_z.taskrole.0.a0.pai"
    _trust(sshd, alias)
    stranger = generate_key(tmp_path / "stranger_ed25519")
    ep = SshfsEndpoint("127.0.0.1", sshd.port, "root", str(tmp_path), str(stranger.private_path),
                       str(KnownHosts().path), alias)
    mp = tmp_path / "mp"
    with pytest.raises(MountError) as info:
        mount_sshfs(ep, str(mp), timeout=30, where="the task")
    assert find_mount(mp) is None
    assert "refused pai_magic's SSH key" in str(info.value)
    assert state.load_records() == []
