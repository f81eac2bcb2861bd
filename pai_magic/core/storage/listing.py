"""``%pai_mount`` with no argument: what pai_magic mounted, and the shares already in place.

The two sources disagree after a reboot or a manual ``umount``; listing both (and marking a
record whose mount is gone) lets the user see and clean up without guessing.
"""
from __future__ import annotations

from dataclasses import dataclass

from pai_magic.core.storage import state
from pai_magic.core.storage.mounttable import network_shares, read_mount_table


@dataclass
class MountListing:
    mountpoint: str
    source: str
    fstype: str            # "nfs4", "fuse.sshfs", ... or "" when the record's mount is gone
    by_pai_magic: bool
    mounted: bool
    storage: str | None = None
    job: str | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def list_mounts() -> list[MountListing]:
    table = read_mount_table()
    by_point = {e.mountpoint: e for e in table}
    out: list[MountListing] = []
    seen: set[str] = set()
    for rec in state.load_records():
        entry = by_point.get(rec.mountpoint)
        out.append(MountListing(rec.mountpoint, rec.source, entry.fstype if entry else "", True,
                                entry is not None, rec.storage, rec.job))
        seen.add(rec.mountpoint)
    for entry in network_shares(table):
        if entry.mountpoint not in seen:
            out.append(MountListing(entry.mountpoint, entry.source, entry.fstype, False, True))
            seen.add(entry.mountpoint)
    return out


def format_listing(rows: list[MountListing]) -> str:
    if not rows:
        return "No NFS or sshfs share is mounted, and pai_magic has mounted nothing."
    lines = []
    for r in rows:
        who = "pai_magic" if r.by_pai_magic else "system"
        state_txt = r.fstype if r.mounted else "NOT MOUNTED any more (%pai_umount to forget it)"
        extra = f" storage={r.storage}" if r.storage else ""
        extra += f" job={r.job}" if r.job else ""
        lines.append(f"{r.mountpoint}  <-  {r.source}  [{state_txt}, {who}{extra}]")
    return "\n".join(lines)
