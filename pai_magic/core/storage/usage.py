"""Space on a mounted share, and the user's own folder on it.

The manual asks every user to keep their data in a folder of their own on the shared disk and
to clean up regularly; these two helpers make both one call. ``statvfs`` works the same on a
kernel NFS mount, an sshfs mount and a local folder, so no server-side API is needed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pai_magic.core.errors import InvalidInputError, MountError, NotFoundError

DEFAULT_WARN_ABOVE = 0.90
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")


@dataclass
class ShareUsage:
    """Bytes of a share as its server reports them; ``warn`` is set above the threshold."""

    path: str
    total: int
    used: int
    free: int  # available to this (unprivileged) user
    fraction_used: float
    warn: bool
    message: str


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def share_usage(path: str | os.PathLike[str], warn_above: float = DEFAULT_WARN_ABOVE) -> ShareUsage:
    """Used and free space of the filesystem holding ``path``."""
    if not 0 < warn_above <= 1:
        raise InvalidInputError(f"The warning threshold is a fraction between 0 and 1 (e.g. 0.9), not {warn_above}.")
    p = os.fspath(Path(path).expanduser())
    try:
        st = os.statvfs(p)
    except FileNotFoundError:
        raise NotFoundError(f"{p} does not exist: mount the share first (%pai_mount).") from None
    except OSError as exc:
        raise MountError(f"Cannot read the space of {p} ({exc.strerror}): check that the share is still mounted.") from None
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    # What the user can fill: used + available (root's reserve is not theirs).
    usable = used + free
    frac = used / usable if usable else 0.0
    warn = frac >= warn_above
    msg = f"{p}: {human_bytes(used)} used, {human_bytes(free)} free of {human_bytes(total)} ({frac:.0%} used)"
    if warn:
        msg += f"; above {warn_above:.0%}: please delete what you no longer need."
    return ShareUsage(p, total, used, free, frac, warn, msg)


def parse_mode(text: str) -> int:
    """An octal folder mode as people type it (``700``, ``0750``), checked once for every face."""
    try:
        mode = int(str(text), 8)
    except ValueError:
        raise InvalidInputError(f"--mode {text!r} is not an octal mode: write it like 700 or 750.") from None
    if not 0 <= mode <= 0o777:
        raise InvalidInputError(f"--mode {text!r} is out of range: give 000 to 777.")
    return mode


def personal_folder(share_root: str | os.PathLike[str], user: str, *, mode: int = 0o700,
                    create: bool = True) -> Path:
    """``<share>/<cluster user>``, created with ``mode`` (0700: only you) when missing.

    An existing folder keeps its mode: the user may have opened it to the team on purpose.
    """
    if not user or not _USER_RE.match(user) or user in (".", ".."):
        raise InvalidInputError(f"{user!r} cannot name a folder: log in first (pai-magic login) so the cluster user is known.")
    root = Path(share_root).expanduser()
    if not root.is_dir():
        raise NotFoundError(f"{root} is not a folder: mount the share there first (%pai_mount).")
    folder = root / user
    if folder.is_dir() or not create:
        return folder
    try:
        folder.mkdir(mode=mode)
        os.chmod(folder, mode)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        pass
    except PermissionError:
        raise MountError(f"You may not create {folder} on this share: ask the cluster admin for a folder "
                         f"of your own there.") from None
    return folder
