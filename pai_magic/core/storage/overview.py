"""The cluster's storages as a person wants to see them: where each is mounted on this machine,
and how full it is there.

The panel and the sidebar both show this table; the matching of a storage to a mount (by the
name pai_magic recorded when it mounted it, else by the NFS source) and the usage figures are
read here once, so the two faces cannot disagree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pai_magic.core.errors import PaiError
from pai_magic.core.storage.info import StorageClient, list_storages
from pai_magic.core.storage.listing import MountListing, list_mounts
from pai_magic.core.storage.mounttable import same_source
from pai_magic.core.storage.usage import human_bytes, share_usage


@dataclass
class StorageOverview:
    """One storage: what the cluster says, plus its mount here (``mountpoint`` None when not
    mounted) and, when mounted, the bytes of the share (``usage`` is the readable line, or why
    it could not be read)."""

    name: str
    type: str
    source: str | None
    default: bool
    read_only: bool
    mountpoint: str | None = None
    total: int | None = None
    used: int | None = None
    fraction_used: float | None = None
    usage: str = ""
    server: str | None = None            # NFS server and path, as the cluster gives them
    path: str | None = None
    mount_path: str = ""                 # where a job sees it (/mnt/NAME)
    mount_command: str | None = None     # the manual's mount command, when it is NFS
    mounted_by: str | None = None        # "pai_magic" or "system" when mounted here
    free: int | None = None              # bytes this user can still fill
    warn: bool = False                   # nearly full, or the usage could not be read
    usage_message: str = ""              # the full sentence: path, used, free, what to do

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mount_of(name: str, source: str | None, mounts: list[MountListing]) -> MountListing | None:
    """The mount pai_magic recorded for ``name``, else any mount of the same NFS source."""
    by_name = next((m for m in mounts if m.storage == name), None)
    if by_name is not None or not source:
        return by_name
    return next((m for m in mounts if same_source(m.source, source)), None)


def storage_overview(client: StorageClient) -> list[StorageOverview]:
    """Every storage of the cluster for this user, with its mount on this machine and usage."""
    mounts = [m for m in list_mounts() if m.mounted]
    rows: list[StorageOverview] = []
    for info in list_storages(client):
        row = StorageOverview(info.name, info.type, info.source, info.default, info.read_only,
                              server=info.server, path=info.path, mount_path=info.default_mount_path,
                              mount_command=info.mount_command)
        mount = _mount_of(info.name, info.source, mounts)
        if mount is not None:
            row.mountpoint = mount.mountpoint
            row.mounted_by = "pai_magic" if mount.by_pai_magic else "system"
            try:
                usage = share_usage(mount.mountpoint)
            except PaiError as err:
                row.usage = row.usage_message = str(err)
                row.warn = True
            else:
                row.total, row.used, row.fraction_used = usage.total, usage.used, usage.fraction_used
                row.free, row.warn, row.usage_message = usage.free, usage.warn, usage.message
                row.usage = f"{human_bytes(usage.used)} of {human_bytes(usage.total)} ({usage.fraction_used:.0%})"
        rows.append(row)
    return rows
