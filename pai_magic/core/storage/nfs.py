"""Kernel NFS mounts, the manual's way: ``mount -t nfs -o nfsvers=4.1 SERVER:PATH DIR``.

Every command is built as an argv list and run without a shell, so a mount point with spaces
or ``;`` is a path and never a command; ``--dry-run`` shows the same argv shell-quoted so the
user can paste it into a terminal. Nothing may prompt (a kernel has no TTY), so sudo always
runs as ``sudo -n`` with stdin closed, and each way mounting fails here (no NFS in the kernel,
sudo wanting a password, the server refusing the client) becomes one sentence that says what
to do next.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pai_magic.core.errors import InvalidInputError, MountError, PaiTimeoutError
from pai_magic.core.storage import state
from pai_magic.core.storage.mounttable import (
    MountEntry,
    find_mount,
    normalize_mountpoint,
    same_source,
)

DEFAULT_OPTIONS = "nfsvers=4.1"
DEFAULT_TIMEOUT = 60.0
# Debian's PATH for ordinary users lacks the sbin folders where mount helpers live.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
ROOTLESS_HINT = "or mount it without root through a job (%pai_mount --storage NAME MOUNTPOINT --via-job)"

_SERVER_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]*|[0-9A-Fa-f:.]+)$")


@dataclass
class MountResult:
    """What a mount / umount did (or, with ``dry_run``, would do)."""

    mountpoint: str
    source: str
    kind: str  # "nfs" or "sshfs"
    commands: list[list[str]] = field(default_factory=list)
    dry_run: bool = False
    already: bool = False  # already mounted (mount) or not mounted (umount): nothing done
    message: str = ""
    job: str | None = None

    @property
    def shell_lines(self) -> list[str]:
        """The commands as a person would type them: each one shell-quoted."""
        return [shlex.join(argv) for argv in self.commands]


def parse_source(source: str) -> tuple[str, str]:
    """``SERVER:/PATH`` -> (server, path); IPv6 servers in brackets (``[fe80::1]:/data``)."""
    text = (source or "").strip()
    if text.startswith("["):
        end = text.find("]:")
        server, path = (text[: end + 1], text[end + 2:]) if end > 0 else ("", "")
    else:
        server, _, path = text.partition(":")
    if not server or not path.startswith("/") or not _SERVER_RE.match(server):
        raise InvalidInputError(
            f"Give the NFS share as SERVER:/PATH (for example 10.0.0.1:/data), not {source!r}.")
    return server, path


def format_source(server: str, path: str) -> str:
    if ":" in server and not server.startswith("["):
        server = f"[{server}]"
    return f"{server}:{path}"


def needs_sudo() -> bool:
    """Mounting a kernel filesystem needs root; anyone else goes through ``sudo -n``."""
    return os.geteuid() != 0


def sudo_prefix() -> list[str]:
    return ["sudo", "-n"] if needs_sudo() else []


def find_tool(name: str) -> str | None:
    """Look on PATH, then in the sbin folders an ordinary user's PATH usually lacks."""
    found = shutil.which(name)
    if found:
        return found
    for folder in SBIN_DIRS:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_hint() -> str:
    """How to install the NFS client on this machine's flavour of Linux."""
    if shutil.which("apt-get"):
        return "install it with: sudo apt-get install nfs-common"
    if shutil.which("dnf"):
        return "install it with: sudo dnf install nfs-utils"
    if shutil.which("yum"):
        return "install it with: sudo yum install nfs-utils"
    if shutil.which("zypper"):
        return "install it with: sudo zypper install nfs-client"
    return "install nfs-common (Debian/Ubuntu: apt-get install nfs-common) or nfs-utils (RHEL/CentOS: yum install nfs-utils)"


def require_mount_helper() -> str:
    helper = find_tool("mount.nfs")
    if helper is None:
        raise MountError(f"mount.nfs is not installed, so this machine cannot mount NFS: {install_hint()}, "
                         f"{ROOTLESS_HINT}.")
    return helper


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mkdir_argv(mountpoint: str) -> list[str] | None:
    """``mkdir -p`` for a missing mount point, through sudo when its parent is not ours."""
    target = Path(mountpoint)
    if target.is_dir():
        return None
    if target.exists():
        raise InvalidInputError(f"The mount point {mountpoint} exists and is not a folder: choose a folder.")
    parent = _nearest_existing(target.parent)
    prefix = [] if os.access(parent, os.W_OK) else sudo_prefix()
    return prefix + ["mkdir", "-p", mountpoint]


def mount_argv(source: str, mountpoint: str, options: str | None = DEFAULT_OPTIONS) -> list[str]:
    server, path = parse_source(source)
    argv = sudo_prefix() + ["mount", "-t", "nfs"]
    if options:
        if any(ch.isspace() for ch in options):
            raise InvalidInputError(f"Mount options are comma-separated without spaces (e.g. nfsvers=4.1,ro), not {options!r}.")
        argv += ["-o", options]
    return argv + [format_source(server, path), mountpoint]


def plan_mount(source: str, mountpoint: str, options: str | None = DEFAULT_OPTIONS) -> list[list[str]]:
    """The exact commands a mount runs, in order."""
    mp = normalize_mountpoint(mountpoint)
    commands: list[list[str]] = []
    mk = mkdir_argv(mp)
    if mk:
        commands.append(mk)
    commands.append(mount_argv(source, mp, options))
    return commands


def _env() -> dict[str, str]:
    """Untranslated messages, so the answers below can be recognised on any locale."""
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    # Let mount find its helpers even when the caller's PATH lacks sbin (or is nearly empty).
    have = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join([p for p in have if p] + [d for d in (*SBIN_DIRS, "/usr/bin", "/bin") if d not in have])
    return env


def run_argv(argv: list[str], timeout: float, action: str) -> subprocess.CompletedProcess[str]:
    """Run one command with no shell, no stdin (so nothing can prompt) and a bound.

    ``action`` is a verb phrase ("mount", "unmount") used in the error sentences.
    """
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=_env(), check=False)
    except FileNotFoundError:
        tool = argv[0]
        if tool == "sudo":
            raise MountError(f"Only root can {action} here and sudo is not installed: ask an administrator to run "
                             f"`{shlex.join(argv[2:])}`, {ROOTLESS_HINT}.") from None
        raise MountError(f"{tool} is not installed, so pai_magic cannot {action}: install it, {ROOTLESS_HINT}.") from None
    except subprocess.TimeoutExpired:
        raise PaiTimeoutError(f"The command to {action} did not finish within {timeout:g} s ({shlex.join(argv)}): "
                              f"the server may be unreachable; check it with --check.") from None


def explain_failure(stderr: str, returncode: int, *, action: str, source: str, mountpoint: str,
                    argv: list[str]) -> str:
    """Turn mount's / sudo's answer into one sentence that says what to do next."""
    text = " ".join((stderr or "").split())
    low = text.lower()
    server = source.rsplit(":", 1)[0] if ":" in source else source
    cmd = shlex.join(argv[2:] if argv[:2] == ["sudo", "-n"] else argv)
    if "a password is required" in low or "a terminal is required" in low:
        return (f"sudo needs a password to {action} and pai_magic never prompts: run `sudo {cmd}` "
                f"yourself in a terminal, allow it without password in sudoers, {ROOTLESS_HINT}.")
    if "not in the sudoers" in low or "may not run sudo" in low or "not allowed to execute" in low:
        return f"Your user may not use sudo to {action}: ask an administrator to run `{cmd}`, {ROOTLESS_HINT}."
    if "no such device" in low or "unknown filesystem type" in low:
        return (f"This machine's kernel has no NFS client (mount.nfs: No such device), so {source} cannot be "
                f"mounted here: load it with `sudo modprobe nfs` if your kernel ships it, {ROOTLESS_HINT}.")
    if "access denied by server" in low:
        return (f"The NFS server {server} refused to mount {source} for this machine (access denied by server): "
                f"the path is wrong or the export does not allow this client; check with --check.")
    if "helper program" in low or ("bad option" in low and "nfs" in low):
        return f"mount.nfs is not installed, so this machine cannot mount NFS: {install_hint()}, {ROOTLESS_HINT}."
    if ("only root" in low or "must be superuser" in low or "operation not permitted" in low
            or "permission denied" in low or "failed to apply fstab options" in low):
        return (f"Mounting needs root and this process is not allowed to mount: run `sudo {cmd}` in a terminal, "
                f"{ROOTLESS_HINT}.")
    if "connection refused" in low or "timed out" in low or "no route to host" in low or "network is unreachable" in low:
        return f"The NFS server {server} does not answer ({text[:120]}): check the address and your network, then retry."
    if "no such file or directory" in low:
        return f"{source} does not exist on the server or {mountpoint} is missing ({text[:120]}): check the path with --check."
    if "busy" in low:
        return (f"{mountpoint} is busy: a process still uses it (an open file, a shell inside it); close it, "
                f"then unmount again.")
    if "not mounted" in low:
        return f"{mountpoint} is not mounted: nothing to unmount."
    first = text[:200] or f"exit code {returncode}"
    return f"Could not {action} ({source} on {mountpoint}): {first}; run `{cmd}` in a terminal to see more."


def mount_nfs(source: str, mountpoint: str, options: str | None = DEFAULT_OPTIONS, *,
              dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT, storage: str | None = None) -> MountResult:
    """Mount an NFS export with the kernel client; do nothing when it is already there.

    Raises MountError (one sentence) for every way it can fail, PaiTimeoutError when the
    mount does not return in time, InvalidInputError for a malformed source or mount point.
    """
    server, path = parse_source(source)
    source = format_source(server, path)
    mp = normalize_mountpoint(mountpoint)
    existing = find_mount(mp)
    if existing is not None and not dry_run:
        if same_source(existing.source, source):
            return MountResult(mp, source, "nfs", already=True,
                               message=f"{source} is already mounted on {mp}; nothing to do.")
        raise MountError(f"{mp} already has {existing.source} ({existing.fstype}) mounted on it: unmount it first "
                         f"(%pai_umount {shlex.quote(mp)}) or choose another folder.")
    commands = plan_mount(source, mp, options)
    if dry_run:
        note = "" if find_tool("mount.nfs") else f" (mount.nfs is missing here: {install_hint()})"
        return MountResult(mp, source, "nfs", commands=commands, dry_run=True,
                           message=f"Would run {len(commands)} command(s){note}.")
    require_mount_helper()
    for argv in commands:
        action = "create the mount point" if "mkdir" in argv else "mount"
        proc = run_argv(argv, timeout, action)
        if proc.returncode != 0:
            raise MountError(explain_failure(proc.stderr or proc.stdout, proc.returncode, action=action,
                                             source=source, mountpoint=mp, argv=argv))
    entry = find_mount(mp)
    if entry is None or not same_source(entry.source, source):
        raise MountError(f"mount reported success but {mp} does not show {source} in the mount table; "
                         f"run `mount | grep {shlex.quote(mp)}` to see what happened.")
    state.add_record(state.MountRecord(mountpoint=mp, kind="nfs", source=source, storage=storage))
    return MountResult(mp, source, "nfs", commands=commands, message=f"Mounted {source} on {mp}.")


def umount_argv(entry: MountEntry | None, mountpoint: str) -> list[str]:
    """FUSE mounts (sshfs) are the user's own: fusermount3 -u, never sudo; the rest need root."""
    if entry is not None and entry.fstype.startswith("fuse"):
        tool = "fusermount3" if find_tool("fusermount3") or not find_tool("fusermount") else "fusermount"
        return [tool, "-u", mountpoint]
    return sudo_prefix() + ["umount", mountpoint]


def umount(mountpoint: str, *, dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT) -> MountResult:
    """Unmount a share and forget it; a folder with nothing mounted is reported, not an error."""
    mp = normalize_mountpoint(mountpoint)
    entry = find_mount(mp)
    record = state.get_record(mp)
    kind = "sshfs" if (entry and entry.is_sshfs) or (record and record.kind == "sshfs") else "nfs"
    source = entry.source if entry else (record.source if record else "")
    argv = umount_argv(entry, mp)
    if dry_run:
        return MountResult(mp, source, kind, commands=[argv], dry_run=True, message="Would run 1 command.")
    if entry is None:
        state.remove_record(mp)
        return MountResult(mp, source, kind, already=True, message=f"Nothing is mounted on {mp}.")
    proc = run_argv(argv, timeout, "unmount")
    if proc.returncode != 0:
        raise MountError(explain_failure(proc.stderr or proc.stdout, proc.returncode, action="unmount",
                                         source=source, mountpoint=mp, argv=argv))
    still = find_mount(mp)
    if still is not None and still == entry:
        raise MountError(f"umount reported success but {mp} is still mounted; close what uses it and retry.")
    state.remove_record(mp)
    return MountResult(mp, source, kind, commands=[argv], message=f"Unmounted {mp}.")


def kernel_nfs_possible() -> tuple[bool, str]:
    """Whether a kernel NFS mount can work here, so callers can go rootless up front.

    A best guess without side effects: the helper must exist, this process must be root or
    have password-less sudo, and the kernel must know NFS or have the module on disk.
    """
    if find_tool("mount.nfs") is None:
        return False, "mount.nfs is not installed"
    if needs_sudo():
        if shutil.which("sudo") is None:
            return False, "not root and sudo is not installed"
        try:
            proc = subprocess.run(["sudo", "-n", "true"], stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=10, env=_env(), check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False, "sudo did not answer"
        if proc.returncode != 0:
            return False, "sudo needs a password"
    try:
        known = Path("/proc/filesystems").read_text()
    except OSError:
        known = ""
    if re.search(r"\snfs4?$", known, re.M):
        return True, "the kernel has NFS"
    release = os.uname().release
    if Path(f"/lib/modules/{release}/kernel/fs/nfs").exists():
        return True, "the kernel has an NFS module"
    return False, "the kernel has no NFS client"
