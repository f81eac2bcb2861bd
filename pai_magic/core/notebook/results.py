"""Where each notebook run's executed copy landed: a small index every face can read.

The CLI, the magic, the scheduler backend and the sidebar's server route run in different
processes; the run's output folder is chosen by whoever started it. So each run records
itself (by ``user~job``) in one JSON file under the pai_magic data dir, updated as the run
goes (SUBMITTED, RUNNING, then SUCCEEDED / FAILED / STOPPED / TIMEOUT). Writers take an
exclusive ``flock`` and replace the file atomically, so parallel runs of a sweep (threads or
processes) never lose each other's entries.
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pai_magic.core.paths import data_dir

INDEX_NAME = "notebook-runs.json"
MAX_ENTRIES = 2000  # oldest entries are dropped beyond this: the index is a pointer, not an archive
_LOCK = threading.Lock()


@dataclass
class NotebookResult:
    """One run: where its executed notebook is and how it ended."""

    job: str                    # user~name
    state: str                  # SUBMITTED, RUNNING, SUCCEEDED, FAILED, STOPPED, TIMEOUT
    out_dir: str
    notebook: str | None = None  # the executed copy, once (part of) it came back
    html: str | None = None
    failed_cell: dict[str, Any] | None = None  # {cell, index, ename, evalue, source}
    message: str = ""
    input: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    storage_copy: str | None = None  # "NAME:pai-nb-runs/<job>/<notebook>" when the run kept one on a storage
    warnings: list[str] = field(default_factory=list)  # e.g. parameters put at the top (no `parameters` cell)
    outputs: list[str] = field(default_factory=list)  # files the notebook wrote, back in out_dir (relative)
    outputs_message: str = ""  # what came back of them and what stayed in the task, one line
    updated: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.state in ("SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NotebookResult":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def index_path() -> Path:
    return data_dir() / INDEX_NAME


@contextmanager
def _locked() -> Iterator[Path]:
    path = index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK, open(str(path) + ".lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    runs = data.get("runs") if isinstance(data, dict) else None
    return runs if isinstance(runs, dict) else {}


def record(result: NotebookResult) -> NotebookResult:
    """Insert or replace the run's entry."""
    result.updated = time.time()
    with _locked() as path:
        runs = _read(path)
        runs[result.job] = result.as_dict()
        if len(runs) > MAX_ENTRIES:
            keep = sorted(runs.items(), key=lambda kv: float(kv[1].get("updated") or 0))[-MAX_ENTRIES:]
            runs = dict(keep)
        fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "runs": runs}, fh)
        os.replace(tmp, path)
    return result


def find_result(job_full_name: str) -> NotebookResult | None:
    """The run recorded for ``user~job`` (or a bare job name, if only one user has it)."""
    runs = _read(index_path())
    entry = runs.get(job_full_name)
    if entry is None and "~" not in job_full_name:
        matches = [v for k, v in runs.items() if k.split("~", 1)[-1] == job_full_name]
        entry = matches[0] if len(matches) == 1 else None
    return NotebookResult.from_dict(entry) if isinstance(entry, dict) else None


def all_results() -> list[NotebookResult]:
    """Every recorded run, newest first."""
    runs = [NotebookResult.from_dict(v) for v in _read(index_path()).values() if isinstance(v, dict)]
    return sorted(runs, key=lambda r: r.updated, reverse=True)
