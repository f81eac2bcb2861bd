"""Who a root backend runs jobs as (jobuser.py): one persisted uid per user, or a named account."""
from __future__ import annotations

import os
import pwd
import stat

import pytest

from pai_magic.local.jobuser import UID_BASE, UID_BLOCK, JobUsers

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="user switching exists only for a root backend")


@root_only
def test_each_user_gets_one_uid_kept_across_restarts(tmp_path):
    users = JobUsers(tmp_path, "per-user")
    ann, bob = users.identity("ann"), users.identity("bob")
    assert ann is not None and ann[0] == ann[1] and (ann[0] - UID_BASE) % UID_BLOCK == 0 and 0 < ann[0] < 2**31
    assert bob == (ann[0] + 1, ann[0] + 1)
    again = JobUsers(tmp_path, "per-user")
    assert again.identity("bob") == bob and again.identity("cid") == (ann[0] + 2, ann[0] + 2)
    assert stat.S_IMODE((tmp_path / "job-uids.json").stat().st_mode) == 0o600


@root_only
def test_a_named_account_or_root_on_purpose(tmp_path):
    nobody = pwd.getpwnam("nobody")
    assert JobUsers(tmp_path, "nobody").identity("ann") == (nobody.pw_uid, nobody.pw_gid)
    assert JobUsers(tmp_path, "root").identity("ann") is None
    with pytest.raises(ValueError, match="does not exist"):
        JobUsers(tmp_path, "no-such-account-here")
    with pytest.raises(ValueError, match="is root"):
        JobUsers(tmp_path, "0")


def test_a_backend_that_is_not_root_never_switches(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # a fake euid: the tests run as root
    assert JobUsers(tmp_path, "per-user").identity("ann") is None


@root_only
def test_two_data_folders_do_not_share_uids(tmp_path):
    """Two root backends on one machine: each folder's first user gets its own block, so a job
    of one backend does not run under the uid of the other backend's user (it could read and
    signal that user's jobs). A clash is a 1 in 32,000 draw for the pair."""
    firsts = [JobUsers(tmp_path / f"data{i}", "per-user").identity("tester") for i in range(2)]
    assert firsts[0] != firsts[1], firsts


@root_only
def test_a_folder_from_before_the_blocks_keeps_counting_from_its_uids(tmp_path):
    (tmp_path / "job-uids.json").write_text('{"ann": %d}' % UID_BASE)
    assert JobUsers(tmp_path, "per-user").identity("bob") == (UID_BASE + 1, UID_BASE + 1)
