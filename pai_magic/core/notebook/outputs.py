"""The files a notebook run wrote beside itself in the task, brought back with the notebook.

A notebook saves plots, tables and checkpoints beside itself, and the task's disk is gone
once the job ends. jupyter-scheduler keeps such files of its local runs beside the executed
notebook; a run on OpenPAI does the same. Before the kernel starts, the runner lists the run
folder (``.inputs.json``: the notebook, the files sent with it). At the end (succeeded,
failed, stopped, timed out), every regular file of that folder that is new or changed since,
and is not the runner's own, comes back into the run's output folder at the same relative
path: a plot the notebook shows as ``plots/loss.png`` is there beside the executed copy.

A limit (default 1024 MB a run) keeps a 50 GB checkpoint from filling the laptop: files that
do not fit stay in the task, and the result names them and says what to do (a larger limit,
or writing them to a storage the job mounts). Links are not followed, and a name that would
land outside the output folder is skipped: the task's folder is read, never trusted.
"""
from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from pai_magic.core.notebook import task_runner

DEFAULT_LIMIT_MB = 1024.0
MAX_FILES = 5000  # a run folder with more (a dataset unpacked in place) brings back the first ones
PROGRESS_EVERY = 1.0  # seconds between two progress lines while one big file comes back


@dataclass
class OutputFiles:
    """What came back (relative paths), and what stayed in the task."""

    fetched: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    left_bytes: int = 0
    limit_mb: float = DEFAULT_LIMIT_MB
    failed: list[str] = field(default_factory=list)  # could not be read or written here
    failure: str = ""  # the first reason
    capped: bool = False  # the folder held MAX_FILES new files or more: the rest were not looked at

    def line(self) -> str:
        """One line for a face; empty when the notebook wrote nothing."""
        parts = []
        if self.fetched:
            parts.append(f"{_count(self.fetched)} the notebook wrote came back beside it: {_names(self.fetched)}")
        if self.left:
            parts.append(f"{_count(self.left)} ({self.left_bytes / 1e6:.1f} MB) stayed in the task, over the "
                         f"limit of {self.limit_mb:g} MB a run: {_names(self.left)}; raise the limit "
                         "(--outputs-mb), or write such files to a storage the job mounts")
        if self.failed:
            parts.append(f"{_count(self.failed)} could not be brought back ({self.failure}): {_names(self.failed)}")
        if self.capped:
            parts.append(f"only the first {MAX_FILES} new files of the task's folder were looked at; keep "
                         "many small files in one archive, or on a storage the job mounts")
        return "; ".join(parts)


def _count(names: list[str]) -> str:
    return f"{len(names)} file" + ("" if len(names) == 1 else "s")


def _names(names: list[str], shown: int = 3) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _runner_temp(name: str, own: frozenset[str]) -> bool:
    """``status.json.<pid>.tmp``: a write of the runner caught half-way."""
    return name.endswith(".tmp") and any(name.startswith(f"{mine}.") for mine in own)


def written_files(sftp: Any, root: str, inputs: dict[str, list[int]], own: frozenset[str],
                  max_files: int = MAX_FILES) -> list[tuple[str, int]]:
    """``(relative path, size)`` of the files under ``root`` that are not in ``inputs`` as they
    were; ``own``: the runner's files at the top of ``root``, never the notebook's output."""
    found: list[tuple[str, int]] = []
    todo = [""]
    while todo and len(found) < max_files:
        rel_dir = todo.pop(0)
        try:
            entries = sftp.listdir_attr(f"{root}/{rel_dir}" if rel_dir else root)
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.filename):
            name = entry.filename
            if name in ("", ".", "..") or "/" in name:
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            mode = entry.st_mode or 0
            if stat.S_ISDIR(mode):
                if name not in task_runner.SKIP_DIRS:
                    todo.append(rel)
                continue
            if not stat.S_ISREG(mode) or (not rel_dir and (name in own or _runner_temp(name, own))):
                continue
            before = inputs.get(rel)
            size = int(entry.st_size or 0)
            # SFTP gives whole seconds: a file sent in and rewritten within the same second with the
            # same size reads as unchanged, which is the rare price of not hashing inputs
            if before is not None and before[0] == size and int(before[1]) // 1_000_000_000 == int(entry.st_mtime or 0):
                continue
            found.append((rel, size))
            if len(found) >= max_files:
                break
    return found


def read_inputs(sftp: Any, root: str) -> dict[str, list[int]] | None:
    """The runner's list of the folder before the kernel started; None when it never wrote one
    (the run ended before its kernel started: nothing of the notebook's to bring back)."""
    try:
        with sftp.open(f"{root}/{task_runner.INPUTS}", "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _link_up(sftp: Any) -> bool:
    chan = sftp.get_channel()
    return chan is not None and not chan.closed and chan.get_transport().is_active()


def _inside(dest: Path, rel: str) -> Path | None:
    parts = PurePosixPath(rel).parts
    if not parts or any(p in ("", ".", "..") for p in parts):
        return None
    target = dest.joinpath(*parts)
    try:
        target.resolve().relative_to(dest.resolve())
    except ValueError:
        return None  # a link already in the output folder would lead elsewhere
    return target


def fetch_outputs(sftp: Any, root: str, dest: Path, *, own: frozenset[str], limit_mb: float = DEFAULT_LIMIT_MB,
                  keep: frozenset[str] = frozenset(),
                  on_progress: Callable[[str], Any] | None = None) -> OutputFiles:
    """Bring the run's new files from ``root`` (the task) into ``dest``, within ``limit_mb``.

    ``own``: the runner's files (see :func:`written_files`). ``keep``: local names in ``dest``
    a file from the task must never replace (the executed notebook and its HTML). Files come in
    name order; one that would pass the limit stays. A file that cannot be read or written is
    named with the reason; the SSH link failing is raised, as every other SFTP call's is.
    """
    result = OutputFiles(limit_mb=limit_mb)
    if limit_mb <= 0:
        return result
    inputs = read_inputs(sftp, root)
    if inputs is None:
        return result
    budget = int(limit_mb * 1e6)
    found = written_files(sftp, root, inputs, own)
    result.capped = len(found) >= MAX_FILES
    files = [(rel, size) for rel, size in found if rel not in keep]
    for n, (rel, size) in enumerate(files, 1):
        target = _inside(dest, rel)
        if target is None:
            continue
        if size > budget:
            result.left.append(rel)
            result.left_bytes += size
            continue
        shown = [0.0]

        def step(done: int, total: int, rel: str = rel, n: int = n) -> None:
            now = time.monotonic()
            if on_progress is not None and now - shown[0] >= PROGRESS_EVERY:
                shown[0] = now
                on_progress(f"file {n} of {len(files)}: {rel} ({done / 1e6:.1f} of {max(total, size) / 1e6:.1f} MB)")

        tmp = target.with_name(f".{target.name}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                sftp.getfo(f"{root}/{rel}", fh, callback=step)
            os.replace(tmp, target)
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            if not _link_up(sftp):
                raise  # the link, not the file: the caller reconnects or gives up as for any SFTP call
            result.failed.append(rel)
            result.failure = result.failure or (exc.strerror or str(exc) or type(exc).__name__)
            continue
        budget -= size
        result.fetched.append(rel)
    return result
