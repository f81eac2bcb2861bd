"""Storages of the real embedded backend reached without root: sshfs through a job (a helper
job started and stopped by pai_magic, or the user's own job), and ``--sync`` uploads that a
job reads, whose results come back, and whose second run moves no bytes."""
from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from pai_magic.core.storage import manage, state
from pai_magic.core.storage.mounttable import find_mount
from tests.fixtures.services import need, need_binary


@pytest.fixture
def fuse_ok():
    need_binary("sshfs", "sshfs")
    need_binary("fusermount3", "fuse3")
    need(os.path.exists("/dev/fuse"), "FUSE needs /dev/fuse")


@pytest.fixture
def client(fresh_local_backend, monkeypatch):
    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import load_profile

    monkeypatch.setenv("PAI_URL", fresh_local_backend.url)
    monkeypatch.setenv("PAI_USER", fresh_local_backend.user)
    monkeypatch.setenv("PAI_TOKEN", fresh_local_backend.token)
    c = PaiClient(load_profile())
    c.backend = fresh_local_backend  # for the test's own checks of the storage folder
    yield c
    c.close()


@pytest.fixture
def unmount_after():
    points: list[str] = []
    yield points
    for mp in points:
        if find_mount(mp) is not None:
            subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True, check=False)


def _storage_dir(client, name: str = "default") -> Path:
    return Path(client.backend.data_dir) / "storages" / name


def _final_state(client, job: str, timeout: float = 60.0) -> str:
    from pai_magic.core.jobs import wait_for

    user, _, name = job.partition("~")
    return wait_for(client, name, user=user, timeout=timeout, poll=0.5).state


def test_a_storage_mounted_through_a_helper_job_both_ways_then_unmounted_and_stopped(client, fuse_ok, tmp_path,
                                                                                     unmount_after):
    from pai_magic.core.ssh.known_hosts import KnownHosts

    mp = tmp_path / "cluster data"
    unmount_after.append(str(mp))
    statuses: list[str] = []
    outcome = manage.mount(str(mp), client=client, storage="default", rootless=True, mkdir_personal=True,
                           on_status=statuses.append)
    result = outcome.result
    assert result.kind == "sshfs" and result.job and result.commands[-1][0] == "sshfs"
    assert any("submitted helper job" in s for s in statuses)
    entry = find_mount(mp)
    assert entry is not None and entry.is_sshfs
    helper = result.job
    assert client.get_job(helper.split("~")[1]).state == "RUNNING"

    # the personal folder, 0700, exists on the cluster side
    personal = _storage_dir(client) / client.user
    assert outcome.personal == str(mp / client.user)
    assert stat.S_IMODE(personal.stat().st_mode) == 0o700
    # written here, read there; written there, read here
    (mp / client.user / "from_notebook.txt").write_text("written through sshfs")
    assert (personal / "from_notebook.txt").read_text() == "written through sshfs"
    (personal / "from_cluster.txt").write_text("written by the cluster side")
    assert (mp / client.user / "from_cluster.txt").read_text() == "written by the cluster side"
    listed = [r for r in manage.mounts() if r.mountpoint == str(mp)]
    assert listed and listed[0].by_pai_magic and listed[0].job == helper and listed[0].fstype == "fuse.sshfs"
    assert any(a.startswith(f"{helper}.".lower()) for a in KnownHosts().aliases())

    again = manage.mount(str(mp), client=client, storage="default", rootless=True)
    assert again.result.already  # mounted already: nothing new, no second helper job

    done = manage.umount(str(mp), client=client)
    assert done.commands[0][:2] == ["fusermount3", "-u"] and f"Stopped helper job {helper}" in done.message
    assert find_mount(mp) is None and state.get_record(str(mp)) is None
    assert _final_state(client, helper) == "STOPPED"
    assert not any(a.startswith(f"{helper}.".lower()) for a in KnownHosts().aliases())


def test_mount_through_the_users_own_job_leaves_that_job_running(client, fuse_ok, tmp_path, unmount_after):
    from pai_magic.core.jobs import submit_job
    from pai_magic.core.protocol.build import JobSpec, build_protocol
    from pai_magic.core.storage.rootless import resolve_key

    key = resolve_key(client, None)
    job = build_protocol(JobSpec(name="mine", image="ubuntu:22.04", commands=["echo ready"], keep_alive=True,
                                 storages=[("default", "/mnt/default")], ssh_public_key=key.public_line))
    name = submit_job(client, job)
    deadline = time.monotonic() + 60
    while client.get_job(name).state != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.3)
    (_storage_dir(client) / "shared.txt").write_text("team data")
    mp = tmp_path / "via-own-job"
    unmount_after.append(str(mp))
    try:
        outcome = manage.mount(str(mp), client=client, via_job=name)
        assert outcome.result.job.endswith(f"~{name}")
        assert (mp / "shared.txt").read_text() == "team data"
        done = manage.umount(str(mp), client=client)
        assert "Stopped" not in done.message and find_mount(mp) is None
        assert client.get_job(name).state == "RUNNING"  # not ours to stop
    finally:
        client.stop(name)


def test_sync_job_reads_its_code_writes_a_result_that_comes_back_and_a_resync_moves_nothing(client, tmp_path):
    from pai_magic.core.jobs import submit_job, wait_for
    from pai_magic.core.protocol.build import JobSpec, build_protocol
    from pai_magic.core.storage.jobsync import apply_sync, pull_from_storage

    code = tmp_path / "notebook code"
    (code / "pkg").mkdir(parents=True)
    (code / "data.txt").write_text("three\nlines\nhere\n")
    (code / "pkg" / "blob.bin").write_bytes(os.urandom(700_000))
    (code / "run.sh").write_text("wc -l < data.txt > result.txt\nwc -c < pkg/blob.bin >> result.txt\n")
    job = build_protocol(JobSpec(name="synced", image="ubuntu:22.04", commands=["sh run.sh"]))
    progress = []
    job, synced = apply_sync(client, job, f"{code}:default", on_progress=progress.append)
    assert synced.result.files_sent == 3 and synced.result.bytes_sent > 700_000
    assert "helper job" in synced.how and progress[-1].files_done == 3
    assert synced.rel == f"{client.user}/notebook code"
    on_cluster = _storage_dir(client) / client.user / "notebook code"
    assert (on_cluster / "pkg" / "blob.bin").read_bytes() == (code / "pkg" / "blob.bin").read_bytes()

    name = submit_job(client, job)
    final = wait_for(client, name, timeout=90, poll=0.3)
    assert final.state == "SUCCEEDED", final.diagnostics
    back = tmp_path / "results"
    pulled = pull_from_storage(client, "default", synced.rel, back, only=["result.txt"])
    assert pulled.sent == ["result.txt"]
    assert (back / "result.txt").read_text().split() == ["3", "700000"]

    job2 = build_protocol(JobSpec(name="synced", image="ubuntu:22.04", commands=["sh run.sh"]))
    _job2, resync = apply_sync(client, job2, f"{code}:default")
    assert resync.result.files_sent == 0 and resync.result.bytes_sent == 0 and resync.result.unchanged == 3
    assert "no bytes moved" in resync.message


def test_sync_over_a_mounted_share_copies_and_then_moves_nothing(client, fuse_ok, tmp_path, unmount_after):
    from pai_magic.core.storage.jobsync import sync_for_job

    code = tmp_path / "proj"
    code.mkdir()
    (code / "a.py").write_text("print(1)\n")
    mp = tmp_path / "share"
    unmount_after.append(str(mp))
    manage.mount(str(mp), client=client, storage="default", rootless=True)
    try:
        first = sync_for_job(client, f"{code}:default")
        assert first.how.startswith("mounted at") and first.result.files_sent == 1
        assert (_storage_dir(client) / client.user / "proj" / "a.py").read_text() == "print(1)\n"
        second = sync_for_job(client, f"{code}:default")
        assert second.result.bytes_sent == 0 and second.result.files_sent == 0
    finally:
        manage.umount(str(mp), client=client)


def test_cli_submit_with_sync_runs_in_the_synced_folder(client, tmp_path, capsys):
    from pai_magic.cli import main

    code = tmp_path / "cli code"
    code.mkdir()
    (code / "hello.txt").write_text("hello from the notebook\n")
    rc = main(["submit", "--image", "ubuntu:22.04", "--sync", f"{code}:default", "--wait", "--timeout", "90",
               "--", "sh", "-c", "cat hello.txt > seen.txt && pwd > where.txt"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "sync: 1/1 files" in out.err and "PAI_SYNC_DIR" in out.err
    folder = _storage_dir(client) / client.user / "cli code"
    assert (folder / "seen.txt").read_text() == "hello from the notebook\n"
    assert Path((folder / "where.txt").read_text().strip()).resolve() == folder.resolve()
