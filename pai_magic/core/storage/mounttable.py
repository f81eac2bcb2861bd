"""What is mounted right now, read from the kernel's own table.

``/proc/self/mountinfo`` (not ``/etc/mtab`` or ``mount`` output) because it is what the kernel
sees in *this* process's mount namespace, it escapes spaces and newlines in paths unambiguously
(``\\040``), and reading it needs no subprocess.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = "/proc/self/mountinfo"
NFS_TYPES = frozenset({"nfs", "nfs4"})
SSHFS_TYPES = frozenset({"fuse.sshfs", "fuse.sshfs-fuse"})

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as three-digit octal escapes."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo: where, what type, from which source, with which options."""

    mountpoint: str
    fstype: str
    source: str
    options: str = ""

    @property
    def is_nfs(self) -> bool:
        return self.fstype in NFS_TYPES

    @property
    def is_sshfs(self) -> bool:
        return self.fstype in SSHFS_TYPES

    @property
    def is_network_share(self) -> bool:
        """NFS and sshfs: what ``%pai_mount`` lists as shares in place."""
        return self.is_nfs or self.is_sshfs


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo text; malformed lines are skipped rather than failing a listing."""
    entries: list[MountEntry] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf = left.split(" ")
        rf = right.split(" ")
        if len(lf) < 6 or len(rf) < 2:
            continue
        entries.append(MountEntry(
            mountpoint=_unescape(lf[4]),
            fstype=rf[0],
            source=_unescape(rf[1]),
            options=lf[5] + ("," + rf[2] if len(rf) > 2 else ""),
        ))
    return entries


def read_mount_table(path: str = MOUNTINFO) -> list[MountEntry]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return parse_mountinfo(fh.read())
    except OSError:
        return []


def normalize_mountpoint(path: str | os.PathLike[str]) -> str:
    """Absolute, symlink-free form, as the kernel records mount points."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def find_mount(mountpoint: str | os.PathLike[str], table: list[MountEntry] | None = None) -> MountEntry | None:
    """The entry mounted exactly at ``mountpoint`` (the last one wins: mounts stack)."""
    target = normalize_mountpoint(mountpoint)
    found: MountEntry | None = None
    for entry in table if table is not None else read_mount_table():
        if entry.mountpoint == target:
            found = entry
    return found


def same_source(a: str, b: str) -> bool:
    """``server:/data/`` and ``server:/data`` name the same export."""
    def norm(s: str) -> str:
        s = s.strip()
        return s[:-1] if len(s) > 1 and s.endswith("/") else s
    return norm(a) == norm(b)


def network_shares(table: list[MountEntry] | None = None) -> list[MountEntry]:
    return [e for e in (table if table is not None else read_mount_table()) if e.is_network_share]


def is_mount_point(path: str | os.PathLike[str]) -> bool:
    return find_mount(path) is not None or Path(path).is_mount()
