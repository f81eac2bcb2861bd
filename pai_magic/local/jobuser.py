"""Which account a job's processes run as, so a job cannot read what is not its own.

Why: a backend started as root ran every job as root, so any job could read the backend's
token-signing key (``secret.key``), its database, the generated password and every other
user's job folders. When the backend runs as root it now runs each OpenPAI user's jobs under
that user's own unprivileged uid (``per-user``, the default), allocated once and kept in
``<data dir>/job-uids.json``; these uids have no passwd entry
(``HOME``, ``USER`` and ``LOGNAME`` are set for the task instead). The data folder becomes
traversable but not listable (0711); the key, database and credentials stay 0600 root, the
logs tree 0700 root, each task folder 0700 owned by the job's uid, storages shared (0777),
as a team storage is on a cluster.

``PAI_LOCAL_JOB_USER`` or ``--job-user`` choose: ``per-user`` (default as root), an
existing account name or uid (every job runs as it), or ``root`` (jobs run as the backend,
as before: only for a machine where nothing else matters). A backend that is not root
cannot switch users and runs jobs as itself.

Why each data folder draws its own block of uids: two root backends on one machine (two
people's demos, a test run next to a service) that both counted from one fixed base gave
their first users the same uid, so a job of one backend could read and signal the jobs of
the other. The first user of a data folder gets a uid at a random block start
(``UID_BASE + k * UID_BLOCK``, below 2**31 for tools that read uids as signed); later users
count up from the highest uid in the table, so a folder's uids stay one contiguous run.
"""
from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import sys
import threading
from pathlib import Path

from pai_magic.core.paths import write_private

log = logging.getLogger("pai_magic.local")

ENV_VAR = "PAI_LOCAL_JOB_USER"
UID_BASE = 2_000_000
#: uids per data folder; the block starts are UID_BASE + k * UID_BLOCK for k < UID_BLOCKS
UID_BLOCK = 65_536
UID_BLOCKS = 32_000
PER_USER = "per-user"


class JobUsers:
    """Maps an OpenPAI user name to the (uid, gid) its tasks run as, or None (as the backend)."""

    def __init__(self, data_dir: Path, mode: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.mode = (mode or os.environ.get(ENV_VAR) or PER_USER).strip()
        self._lock = threading.Lock()
        self._fixed: tuple[int, int] | None = None
        self.active = hasattr(os, "geteuid") and os.geteuid() == 0 and self.mode != "root"
        if self.active and self.mode != PER_USER:
            self._fixed = _account(self.mode)

    def __repr__(self) -> str:
        return f"JobUsers(mode={self.mode!r}, active={self.active})"

    def identity(self, username: str) -> tuple[int, int] | None:
        if not self.active:
            return None
        if self._fixed is not None:
            return self._fixed
        path = self.data_dir / "job-uids.json"
        with self._lock:
            try:
                table = {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
            except (OSError, ValueError, AttributeError):
                table = {}
            uid = table.get(username)
            if uid is None:
                uid = max(table.values()) + 1 if table else first_uid()
                table[username] = uid
                write_private(path, json.dumps(table))
        return uid, uid

    def describe(self) -> str:
        if not self.active:
            return "as the backend's own user"
        if self._fixed is not None:
            return f"as uid {self._fixed[0]} ({self.mode})"
        return f"as one unprivileged uid per user (from {UID_BASE}, a block per data folder)"


def first_uid() -> int:
    """The uid of a data folder's first user: the start of a block no other folder is likely
    to have drawn (1 in UID_BLOCKS)."""
    return UID_BASE + secrets.randbelow(UID_BLOCKS) * UID_BLOCK


def _account(name: str) -> tuple[int, int]:
    """(uid, gid) of an account name or a numeric uid; ValueError when it does not exist."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, ValueError):
        if name.isdigit():
            return int(name), int(name)
        raise ValueError(f"job user {name!r} does not exist: create it (useradd --system {name}) or use "
                         f"{PER_USER}") from None
    if entry.pw_uid == 0:
        raise ValueError(f"job user {name!r} is root: use 'root' to mean that on purpose")
    return entry.pw_uid, entry.pw_gid


def lock_down(data_dir: Path) -> None:
    """File modes for jobs that run under other uids: the data folder traversable only (so a
    task reaches its own folder and the storages), the backend's own files private."""
    for path, mode in ((data_dir, 0o711), (data_dir / "jobs", 0o711), (data_dir / "storages", 0o711),
                       (data_dir / "logs", 0o700)):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    for child in (data_dir / "storages").iterdir():
        if child.is_dir() and not child.is_symlink():
            os.chmod(child, 0o777)
    blocked = unpassable_parent(data_dir)
    if blocked:
        log.warning("embedded backend: %s", blocked)


def unpassable_parent(data_dir: Path) -> str:
    """Why jobs under other uids cannot reach the data folder (a parent they may not pass), or ""."""
    for parent in data_dir.resolve().parents:
        mode = os.stat(parent).st_mode
        if not mode & 0o001:
            return (f"jobs run under their own uids but cannot pass {parent} (mode {mode & 0o777:o}): storages "
                    f"($PAI_STORAGE_<NAME>_PATH) will not open; put the data dir under a folder others may pass "
                    f"(e.g. /srv) or start the backend with --job-user root")
    return ""


def python_unreachable(identity: tuple[int, int], python: str | None = None) -> str:
    """Why a job running as ``identity`` cannot run this machine's Python (the backend's own,
    the one with Jupyter in it), or "".

    Why: a Python installed under a private home (``/root/.pyenv`` with ``/root`` 0700) is out
    of reach of the per-user uids, so ``python3`` in a job finds another Python (without
    ipykernel, nbclient ...) or none, and kernels and notebook runs fail with a confusing error.
    """
    uid, gid = identity
    exe = python or sys.executable
    for path in (Path(exe), Path(os.path.realpath(exe))):
        for folder in reversed(path.parents):
            try:
                st = os.stat(folder)
            except OSError:
                continue
            if st.st_uid == uid:
                ok = st.st_mode & 0o100
            elif st.st_gid == gid:
                ok = st.st_mode & 0o010
            else:
                ok = st.st_mode & 0o001
            if not ok:
                return (f"jobs run as uid {uid} cannot use this machine's Python ({exe}: {folder} is mode "
                        f"{st.st_mode & 0o777:o}), so python3 in a job is another Python or none: start the "
                        f"backend with --job-user root, or install Python outside {folder}")
    return ""
