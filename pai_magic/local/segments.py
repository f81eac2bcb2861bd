"""What a value from a request may look like before it names a file of the embedded backend.

Why one module: a task role, an index or a job name arrives percent-decoded from a URL
(``..%2F`` is ``../`` by the time a handler sees it) or from a submitted protocol, and each
one ends up as a folder name under the data directory. Every such value is checked here,
against the rest-server's own patterns where it has them, before any path is built; and
:func:`inside` is the last line: a built path that leaves its root is refused.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

#: the rest-server's patterns (src/rest-server/src/config/v2/protocol.js, config/v2/user.js)
JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
TASK_ROLE_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
USERNAME_RE = re.compile(r"^[\w.-]+$")
#: an index or attempt number in a URL: plain decimal digits, small enough to be real
_NUMBER_RE = re.compile(r"^[0-9]{1,9}$")
NAME_MAX_DEFAULT = 255


def number(text: str) -> int | None:
    """``text`` as a task index or attempt id, or None when it is not plain small digits."""
    return int(text) if _NUMBER_RE.match(text or "") else None


def task_role(text: str) -> str | None:
    return text if TASK_ROLE_RE.match(text or "") else None


def framework(text: str) -> tuple[str, str] | None:
    """``user~job`` split in two, or None when either half could not be a real name."""
    user, sep, job = (text or "").partition("~")
    if not sep or not USERNAME_RE.match(user) or user in (".", "..") or not JOB_NAME_RE.match(job):
        return None
    return user, job


def name_max(folder: Path) -> int:
    """The longest file name the data folder's file system takes (255 on the usual ones)."""
    try:
        return int(os.pathconf(str(folder), "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX_DEFAULT


def inside(root: Path, path: Path) -> bool:
    """True when ``path`` (normalised, without following links) stays under ``root``."""
    root_text = os.path.normpath(os.path.abspath(root))
    text = os.path.normpath(os.path.abspath(path))
    return text == root_text or text.startswith(root_text.rstrip(os.sep) + os.sep)


def mount_path_error(value: object) -> str:
    """What is wrong with a storage ``mountPath`` (refused at submit), or "" when it is usable."""
    if not isinstance(value, str) or not value.strip():
        return "mountPath must be a non-empty path"
    if "\0" in value:
        return "mountPath must not contain NUL"
    if ".." in PurePosixPath(value).parts:
        return f"mountPath {value!r} must not contain '..'"
    return ""


def mount_allowed(value: str, roots: tuple[Path, ...]) -> bool:
    """May the backend create ``value`` (a checked mountPath)?

    A relative path lives in the task's own folder (the backend never resolves it against
    its own working directory); an absolute one only under a folder the person who started
    the backend configured (``--mount-root``), never the root itself, so a job cannot make
    the backend create folders or links anywhere else on the machine. Elsewhere the storage
    is still reachable through ``$PAI_STORAGE_<NAME>_PATH``.
    """
    if not PurePosixPath(value).is_absolute():
        return True
    norm = os.path.normpath(value)
    return any(inside(root, Path(norm)) and norm != os.path.normpath(root) for root in roots)
