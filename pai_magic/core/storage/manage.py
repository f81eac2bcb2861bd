"""The storage verbs every face calls: describe, mount (choosing kernel NFS or sshfs), unmount.

The choice between the manual's kernel mount and the rootless one lives here, once: a named
job or ``rootless=True`` forces sshfs; otherwise the kernel mount is tried when it can work on
this machine (helper installed, root or password-less sudo, NFS in the kernel) and sshfs
through a helper job is the fallback, with a note saying why.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

from pai_magic.core.errors import InvalidInputError, MountError
from pai_magic.core.storage import nfs, state
from pai_magic.core.storage.check import CheckResult, check_export
from pai_magic.core.storage.info import StorageInfo, get_storage, list_storages
from pai_magic.core.storage.listing import MountListing, format_listing, list_mounts
from pai_magic.core.storage.mounttable import find_mount
from pai_magic.core.storage.nfs import MountResult
from pai_magic.core.storage.usage import DEFAULT_WARN_ABOVE, ShareUsage, personal_folder, share_usage


@dataclass
class StorageView:
    """One storage as ``%pai_storage`` shows it."""

    info: StorageInfo
    check: CheckResult | None = None
    mounted_at: list[str] = field(default_factory=list)
    usage: list[ShareUsage] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = self.info.as_dict()
        out["mounted_at"] = self.mounted_at
        if self.check is not None:
            out["check"] = {"ok": self.check.ok, "verified": self.check.verified, "method": self.check.method,
                            "message": self.check.message}
        if self.usage:
            out["usage"] = [{"path": u.path, "total": u.total, "used": u.used, "free": u.free,
                             "fraction_used": round(u.fraction_used, 4), "warn": u.warn, "message": u.message}
                            for u in self.usage]
        return out

    def text(self) -> str:
        i = self.info
        flags = ", ".join(f for f, on in (("default", i.default), ("read-only", i.read_only)) if on)
        where = f"{i.server}:{i.path}" if i.server and i.path else (i.server or "")
        lines = [f"{i.name}  [{i.type}{', ' + flags if flags else ''}]  {where}".rstrip()]
        if i.mount_command:
            lines.append(f"  mount: {i.mount_command}")
        lines.append(f"  in jobs: --storage {i.name} (at {i.default_mount_path})")
        for mp in self.mounted_at:
            lines.append(f"  mounted here at {mp}")
        if self.check is not None:
            lines.append(f"  check: {'OK' if self.check.ok else 'FAILED'}: {self.check.message}")
        for u in self.usage:
            lines.append(f"  usage: {'WARNING ' if u.warn else ''}{u.message}")
        return "\n".join(lines)


def _mounts_of(storage: str) -> list[str]:
    return [r.mountpoint for r in state.load_records()
            if r.storage == storage and find_mount(r.mountpoint) is not None]


def describe_storages(client: Any, name: str | None = None, *, check: bool = False, usage: bool = False,
                      warn_above: float = DEFAULT_WARN_ABOVE, check_timeout: float = 15.0) -> list[StorageView]:
    """The cluster's storages (or one), each with its mount command; optionally probed
    (``check``: does the NFS server export the path) and measured where mounted (``usage``)."""
    infos = [get_storage(client, name)] if name else list_storages(client)
    views: list[StorageView] = []
    for info in infos:
        view = StorageView(info, mounted_at=_mounts_of(info.name))
        if check and info.is_nfs:
            view.check = check_export(str(info.source), timeout=check_timeout)
        elif check:
            view.check = CheckResult(str(info.server or ""), str(info.path or ""), False, False, "none",
                                     f"{info.name} is a {info.type} storage: only NFS storages can be probed.")
        if usage:
            view.usage = [share_usage(mp, warn_above) for mp in view.mounted_at]
        views.append(view)
    return views


def format_views(views: list[StorageView], *, usage: bool = False) -> str:
    if not views:
        return "This cluster offers you no storage."
    text = "\n".join(v.text() for v in views)
    if usage and not any(v.usage for v in views):
        text += "\n(no storage is mounted here: mount one with %pai_mount --storage NAME MOUNTPOINT to see its space)"
    return text


@dataclass
class MountOutcome:
    result: MountResult
    personal: str | None = None
    note: str = ""

    @property
    def message(self) -> str:
        parts = [self.result.message]
        if self.note:
            parts.append(self.note)
        if self.personal:
            parts.append(f"Your folder: {self.personal}")
        return " ".join(p for p in parts if p)

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {"mountpoint": r.mountpoint, "source": r.source, "kind": r.kind, "dry_run": r.dry_run,
                "already": r.already, "job": r.job, "commands": r.shell_lines, "personal": self.personal,
                "message": self.message}


def mount_arguments(words: list[str]) -> tuple[str | None, str]:
    """``[SERVER:/PATH] MOUNTPOINT`` as typed after `pai-magic mount` / %pai_mount."""
    if len(words) > 2:
        raise InvalidInputError("`pai-magic mount` takes at most SERVER:/PATH and MOUNTPOINT "
                                "(quote paths with spaces).")
    source = words[0] if len(words) == 2 else None
    mountpoint = words[-1] if words else ""
    if not mountpoint:
        raise InvalidInputError("Give the folder to mount on, e.g. `pai-magic mount --storage NAME ~/data`.")
    return source, mountpoint


def mount(mountpoint: str, *, client: Any | None = None, source: str | None = None, storage: str | None = None,
          options: str | None = None, via_job: str | None = None, rootless: bool | None = None,
          dry_run: bool = False, mkdir_personal: bool = False, personal_mode: int = 0o700,
          user: str | None = None, key_path: str | None = None, profile: str | None = None,
          on_status: Callable[[str], None] | None = None, timeout: float = nfs.DEFAULT_TIMEOUT) -> MountOutcome:
    """Mount ``source`` (SERVER:/PATH, kernel NFS) or the cluster's ``storage`` on ``mountpoint``.

    ``rootless``: True forces sshfs through a job, False forbids it, None (default) lets the
    kernel mount go first when it can work here and falls back to sshfs.
    """
    if not mountpoint:
        raise InvalidInputError("Give the folder to mount on, e.g. %pai_mount --storage NAME ~/data.")
    if source and storage:
        raise InvalidInputError("Give either SERVER:/PATH or --storage NAME, not both.")
    if not source and not storage and not via_job:
        raise InvalidInputError("What to mount? Give SERVER:/PATH, --storage NAME or --via-job JOB.")
    note = ""
    if source and not via_job and rootless is not True:
        result = nfs.mount_nfs(source, mountpoint, options or nfs.DEFAULT_OPTIONS, dry_run=dry_run, timeout=timeout)
    else:
        if client is None:
            raise InvalidInputError("Mounting a cluster storage needs a cluster: log in first (pai-magic login).")
        info = get_storage(client, storage) if storage else None
        use_kernel = False
        if info is not None and via_job is None and rootless is not True and info.is_nfs:
            possible, why = nfs.kernel_nfs_possible()
            use_kernel = possible or rootless is False  # forced: let it fail with its precise sentence
            if not use_kernel:
                note = f"(kernel NFS is not possible here: {why}; through a job with sshfs instead)"
        if info is not None and not info.is_nfs and rootless is False:
            raise MountError(f"Storage {info.name} is a {info.type} storage: pai_magic mounts NFS storages with the "
                             f"kernel; drop --no-rootless to mount it through a job.")
        if use_kernel and info is not None:
            mount_opts = options or (",".join(info.mount_options) if info.mount_options else nfs.DEFAULT_OPTIONS)
            if info.read_only and "ro" not in mount_opts.split(","):
                mount_opts += ",ro"
            try:
                result = nfs.mount_nfs(str(info.source), mountpoint, mount_opts, dry_run=dry_run, timeout=timeout,
                                       storage=info.name)
            except MountError as exc:
                if rootless is not None:
                    raise
                note = f"(the kernel mount failed: {exc.message.rstrip('.')}; through a job with sshfs instead)"
                result = _rootless(client, mountpoint, storage, via_job, key_path, dry_run, profile, on_status)
        else:
            result = _rootless(client, mountpoint, storage, via_job, key_path, dry_run, profile, on_status)
    personal = None
    if mkdir_personal:
        who = user or getattr(client, "user", None) or ""
        if dry_run:
            target = f"{result.mountpoint}/{who or '<user>'}"
            result.commands.append(["mkdir", "-m", f"{personal_mode:o}", target])
            personal = target
        else:
            personal = str(personal_folder(result.mountpoint, who, mode=personal_mode))
    return MountOutcome(result, personal, note)


def _rootless(client: Any, mountpoint: str, storage: str | None, via_job: str | None, key_path: str | None,
              dry_run: bool, profile: str | None, on_status: Callable[[str], None] | None) -> MountResult:
    from pai_magic.core.storage.rootless import mount_via_job

    return mount_via_job(client, mountpoint, storage=storage, job=via_job, key_path=key_path, dry_run=dry_run,
                         profile=profile or getattr(getattr(client, "profile", None), "name", None),
                         on_status=on_status)


def umount(mountpoint: str, *, client: Any | None = None, dry_run: bool = False,
           client_factory: Callable[[str | None], Any] | None = None) -> MountResult:
    """Unmount (fusermount3 -u for sshfs, umount for NFS) and stop a helper job pai_magic started."""
    from pai_magic.core.storage.rootless import unmount

    return unmount(mountpoint, client=client, client_factory=client_factory, dry_run=dry_run)


def mounts() -> list[MountListing]:
    return list_mounts()


def mounts_text() -> str:
    return format_listing(list_mounts())


def shell_lines(result: MountResult) -> str:
    return "\n".join(shlex.join(c) for c in result.commands)
