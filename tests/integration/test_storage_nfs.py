"""The kernel-NFS way against real things: nfs-ganesha for --check, this kernel's own answer
to ``mount -t nfs``, a real sudo run by an unprivileged user, real tmpfs/bind mounts for the
already-mounted case, and a mount namespace that hides mount.nfs."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pai_magic.core.errors import MountError
from pai_magic.core.storage import nfs, state
from pai_magic.core.storage.check import check_export
from pai_magic.core.storage.listing import list_mounts
from pai_magic.core.storage.mounttable import find_mount
from tests.fixtures.services import free_port, need, need_binary

REPO = Path(__file__).resolve().parents[2]
KERNEL_HAS_NFS = any(line.split()[-1] in ("nfs", "nfs4") for line in Path("/proc/filesystems").read_text().splitlines()
                     if line.strip())
KNOWN_MOUNT_SENTENCES = ("kernel has no NFS client", "refused to mount", "does not answer", "needs root")


def _root() -> None:
    need(os.geteuid() == 0, "these tests make real mounts and need root")


@pytest.fixture
def cleanup_mounts():
    made: list[str] = []
    yield made
    for mp in reversed(made):
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)


# --check ------------------------------------------------------------------------------------

def test_check_finds_the_export_over_nfsv3_and_nfsv4(nfs_server):
    v3 = check_export(nfs_server.source)
    assert v3.ok and v3.verified and v3.method == "nfs-ls v3", v3.message
    v4 = check_export(nfs_server.source_v4, port=nfs_server.nfs_port)
    assert v4.ok and v4.verified and v4.method == "nfs-ls v4", v4.message


def test_check_reports_a_wrong_path_in_one_line_with_the_real_exports(nfs_server):
    result = check_export(f"{nfs_server.host}:/no/such/export", port=nfs_server.nfs_port)
    assert not result.ok and result.verified
    assert "does not export /no/such/export" in result.message
    assert str(nfs_server.export_dir) in result.exports
    assert "\n" not in result.message


def test_check_without_nfs_ls_falls_back_to_a_tcp_probe(nfs_server, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without nfs-ls
    up = check_export(nfs_server.source, port=nfs_server.nfs_port)
    assert up.ok and not up.verified and up.method == "tcp"
    assert "cannot verify the export" in up.message and "libnfs-utils" in up.message
    down = check_export("127.0.0.1:/data", port=free_port())
    assert not down.ok and "does not answer" in down.message


def test_check_of_a_server_that_is_not_there(tmp_path):
    need_binary("nfs-ls", "libnfs-utils")
    result = check_export("127.0.0.3:/data", port=free_port(), timeout=10)  # nothing serves NFS there
    assert not result.ok and "does not answer" in result.message


# the kernel mount, for real, up to this kernel's answer --------------------------------------

def test_kernel_mount_runs_for_real_and_reports_this_kernels_answer(nfs_server, tmp_path):
    _root()
    need_binary("mount.nfs", "nfs-common")
    mp = tmp_path / "mnt"
    options = f"nfsvers=4.1,port={nfs_server.nfs_port}"
    if KERNEL_HAS_NFS:  # a kernel with an NFS client really mounts the ganesha export
        (nfs_server.export_dir / "hello.txt").write_text("from the server")
        nfs.mount_nfs(nfs_server.source_v4, str(mp), options)
        try:
            assert (mp / "hello.txt").read_text() == "from the server"
            assert find_mount(mp) is not None
        finally:
            nfs.umount(str(mp))
        return
    with pytest.raises(MountError) as info:
        nfs.mount_nfs(nfs_server.source_v4, str(mp), options)
    msg = str(info.value)
    assert "kernel has no NFS client" in msg and "--via-job" in msg and "\n" not in msg
    assert mp.is_dir()  # the mount point was created first
    assert state.get_record(str(mp)) is None  # nothing recorded for a failed mount


def test_metacharacter_paths_are_printed_quoted_and_executed_as_argv(tmp_path, monkeypatch):
    _root()
    need_binary("mount.nfs", "nfs-common")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    name = "a b; touch PWNED1; $(touch PWNED2) `touch PWNED3` 'q\"&|>PWNED4"
    mp = work / name
    dry = nfs.mount_nfs("127.0.0.1:/ex port", str(mp), dry_run=True)
    assert dry.dry_run and not mp.exists()
    assert [shlex.split(line) for line in dry.shell_lines] == dry.commands
    assert dry.commands[0] == ["mkdir", "-p", str(mp)]
    assert dry.commands[1] == ["mount", "-t", "nfs", "-o", "nfsvers=4.1", "127.0.0.1:/ex port", str(mp)]
    # A real shell parses each printed line back into exactly the argv that runs.
    for line, argv in zip(dry.shell_lines, dry.commands):
        echoed = subprocess.run(["sh", "-c", f"for a in {line}; do printf '%s\\0' \"$a\"; done"],
                                capture_output=True, check=True, cwd=work).stdout.decode().split("\0")[:-1]
        assert echoed == argv
    # The real run: the folder gets the literal name, mount gets the literal path, no shell runs.
    try:
        nfs.mount_nfs("127.0.0.1:/ex port", str(mp), timeout=30)
    except MountError as exc:
        assert any(s in str(exc) for s in KNOWN_MOUNT_SENTENCES), str(exc)
    finally:
        subprocess.run(["umount", "-l", str(mp)], capture_output=True, check=False)
    assert mp.is_dir()
    assert sorted(p.name for p in work.iterdir()) == [name]  # no PWNED file anywhere


def test_dry_run_runs_nothing(tmp_path):
    mp = tmp_path / "never"
    result = nfs.mount_nfs("10.9.9.9:/data", str(mp), "nfsvers=3", dry_run=True)
    assert result.dry_run and not mp.exists()
    assert result.shell_lines[-1].endswith(f"mount -t nfs -o nfsvers=3 10.9.9.9:/data {shlex.quote(str(mp))}")


# a missing mount.nfs, really missing ---------------------------------------------------------

def test_missing_mount_nfs_is_reported_with_how_to_install(tmp_path):
    _root()
    unshare = need_binary("unshare", "util-linux")
    helper = nfs.find_tool("mount.nfs")
    need(helper is not None, "mount.nfs must exist to be hidden")
    empty = tmp_path / "not-a-helper"
    empty.write_text("")
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    code = (
        "import sys\n"
        "from pai_magic.core.errors import MountError\n"
        "from pai_magic.core.storage import nfs\n"
        "try:\n"
        f"    nfs.mount_nfs('127.0.0.1:/data', {str(tmp_path / 'mp')!r})\n"
        "except MountError as e:\n"
        "    print('MountError:', e)\n"
    )
    # In a private mount namespace an empty, non-executable file covers every mount.nfs.
    mount = shutil.which("mount") or "/bin/mount"
    hide = "; ".join(f"{mount} --bind {shlex.quote(str(empty))} {shlex.quote(p)}"
                     for p in sorted({os.path.realpath(helper)} | {os.path.join(d, "mount.nfs") for d in nfs.SBIN_DIRS
                                                                   if os.path.exists(os.path.join(d, "mount.nfs"))}))
    script = f"set -e; {hide}; exec {shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    env = dict(os.environ, PATH=str(bare_path), PYTHONPATH=str(REPO))
    proc = subprocess.run([unshare, "-m", "--propagation", "private", "/bin/sh", "-c", script],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert out.startswith("MountError: mount.nfs is not installed"), out
    assert "apt-get install nfs-common" in out and "--via-job" in out


# sudo that wants a password, as a real unprivileged user --------------------------------------

def _world_readable_copy_of_the_package() -> Path:
    base = Path(tempfile.mkdtemp(prefix="pai-storage-nobody-"))
    shutil.copytree(REPO / "pai_magic", base / "pai_magic", ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    for root, dirs, files in os.walk(base):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return base


def test_sudo_that_wants_a_password_is_reported_without_hanging():
    _root()
    need_binary("sudo", "sudo")
    setpriv = need_binary("setpriv", "util-linux")
    need(os.path.exists("/usr/bin/python3"), "a system python3 that the nobody user can run")
    base = _world_readable_copy_of_the_package()
    try:
        mp = base / "mp"
        mp.mkdir()
        os.chmod(mp, 0o777)
        cfg = base / "cfg"
        cfg.mkdir()
        os.chmod(cfg, 0o777)
        code = (
            "import os\n"
            "from pai_magic.core.errors import MountError\n"
            "from pai_magic.core.storage import nfs\n"
            "print('uid', os.geteuid())\n"
            f"print('dry', nfs.mount_nfs('127.0.0.1:/data', {str(mp)!r}, dry_run=True).shell_lines)\n"
            "try:\n"
            f"    nfs.mount_nfs('127.0.0.1:/data', {str(mp)!r}, timeout=20)\n"
            "except MountError as e:\n"
            "    print('MountError:', e)\n"
        )
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(base), "PAI_MAGIC_CONFIG_DIR": str(cfg), "HOME": str(base)}
        proc = subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3",
                               "-c", code], capture_output=True, text=True, timeout=60, env=env,
                              stdin=subprocess.DEVNULL, cwd=str(base))
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] != "uid 0"
        assert f"sudo -n mount -t nfs -o nfsvers=4.1 127.0.0.1:/data {mp}" in lines[1]
        assert lines[2].startswith("MountError: sudo needs a password to mount and pai_magic never prompts"), lines
        assert "--via-job" in lines[2]
    finally:
        shutil.rmtree(base, ignore_errors=True)


# already mounted: detected from the kernel's table -------------------------------------------

def test_an_already_mounted_target_is_detected_and_left_alone(tmp_path, cleanup_mounts):
    _root()
    mp = tmp_path / "share with space"
    mp.mkdir()
    # tmpfs takes any source name: give it the NFS source the user asks for.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "127.0.0.1:/export", str(mp)], check=True)
    cleanup_mounts.append(str(mp))
    (mp / "marker").write_text("still here")
    result = nfs.mount_nfs("127.0.0.1:/export/", str(mp))
    assert result.already and result.commands == [] and "already mounted" in result.message
    assert (mp / "marker").read_text() == "still here"


def test_a_different_share_on_the_target_is_refused(tmp_path, cleanup_mounts):
    _root()
    src = tmp_path / "src"
    src.mkdir()
    mp = tmp_path / "busy"
    mp.mkdir()
    subprocess.run(["mount", "--bind", str(src), str(mp)], check=True)
    cleanup_mounts.append(str(mp))
    with pytest.raises(MountError) as info:
        nfs.mount_nfs("127.0.0.1:/export", str(mp))
    assert "already has" in str(info.value) and "unmount it first" in str(info.value)


def test_umount_unmounts_verifies_and_forgets(tmp_path, cleanup_mounts):
    _root()
    mp = tmp_path / "m"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "127.0.0.1:/export", str(mp)], check=True)
    cleanup_mounts.append(str(mp))
    state.add_record(state.MountRecord(mountpoint=str(mp), kind="nfs", source="127.0.0.1:/export"))
    assert any(r.mountpoint == str(mp) and r.mounted for r in list_mounts())
    result = nfs.umount(str(mp))
    assert not result.already and find_mount(mp) is None and state.get_record(str(mp)) is None
    again = nfs.umount(str(mp))
    assert again.already and "Nothing is mounted" in again.message
