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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mount_of(name: str, source: str | None, mounts: list[MountListing]) -> MountListing | None:
    for mount in mounts:
        if mount.storage == name or (source and same_source(mount.source, source)):
            return mount
    return None


def storage_overview(client: StorageClient) -> list[StorageOverview]:
    """Every storage of the cluster for this user, with its mount on this machine and usage."""
    mounts = [m for m in list_mounts() if m.mounted]
    rows: list[StorageOverview] = []
    for info in list_storages(client):
        row = StorageOverview(info.name, info.type, info.source, info.default, info.read_only)
        mount = _mount_of(info.name, info.source, mounts)
        if mount is not None:
            row.mountpoint = mount.mountpoint
            try:
                usage = share_usage(mount.mountpoint)
            except PaiError as err:
                row.usage = str(err)
            else:
                row.total, row.used, row.fraction_used = usage.total, usage.used, usage.fraction_used
                row.usage = f"{human_bytes(usage.used)} of {human_bytes(usage.total)} ({usage.fraction_used:.0%})"
        rows.append(row)
    return rows
