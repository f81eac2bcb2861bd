"""``--sync LOCAL_DIR[:STORAGE]`` for jobs: push the notebook's code to the user's folder on a
storage, point the job at it, and bring results back.

OpenPAI has no upload API, so the bytes travel the way a user would move them by hand: a
plain copy when the storage is mounted here (kernel NFS or sshfs), otherwise SFTP into a small
helper job that mounts the storage (started for the transfer and stopped after it). The job
finds its code at ``$PAI_SYNC_DIR`` and starts in it; the path works on a cluster (the
storage's mountPath) and on the embedded backend (which names the storage folder in
``PAI_STORAGE_<NAME>_PATH`` when it cannot use the mountPath).
"""
from __future__ import annotations

import contextlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.storage import state
from pai_magic.core.storage.mounttable import find_mount
from pai_magic.core.storage.rootless import HELPER_IMAGE, storage_env_name
from pai_magic.core.storage.sync import (DEFAULT_EXCLUDES, LocalFolderTarget, SftpTarget, SyncProgress, SyncResult,
                                         SyncTarget, parse_sync_spec, pull_folder, sync_folder)

SYNC_ENV = "PAI_SYNC_DIR"
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]*$")


@dataclass
class StorageAccess:
    """How this process reaches a storage right now; ``target(rel)`` is a folder inside it."""

    storage: str
    how: str
    target: Callable[[str], SyncTarget]


@dataclass
class JobSync:
    """A finished upload: which storage, where inside it, and what moved."""

    storage: str
    rel: str            # "<user>/<folder>" inside the storage
    mount_path: str     # where the job mounts the storage
    result: SyncResult
    how: str

    dry_run: bool = False

    @property
    def job_path(self) -> str:
        return f"{self.mount_path.rstrip('/')}/{self.rel}"

    @property
    def message(self) -> str:
        where = f"The job starts in {self.job_path} ($PAI_SYNC_DIR)."
        if self.dry_run:
            return f"Dry run: nothing uploaded; {self.result.local_dir} would go to storage {self.storage} at {self.rel}. {where}"
        return f"{self.result.message} ({self.how}) {where}"


def default_storage(client: Any) -> str:
    """The profile's storage, else the cluster's default one, else ``default``."""
    configured = getattr(getattr(client, "profile", None), "storage", None)
    if configured:
        return str(configured).split(":", 1)[0]
    try:
        defaults = [s.get("name") for s in client.storages(default_only=True) if isinstance(s, dict)]
    except Exception:
        defaults = []
    return next((d for d in defaults if d), "default")


def _mounted_here(storage: str) -> str | None:
    for rec in state.load_records():
        if rec.storage == storage and find_mount(rec.mountpoint) is not None:
            return rec.mountpoint
    return None


@contextlib.contextmanager
def storage_access(client: Any, storage: str, *, key_path: str | None = None, image: str = HELPER_IMAGE,
                   start_timeout: float = 300.0, on_status: Callable[[str], None] | None = None
                   ) -> Iterator[StorageAccess]:
    """A way into ``storage``: its local mount, or SFTP into a helper job stopped on exit."""
    mounted = _mounted_here(storage)
    if mounted is not None:
        yield StorageAccess(storage, f"mounted at {mounted}", lambda rel: LocalFolderTarget(Path(mounted, rel)))
        return
    from pai_magic.core.jobs import submit_job
    from pai_magic.core.storage.rootless import _stop_quietly, helper_protocol, open_storage_session, resolve_key

    key = resolve_key(client, key_path)
    vc = getattr(getattr(client, "profile", None), "virtual_cluster", "default") or "default"
    job = submit_job(client, helper_protocol(storage, key.public_line, image=image, virtual_cluster=vc))
    if on_status:
        on_status(f"submitted helper job {job} to reach storage {storage}")
    session = None
    try:
        session, _target, detail, root = open_storage_session(client, job, key, storage, f"/mnt/{storage}",
                                                              wait_timeout=start_timeout, on_status=on_status)
        sftp = session.sftp()
        yield StorageAccess(storage, f"SFTP through helper job {detail.full_name}",
                            lambda rel: SftpTarget(sftp, f"{root.rstrip('/')}/{rel}" if rel else root))
    finally:
        if session is not None:
            session.close()
        _stop_quietly(client, job)


def sync_rel(user: str, local_dir: str | Path) -> str:
    """``<user>/<folder name>``: the user's own folder on the share, as the manual asks."""
    name = Path(local_dir).expanduser().resolve().name or "code"
    if not user or "/" in user or user in (".", ".."):
        raise InvalidInputError("The cluster user is unknown: log in first (pai-magic login).")
    return f"{user}/{name}"


def sync_for_job(client: Any, spec: str, *, excludes: Iterable[str] = DEFAULT_EXCLUDES,
                 on_progress: Callable[[SyncProgress], None] | None = None,
                 on_status: Callable[[str], None] | None = None, key_path: str | None = None,
                 image: str = HELPER_IMAGE, mount_path: str | None = None) -> JobSync:
    """Upload ``LOCAL_DIR[:STORAGE]`` to ``<storage>/<user>/<folder>``; only changes move."""
    local, storage = parse_sync_spec(spec, None)
    storage = storage or default_storage(client)
    rel = sync_rel(client.user, local)
    with storage_access(client, storage, key_path=key_path, image=image, on_status=on_status) as access:
        result = sync_folder(local, access.target(rel), excludes=excludes, on_progress=on_progress)
    return JobSync(storage, rel, mount_path or f"/mnt/{storage}", result, access.how)


def sync_commands(sync: JobSync) -> list[str]:
    """The shell lines a task runs first: export ``PAI_SYNC_DIR`` and start inside it."""
    mount = sync.mount_path if _SAFE_PATH.match(sync.mount_path) else f"/mnt/{sync.storage}"
    var = storage_env_name(sync.storage)
    return [f'export {SYNC_ENV}="${{{var}:-{mount}}}"/{shlex.quote(sync.rel)} && cd "${SYNC_ENV}"']


def point_job_at_sync(job: dict[str, Any], sync: JobSync) -> dict[str, Any]:
    """Mount the storage in every task and start each task role in the synced folder."""
    from pai_magic.core.protocol.build import add_storages

    add_storages(job, [(sync.storage, sync.mount_path)])
    first = sync_commands(sync)
    for role in (job.get("taskRoles") or {}).values():
        if isinstance(role, dict):
            cmds = role.get("commands")
            cmds = list(cmds) if isinstance(cmds, list) else []
            if not cmds[:len(first)] == first:
                role["commands"] = first + cmds
    return job


def pull_from_storage(client: Any, storage: str, rel: str, local_dir: str | Path, *,
                      only: Iterable[str] | None = None, key_path: str | None = None, image: str = HELPER_IMAGE,
                      on_status: Callable[[str], None] | None = None) -> SyncResult:
    """Download ``<storage>/<rel>`` (or the ``only`` patterns in it) into ``local_dir``."""
    with storage_access(client, storage, key_path=key_path, image=image, on_status=on_status) as access:
        return pull_folder(access.target(rel), local_dir, only=only)


def apply_sync(client: Any, job: dict[str, Any] | str, spec: str, *, dry_run: bool = False,
               on_progress: Callable[[SyncProgress], None] | None = None,
               on_status: Callable[[str], None] | None = None, key_path: str | None = None,
               image: str = HELPER_IMAGE) -> tuple[dict[str, Any], JobSync]:
    """What ``--sync`` does before a submit: upload (unless ``dry_run``), then point the job
    (a dict or protocol YAML) at the folder. Returns the edited job and what moved."""
    from pai_magic.core.protocol import parse_protocol

    job_dict = parse_protocol(job) if isinstance(job, str) else job
    local, storage = parse_sync_spec(spec, None)
    storage = storage or default_storage(client)
    mount_path = next((str(s.get("mountPath") or f"/mnt/{storage}") for s in
                       ((job_dict.get("extras") or {}).get("storages") or [])
                       if isinstance(s, dict) and s.get("name") == storage), f"/mnt/{storage}")
    src = Path(local).expanduser()
    if not src.is_dir():  # before any helper job is submitted to reach the storage
        from pai_magic.core.errors import NotFoundError

        raise NotFoundError(f"{src} is not a folder: give the folder to sync (for example . for the notebook's folder).")
    if dry_run:
        rel = sync_rel(client.user, local)
        sync = JobSync(storage, rel, mount_path, SyncResult(str(src.resolve()), f"{storage}:{rel}"), "not uploaded (dry run)",
                       dry_run=True)
    else:
        sync = sync_for_job(client, f"{local}:{storage}", on_progress=on_progress, on_status=on_status,
                            key_path=key_path, image=image, mount_path=mount_path)
    return point_job_at_sync(job_dict, sync), sync


def progress_line(p: SyncProgress) -> str:
    """``sync: 3/10 files, 12.0 MiB/40.0 MiB (train.py)`` for a face to print."""
    from pai_magic.core.storage.usage import human_bytes

    return (f"sync: {p.files_done}/{p.files_total} files, {human_bytes(p.bytes_done)}/{human_bytes(p.bytes_total)}"
            f" ({p.current})")
