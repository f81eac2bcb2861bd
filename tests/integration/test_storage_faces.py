"""The storage faces over the real embedded backend: ``pai-magic storage|mount|umount`` and
``%pai_storage``, ``%pai_mount``, ``%pai_umount`` (thin: parse, one core call, render)."""
from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from pai_magic.cli import main
from pai_magic.core.storage.mounttable import find_mount


@pytest.fixture
def cluster_env(local_backend, monkeypatch):
    monkeypatch.setenv("PAI_URL", local_backend.url)
    monkeypatch.setenv("PAI_USER", local_backend.user)
    monkeypatch.setenv("PAI_TOKEN", local_backend.token)
    return local_backend


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_storage_lists_each_storage_with_its_mount_command(cluster_env, capsys):
    code, out, err = _run(capsys, "storage", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    default = rows["default"]
    assert default["type"] == "nfs" and default["server"] == "127.0.0.1" and default["default"] is True
    assert shlex.split(default["mount_command"]) == ["sudo", "mount", "-t", "nfs", "-o", "nfsvers=4.1",
                                                     f"127.0.0.1:{default['path']}", "/mnt/default"]
    code, text, _ = _run(capsys, "storage", "default")
    assert code == 0 and "default  [nfs, default]" in text and "--storage default" in text


def test_cli_storage_unknown_name_is_one_line_exit_2(cluster_env, capsys):
    code, out, err = _run(capsys, "storage", "no-such-storage")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "no-such-storage" in err


def test_cli_storage_check_reports_an_export_the_server_does_not_have(cluster_env, nfs_server, capsys):
    # The embedded backend says 127.0.0.1:<its folder>; the NFS server there exports another folder.
    code, out, err = _run(capsys, "storage", "default", "--check", "--json")
    assert code == 1, err
    check = json.loads(out)[0]["check"]
    assert not check["ok"] and "does not export" in check["message"] and str(nfs_server.export_dir) in check["message"]


def test_cli_mount_dry_run_prints_quoted_commands_and_runs_nothing(capsys, tmp_path):
    mp = tmp_path / "my data; rm -rf $HOME"
    code, out, err = _run(capsys, "mount", "10.0.0.9:/data", str(mp), "-o", "nfsvers=3", "--dry-run")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert shlex.split(lines[0])[-3:] == ["mkdir", "-p", str(mp)]
    from pai_magic.core.storage.nfs import sudo_prefix
    assert shlex.split(lines[1]) == sudo_prefix() + ["mount", "-t", "nfs", "-o", "nfsvers=3", "10.0.0.9:/data", str(mp)]
    assert not mp.exists()


def test_cli_mount_lists_and_umount_unmounts(capsys, tmp_path):
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root to make a real mount")
    mp = tmp_path / "m"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "127.0.0.1:/export", str(mp)], check=True)
    try:
        from pai_magic.core.storage import state
        state.add_record(state.MountRecord(mountpoint=str(mp), kind="nfs", source="127.0.0.1:/export"))
        code, out, _ = _run(capsys, "mount", "--json")
        assert code == 0 and any(r["mountpoint"] == str(mp) and r["by_pai_magic"] for r in json.loads(out))
        code, out, err = _run(capsys, "umount", str(mp))
        assert code == 0, err
        assert "Unmounted" in out and find_mount(mp) is None
        code, out, _ = _run(capsys, "umount", str(mp))
        assert code == 0 and "Nothing is mounted" in out
    finally:
        subprocess.run(["umount", "-l", str(mp)], capture_output=True, check=False)


def test_cli_mount_bad_source_is_one_line(capsys, tmp_path):
    code, out, err = _run(capsys, "mount", "not-a-share", str(tmp_path / "x"))
    assert code == 2 and "SERVER:/PATH" in err and len(err.strip().splitlines()) == 1


# -- magics ------------------------------------------------------------------------------------

@pytest.fixture
def ip(cluster_env):
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "pai_magic")
    yield shell
    shell.run_line_magic("unload_ext", "pai_magic")


def test_magic_storage_and_dry_run_mount(ip, tmp_path):
    view = ip.run_line_magic("pai_storage", "default")
    assert "default  [nfs, default]" in view.text and "sudo mount -t nfs" in view.text
    mp = tmp_path / "a b"
    dry = ip.run_line_magic("pai_mount", f"127.0.0.1:/export {shlex.quote(str(mp))} --dry-run")
    assert f"mount -t nfs -o nfsvers=4.1 127.0.0.1:/export {shlex.quote(str(mp))}" in dry.text
    assert not mp.exists()


def test_magic_errors_are_one_line_usage_errors(ip, tmp_path):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError) as info:
        ip.run_line_magic("pai_storage", "nope")
    assert "nope" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UsageError):
        ip.run_line_magic("pai_mount", "a b c d")
    with pytest.raises(UsageError):
        ip.run_line_magic("pai_mount", "--rootless --kernel --storage default /tmp/x")


def test_cli_submit_sync_dry_run_points_the_job_at_the_users_folder(cluster_env, capsys, tmp_path):
    import yaml

    code_dir = tmp_path / "my project"
    code_dir.mkdir()
    (code_dir / "train.py").write_text("print('hi')\n")
    code, out, err = _run(capsys, "submit", "--image", "python:3.11", "--sync", f"{code_dir}:default", "--dry-run",
                          "--", "python", "train.py")
    assert code == 0, err
    job = yaml.safe_load(out)
    assert job["extras"]["storages"] == [{"name": "default", "mountPath": "/mnt/default"}]
    role = next(iter(job["taskRoles"].values()))
    first = role["commands"][0]
    assert first == (f'export PAI_SYNC_DIR="${{PAI_STORAGE_DEFAULT_PATH:-/mnt/default}}"/'
                     f"{shlex.quote(cluster_env.user + '/my project')} && cd \"$PAI_SYNC_DIR\"")
    assert role["commands"][1] == "python train.py"
    assert "Dry run: nothing uploaded" in err and "/mnt/default/" in err


def test_magic_job_sync_dry_run(ip, tmp_path):
    code_dir = tmp_path / "proj"
    code_dir.mkdir()
    view = ip.run_cell_magic("pai_job", f"--sync {code_dir} --dry-run", "python run.py\n")
    assert "PAI_SYNC_DIR" in view.text and "PAI_STORAGE_DEFAULT_PATH" in view.text
