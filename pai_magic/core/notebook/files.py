"""The files a notebook reads, sent into its job beside it (``--file``).

A run's task has only what was uploaded into its own folder, where the notebook executes:
a notebook that opens ``data.csv`` beside it found nothing there. Each named file or folder
goes where it sits relative to the notebook's folder (``conf/lr.txt`` stays ``conf/lr.txt``),
so relative paths in the notebook work unchanged; something outside that folder lands by its
name. The list is checked before anything is submitted, so a typo costs no job; what is too
big for an upload over SSH is refused with the way out (a storage).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterable

from pai_magic.core.errors import InvalidInputError, NotFoundError

MAX_BYTES = 2 << 30  # more than this belongs on a storage, not in an SSH upload per run
SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".git", "pai-runs"}
# the runner's own files in the task's folder: a file sent along may not replace them
RESERVED = {"input.ipynb", "run.json", "pai_nb_runner.py", "status.json", "executed.ipynb", ".go", ".stop", ".ack"}


def collect_files(paths: Iterable[str], notebook_dir: Path, *, exclude: Iterable[Path] = (),
                  notebook: Path | None = None) -> list[tuple[Path, str]]:
    """``[(local file, path in the task's folder)]`` for the given files and folders (recursive).

    ``exclude``: folders never sent (the run folders, which a ``--file .`` would include)."""
    base = notebook_dir.resolve()
    skip = [Path(p).resolve() for p in exclude]
    seen: dict[str, Path] = {}
    total = 0
    for given in paths:
        text = str(given).strip()
        if not text:
            raise InvalidInputError("--file needs a path, e.g. --file data.csv.")
        local = Path(text).expanduser()
        if not local.exists():
            raise NotFoundError(f"--file {text} does not exist: give a file or folder (relative to where you are), "
                                "e.g. --file data/train.csv.")
        local = local.resolve()
        try:
            root_rel = PurePosixPath(local.relative_to(base).as_posix())
        except ValueError:
            root_rel = PurePosixPath(local.name)
        items = [local] if local.is_file() else sorted(_walk(local, skip))
        for item in items:
            if notebook is not None and item == notebook.resolve():
                continue  # the notebook itself goes as input.ipynb, parameterised
            rel = root_rel if item == local else root_rel / item.relative_to(local).as_posix()
            key = rel.as_posix()
            if key in (".", "") or key in RESERVED:
                raise InvalidInputError(f"--file {text}: {key!r} is a name the run uses for itself in the task: "
                                        "rename the file or put it in a folder.")
            if key in seen and seen[key] != item:
                raise InvalidInputError(f"--file {text}: {key} would be sent twice ({seen[key]} and {item}): "
                                        "give only one of them.")
            seen[key] = item
            total += item.stat().st_size
    if total > MAX_BYTES:
        raise InvalidInputError(f"The files given with --file hold {total / 2**30:.1f} GB, more than the "
                                f"{MAX_BYTES / 2**30:.0f} GB sent with a run: put them on a storage and read them "
                                "there (--storage NAME mounts it).")
    return [(path, key) for key, path in seen.items()]


def _walk(folder: Path, skip: list[Path]) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and (here / d).resolve() not in skip]
        for name in files:
            yield here / name


#: the fix in the CLI's and the magic's words; a face with another way of sending files replaces it
SEND_FILES_FIX = "add --file PATH for each file or folder it reads"


def missing_file_hint(ename: str) -> str:
    """What to add to a failed cell's line when it could not find a file (None of the user's
    files are in the task unless sent): the fix, not only the symptom."""
    if ename not in ("FileNotFoundError", "IsADirectoryError", "NotADirectoryError"):
        return ""
    return ("; the notebook runs in the job's own folder with only the files sent along: " + SEND_FILES_FIX
            + " (or read it from a storage)")
