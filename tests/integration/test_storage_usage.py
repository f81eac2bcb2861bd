"""Space and the personal folder on a real filesystem of known size (a tmpfs we mount)."""
from __future__ import annotations

import os
import stat
import subprocess

import pytest

from pai_magic.core.errors import InvalidInputError, NotFoundError
from pai_magic.core.storage.usage import personal_folder, share_usage
from tests.fixtures.services import need


@pytest.fixture
def small_share(tmp_path):
    need(os.geteuid() == 0, "mounting a tmpfs of known size needs root")
    mp = tmp_path / "share"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "usage-test", str(mp)], check=True)
    yield mp
    subprocess.run(["umount", "-l", str(mp)], check=False)


def test_usage_reports_space_and_warns_above_the_threshold(small_share):
    quiet = share_usage(small_share, warn_above=0.5)
    assert quiet.total == 4 * 1024 * 1024 and not quiet.warn
    assert "free of 4.0 MiB" in quiet.message
    (small_share / "big").write_bytes(os.urandom(3 * 1024 * 1024))
    full = share_usage(small_share, warn_above=0.5)
    assert full.warn and full.fraction_used >= 0.74
    assert "please delete" in full.message and full.free < quiet.free


def test_usage_of_a_missing_path_and_bad_threshold(tmp_path):
    with pytest.raises(NotFoundError):
        share_usage(tmp_path / "nope")
    with pytest.raises(InvalidInputError):
        share_usage(tmp_path, warn_above=90)


def test_personal_folder_is_0700_whatever_the_umask_and_kept_when_it_exists(small_share):
    old = os.umask(0)
    try:
        folder = personal_folder(small_share, "alice")
    finally:
        os.umask(old)
    assert folder == small_share / "alice"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    os.chmod(folder, 0o750)  # opened to the team on purpose: left alone
    assert personal_folder(small_share, "alice") == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    team = personal_folder(small_share, "bob", mode=0o750)
    assert stat.S_IMODE(team.stat().st_mode) == 0o750


@pytest.mark.parametrize("user", ["", "..", "a/b", "x y"])
def test_personal_folder_refuses_names_that_are_not_a_user(tmp_path, user):
    with pytest.raises(InvalidInputError):
        personal_folder(tmp_path, user)
