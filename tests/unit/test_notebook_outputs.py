"""The parts of bringing a run's files back that need no task: where a name may land, what the
line says, and which names of a listing count as the notebook's output (a real SFTP listing is
exercised in tests/notebook/test_run_outputs.py)."""
from __future__ import annotations

import os
import stat
from types import SimpleNamespace

from pai_magic.core.notebook.outputs import OutputFiles, _inside, written_files
from pai_magic.core.notebook.run import OWN_FILES


def test_a_name_lands_inside_the_output_folder_or_nowhere(tmp_path):
    dest = tmp_path / "run"
    dest.mkdir()
    assert _inside(dest, "plots/loss.png") == dest / "plots" / "loss.png"
    for bad in ("../escape.txt", "a/../../b", "", "/etc/passwd"):
        assert _inside(dest, bad) is None, bad
    os.symlink(tmp_path, dest / "out")  # a link already in the folder must not lead a file elsewhere
    assert _inside(dest, "out/x.txt") is None


def test_the_line_names_what_came_back_what_stayed_and_what_failed():
    files = OutputFiles(fetched=["a.png", "b.csv", "c.txt", "d.txt"], left=["model.pt"], left_bytes=2_500_000_000,
                        limit_mb=1024, failed=["e.bin"], failure="No space left on device")
    assert files.line() == (
        "4 files the notebook wrote came back beside it: a.png, b.csv, c.txt and 1 more; "
        "1 file (2500.0 MB) stayed in the task, over the limit of 1024 MB a run: model.pt; raise the limit "
        "(--outputs-mb), or write such files to a storage the job mounts; "
        "1 file could not be brought back (No space left on device): e.bin")
    assert OutputFiles().line() == ""


class _Listing:
    """An SFTP client's listdir_attr over a dict tree: {name: bytes | dict | "link"}."""

    def __init__(self, tree):
        self.tree = tree

    def listdir_attr(self, path):
        node = self.tree
        for part in [p for p in path.split("/") if p][1:]:
            node = node[part]
        out = []
        for name, value in node.items():
            mode = stat.S_IFDIR if isinstance(value, dict) else stat.S_IFLNK if value == "link" else stat.S_IFREG
            out.append(SimpleNamespace(filename=name, st_mode=mode | 0o644,
                                       st_size=len(value) if isinstance(value, bytes) else 0, st_mtime=100))
        return out


def test_only_new_or_changed_files_count_never_the_runners_or_links_or_caches():
    tree = {"input.ipynb": b"{}", "status.json": b"{}", "status.json.12.tmp": b"{", ".inputs.json": b"{}",
            "data.csv": b"x\n7\n", "notes.txt": b"old\nnew\n", "link": "link",
            "__pycache__": {"m.pyc": b"x"}, "plots": {"loss.png": b"png", "executed.ipynb": b"{}"}}
    inputs = {"data.csv": [4, 100_000_000_000], "notes.txt": [4, 100_000_000_000]}
    found = written_files(_Listing(tree), "/task", inputs, OWN_FILES)
    # a runner's name deeper down is the notebook's own file
    assert found == [("notes.txt", 8), ("plots/executed.ipynb", 2), ("plots/loss.png", 3)]
