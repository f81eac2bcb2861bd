"""Pure parts of the storage core: argv building, source parsing, mountinfo parsing, the
one-sentence error mapping (fed with the exact texts mount.nfs, mount and sudo print)."""
from __future__ import annotations

import shlex

import pytest

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.storage import nfs
from pai_magic.core.storage.info import StorageInfo
from pai_magic.core.storage.mounttable import find_mount, parse_mountinfo, same_source


@pytest.mark.parametrize("source,expected", [
    ("10.0.0.1:/data", ("10.0.0.1", "/data")),
    ("nfs.example.org:/srv/a b", ("nfs.example.org", "/srv/a b")),
    ("[fe80::1]:/data", ("[fe80::1]", "/data")),
    ("host:/x:y", ("host", "/x:y")),
])
def test_parse_source_accepts(source, expected):
    assert nfs.parse_source(source) == expected


@pytest.mark.parametrize("bad", ["", "10.0.0.1", "10.0.0.1:data", ":/data", "-o:/x", "a b:/x", "h;rm:/x"])
def test_parse_source_rejects_with_one_line(bad):
    with pytest.raises(InvalidInputError) as info:
        nfs.parse_source(bad)
    assert "SERVER:/PATH" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("mountpoint", ["/mnt/data", "/mnt/with space", "/mnt/x;rm -rf ~", "/mnt/$(id)`id`'\"",
                                        "/mnt/tab\there", "/mnt/*glob?[a]"])
@pytest.mark.parametrize("options", ["nfsvers=4.1", "nfsvers=3,ro,port=2049", None])
def test_mount_argv_every_form_round_trips_through_shell_quoting(mountpoint, options):
    argv = nfs.mount_argv("10.0.0.1:/data dir", mountpoint, options)
    prefix = ["sudo", "-n"] if nfs.needs_sudo() else []
    expected = prefix + ["mount", "-t", "nfs"] + (["-o", options] if options else []) + ["10.0.0.1:/data dir", mountpoint]
    assert argv == expected
    line = shlex.join(argv)
    assert shlex.split(line) == argv  # what --dry-run prints is exactly what runs


def test_mount_options_with_spaces_are_refused():
    with pytest.raises(InvalidInputError):
        nfs.mount_argv("h:/d", "/mnt/x", "nfsvers=4.1, ro")


def test_plan_creates_missing_mount_point_first(tmp_path):
    target = tmp_path / "new dir" / "deeper"
    commands = nfs.plan_mount("h:/d", str(target))
    assert commands[0][-3:] == ["mkdir", "-p", str(target)]
    assert commands[1][-2:] == ["h:/d", str(target)]
    target.mkdir(parents=True)
    assert len(nfs.plan_mount("h:/d", str(target))) == 1


def test_plan_refuses_a_file_as_mount_point(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInputError):
        nfs.plan_mount("h:/d", str(f))


def test_umount_argv_uses_fusermount_for_fuse_and_umount_otherwise():
    from pai_magic.core.storage.mounttable import MountEntry
    fuse = nfs.umount_argv(MountEntry("/m", "fuse.sshfs", "root@127.0.0.1:/x"), "/m")
    assert fuse[0].startswith("fusermount") and fuse[1:] == ["-u", "/m"]
    kernel = nfs.umount_argv(MountEntry("/m", "nfs4", "h:/d"), "/m")
    assert kernel[-2:] == ["umount", "/m"]


MOUNTINFO = (
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "90 22 0:50 / /mnt/with\\040space rw,relatime shared:40 - nfs4 10.0.0.1:/data\\040dir rw,vers=4.1\n"
    "91 22 0:51 / /home/u/share rw,nosuid,nodev - fuse.sshfs root@127.0.0.1:/mnt/s rw,user_id=0\n"
    "92 22 0:52 / /mnt/stack rw - tmpfs first rw\n"
    "93 92 0:53 / /mnt/stack rw - tmpfs second rw\n"
    "garbage line\n"
)


def test_parse_mountinfo_unescapes_and_types():
    table = parse_mountinfo(MOUNTINFO)
    assert len(table) == 5
    nfs_entry = find_mount("/mnt/with space", table)
    assert nfs_entry and nfs_entry.source == "10.0.0.1:/data dir" and nfs_entry.is_nfs
    sshfs = find_mount("/home/u/share", table)
    assert sshfs and sshfs.is_sshfs and sshfs.is_network_share
    assert find_mount("/mnt/stack", table).source == "second"  # the top of a stack wins
    assert find_mount("/mnt/none", table) is None


def test_same_source_ignores_trailing_slash():
    assert same_source("h:/data/", "h:/data")
    assert not same_source("h:/data", "h:/data2")


@pytest.mark.parametrize("stderr,needle", [
    ("mount.nfs: No such device", "kernel has no NFS client"),
    ("sudo: a password is required", "sudo needs a password"),
    ("sudo: a terminal is required to read the password; either use the -S option", "sudo needs a password"),
    ("nobody is not in the sudoers file.  This incident will be reported.", "may not use sudo"),
    ("mount.nfs: access denied by server while mounting 10.0.0.1:/nope", "refused to mount"),
    ("mount: /mnt/x: bad option; for several filesystems (e.g. nfs, cifs) you might need a /sbin/mount.<type> helper program.",
     "mount.nfs is not installed"),
    ("mount: only root can use \"--types\" option", "needs root"),
    ("mount.nfs: failed to apply fstab options", "needs root"),
    ("mount.nfs: Connection refused", "does not answer"),
    ("mount.nfs: Connection timed out", "does not answer"),
    ("umount: /mnt/x: target is busy.", "busy"),
    ("something nobody foresaw", "Could not mount"),
])
def test_every_failure_is_one_sentence_that_says_what_next(stderr, needle):
    msg = nfs.explain_failure(stderr, 32, action="mount", source="10.0.0.1:/data", mountpoint="/mnt/x",
                              argv=["sudo", "-n", "mount", "-t", "nfs", "10.0.0.1:/data", "/mnt/x"])
    assert needle in msg
    assert "\n" not in msg and msg.endswith(".")


def test_storage_info_drops_secrets_and_builds_the_manual_command():
    smb = StorageInfo.from_api({"name": "team"}, {"type": "samba", "data": {"address": "//s/x", "username": "u",
                                                                            "password": "hunter2"}})
    azure = StorageInfo.from_api({"name": "az"}, {"type": "azureFile", "data": {"shareName": "s", "accountName": "a",
                                                                                "accountKey": "SECRETKEY"}})
    for info in (smb, azure):
        text = repr(info) + repr(info.as_dict())
        assert "hunter2" not in text and "SECRETKEY" not in text
        assert info.mount_command is None
    nfs_info = StorageInfo.from_api({"name": "data", "default": True, "share": True},
                                    {"type": "nfs", "readOnly": True, "data": {"server": "10.0.0.1", "path": "/data"}})
    assert nfs_info.source == "10.0.0.1:/data"
    assert shlex.split(nfs_info.mount_command) == ["sudo", "mount", "-t", "nfs", "-o", "nfsvers=4.1,ro",
                                                   "10.0.0.1:/data", "/mnt/data"]


def test_parse_mode_is_one_line_for_every_face():
    import pytest as _pytest

    from pai_magic.core.errors import InvalidInputError
    from pai_magic.core.storage.usage import parse_mode

    assert parse_mode("700") == 0o700 and parse_mode("0750") == 0o750
    for bad in ("rwx", "800", "1777", ""):
        with _pytest.raises(InvalidInputError) as err:
            parse_mode(bad)
        assert "\n" not in str(err.value) and "--mode" in str(err.value)


def test_mount_arguments_are_checked_once_for_both_faces():
    import pytest as _pytest
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    from pai_magic.cli import main
    from pai_magic.core.errors import InvalidInputError
    from pai_magic.core.storage.manage import mount_arguments

    assert mount_arguments(["srv:/data", "/mnt/x"]) == ("srv:/data", "/mnt/x")
    assert mount_arguments(["/mnt/x"]) == (None, "/mnt/x")
    for bad in (["a", "b", "c"], [""]):
        with _pytest.raises(InvalidInputError):
            mount_arguments(bad)
    assert main(["mount", "a:/x", "b", "c", "--dry-run"]) == 2
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "pai_magic")
        with _pytest.raises(UsageError, match="%pai_mount takes at most"):
            shell.run_line_magic("pai_mount", "a:/x b c --dry-run")
    finally:
        InteractiveShell.clear_instance()
