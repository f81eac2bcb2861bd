"""Folder sync to a folder target (what a mounted share is): only changed files move, files
deleted locally go, files a job wrote stay, nothing half-written is ever visible."""
from __future__ import annotations

import os
import time

import pytest

from pai_magic.core.errors import InvalidInputError, NotFoundError
from pai_magic.core.storage.sync import (MANIFEST, LocalFolderTarget, parse_sync_spec, sync_folder)


def _tree(root, files):
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


@pytest.fixture
def code(tmp_path):
    src = tmp_path / "code"
    _tree(src, {"train.py": b"print('hi')\n", "pkg/model.py": b"x = 1\n", "data/big.bin": os.urandom(3_000_000),
                "__pycache__/junk.pyc": b"junk", ".git/HEAD": b"ref", "pkg/.ipynb_checkpoints/a.py": b"old"})
    return src


def test_second_sync_of_an_unchanged_folder_moves_no_bytes(code, tmp_path):
    share = tmp_path / "share" / "alice" / "code"
    progress = []
    first = sync_folder(code, LocalFolderTarget(share), on_progress=progress.append)
    assert first.files_total == 3 and first.files_sent == 3
    assert first.bytes_sent == 3_000_000 + len(b"print('hi')\n") + len(b"x = 1\n")
    assert (share / "data" / "big.bin").read_bytes() == (code / "data" / "big.bin").read_bytes()
    assert not (share / "__pycache__").exists() and not (share / ".git").exists()
    assert progress and progress[-1].files_done == 3 and progress[-1].bytes_done == first.bytes_sent
    manifest_mtime = (share / MANIFEST).stat().st_mtime_ns

    second = sync_folder(code, LocalFolderTarget(share))
    assert second.files_sent == 0 and second.bytes_sent == 0 and second.unchanged == 3
    assert "no bytes moved" in second.message
    assert (share / MANIFEST).stat().st_mtime_ns == manifest_mtime  # not even the manifest rewritten


def test_changed_files_are_sent_deleted_ones_removed_and_job_outputs_kept(code, tmp_path):
    share = tmp_path / "share"
    sync_folder(code, LocalFolderTarget(share))
    (share / "results.txt").write_text("written by the job")
    (code / "pkg" / "model.py").write_bytes(b"x = 22\n")  # same mtime second is possible: force a new one
    later = time.time() + 5
    os.utime(code / "pkg" / "model.py", (later, later))
    (code / "train.py").unlink()
    third = sync_folder(code, LocalFolderTarget(share))
    assert third.sent == ["pkg/model.py"] and third.bytes_sent == 7
    assert third.files_deleted == 1 and not (share / "train.py").exists()
    assert (share / "results.txt").read_text() == "written by the job"
    assert (share / "pkg" / "model.py").read_bytes() == b"x = 22\n"
    assert not [p for p in share.rglob("*.tmp")]


def test_a_remote_copy_changed_by_someone_else_is_resent(code, tmp_path):
    share = tmp_path / "share"
    sync_folder(code, LocalFolderTarget(share))
    (share / "train.py").write_text("tampered, longer than before")
    again = sync_folder(code, LocalFolderTarget(share))
    assert again.sent == ["train.py"] and (share / "train.py").read_bytes() == b"print('hi')\n"


def test_sync_of_a_missing_folder_says_what_to_give(tmp_path):
    with pytest.raises(NotFoundError):
        sync_folder(tmp_path / "nope", LocalFolderTarget(tmp_path / "dst"))


@pytest.mark.parametrize("spec,expected", [
    (".", (".", "default")), ("code:team", ("code", "team")), ("./a:b/c", ("./a:b/c", "default")),
    ("/abs/dir:data", ("/abs/dir", "data")),
])
def test_parse_sync_spec(spec, expected):
    assert parse_sync_spec(spec, "default") == expected


def test_parse_sync_spec_empty():
    with pytest.raises(InvalidInputError):
        parse_sync_spec("", "default")
