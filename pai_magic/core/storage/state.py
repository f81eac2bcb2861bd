"""The small record of what pai_magic itself mounted.

Kept under ``config_dir()/mounts.json`` so that ``%pai_mount`` with no argument can tell the
user's own mounts from the machine's, and so that unmounting an sshfs share also stops the
helper job that was started for it, even from another kernel or the CLI.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pai_magic.core.paths import config_dir, write_private
from pai_magic.core.storage.mounttable import normalize_mountpoint


@dataclass
class MountRecord:
    """One share mounted by pai_magic: kernel NFS or sshfs through a job."""

    mountpoint: str
    kind: str  # "nfs" or "sshfs"
    source: str
    storage: str | None = None
    job: str | None = None          # the job whose container serves an sshfs mount
    helper_job: bool = False        # True when pai_magic started that job and must stop it
    profile: str | None = None
    created: float = field(default_factory=time.time)


def state_file() -> Path:
    return config_dir() / "mounts.json"


def load_records() -> list[MountRecord]:
    path = state_file()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    records: list[MountRecord] = []
    known = set(MountRecord.__dataclass_fields__)
    for item in raw.get("mounts", []) if isinstance(raw, dict) else []:
        if isinstance(item, dict) and "mountpoint" in item:
            records.append(MountRecord(**{k: v for k, v in item.items() if k in known}))
    return records


def _save(records: list[MountRecord]) -> None:
    write_private(state_file(), json.dumps({"mounts": [asdict(r) for r in records]}, indent=1))


def add_record(record: MountRecord) -> None:
    record.mountpoint = normalize_mountpoint(record.mountpoint)
    records = [r for r in load_records() if r.mountpoint != record.mountpoint]
    records.append(record)
    _save(records)


def get_record(mountpoint: str) -> MountRecord | None:
    target = normalize_mountpoint(mountpoint)
    for r in load_records():
        if r.mountpoint == target:
            return r
    return None


def remove_record(mountpoint: str) -> MountRecord | None:
    target = normalize_mountpoint(mountpoint)
    records = load_records()
    kept = [r for r in records if r.mountpoint != target]
    if len(kept) == len(records):
        return None
    _save(kept)
    return next(r for r in records if r.mountpoint == target)
