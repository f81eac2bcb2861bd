"""The cluster's storages as the user needs them: where they live and how to reach them.

``GET /storages`` only names them; ``GET /storages/<name>`` adds the type and the server data.
For NFS the answer also gives the mount command the manual asks users to type, so the listing
is directly useful. Samba and Azure entries carry passwords and account keys: they are dropped
here and never reach a face.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Protocol

from pai_magic.core.storage.nfs import DEFAULT_OPTIONS, format_source

_SECRET_KEYS = frozenset({"password", "accountKey", "accountkey", "key", "secret", "sasToken", "token"})


@dataclass
class StorageInfo:
    """One storage: name, type, where (NFS server and path), flags, mount options."""

    name: str
    type: str = "unknown"
    server: str | None = None
    path: str | None = None
    read_only: bool = False
    default: bool = False
    share: bool = True
    volume_name: str | None = None
    mount_options: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # non-secret type-specific fields

    @property
    def is_nfs(self) -> bool:
        return self.type.lower() == "nfs" and bool(self.server) and bool(self.path)

    @property
    def source(self) -> str | None:
        """``SERVER:/PATH`` for NFS, else None."""
        if not self.is_nfs:
            return None
        return format_source(str(self.server), str(self.path))

    @property
    def default_mount_path(self) -> str:
        """Where a job sees it unless told otherwise (OpenPAI's default)."""
        return f"/mnt/{self.name}"

    def mount_argv(self, mountpoint: str | None = None, options: str | None = None) -> list[str] | None:
        """The manual's command for this storage, as argv (the user runs it with sudo)."""
        if not self.is_nfs:
            return None
        opts = options or ",".join(self.mount_options) or DEFAULT_OPTIONS
        if not any(o.startswith(("nfsvers=", "vers=")) for o in opts.split(",")):
            opts = f"{DEFAULT_OPTIONS},{opts}"
        if self.read_only and "ro" not in opts.split(","):
            opts += ",ro"
        return ["sudo", "mount", "-t", "nfs", "-o", opts, str(self.source), mountpoint or self.default_mount_path]

    @property
    def mount_command(self) -> str | None:
        argv = self.mount_argv()
        return shlex.join(argv) if argv else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``--json``): no secrets, the mount command included."""
        return {"name": self.name, "type": self.type, "server": self.server, "path": self.path,
                "read_only": self.read_only, "default": self.default, "share": self.share,
                "volume_name": self.volume_name, "mount_options": self.mount_options,
                "data": self.data, "mount_command": self.mount_command}

    @classmethod
    def from_api(cls, summary: dict[str, Any], detail: dict[str, Any] | None = None) -> "StorageInfo":
        d = dict(summary or {})
        d.update(detail or {})
        raw: dict[str, Any] = d["data"] if isinstance(d.get("data"), dict) else {}
        data = {k: v for k, v in raw.items() if k not in _SECRET_KEYS
                and not any(word in k.lower() for word in ("password", "key", "token", "secret"))}
        opts = d.get("mountOptions") or []
        if isinstance(opts, str):
            opts = [o for o in opts.split(",") if o]
        return cls(
            name=str(d.get("name", "")),
            type=str(d.get("type") or "unknown"),
            server=raw.get("server") or raw.get("address"),
            path=raw.get("path"),
            read_only=bool(d.get("readOnly", False)),
            default=bool(d.get("default", False)),
            share=bool(d.get("share", True)),
            volume_name=d.get("volumeName"),
            mount_options=[str(o) for o in opts],
            data=data,
        )


class StorageClient(Protocol):
    """What this module needs from the core client (``PaiClient``)."""

    def storages(self) -> Any: ...

    def storage(self, name: str) -> Any: ...


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    for attr in ("raw", "data"):
        val = getattr(obj, attr, None)
        if isinstance(val, dict) and ("name" in val or "storages" in val):
            return val
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict
        return asdict(obj)
    return dict(getattr(obj, "__dict__", {}))


def _summaries(answer: Any) -> list[dict[str, Any]]:
    if isinstance(answer, dict):
        answer = answer.get("storages", [])
    return [_as_dict(item) for item in answer or []]


def list_storages(client: StorageClient, *, details: bool = True) -> list[StorageInfo]:
    """Every storage the user may use; with ``details`` each one's type and server too."""
    out: list[StorageInfo] = []
    for summary in _summaries(client.storages()):
        detail = _as_dict(client.storage(summary["name"])) if details and summary.get("name") else None
        out.append(StorageInfo.from_api(summary, detail))
    return out


def get_storage(client: StorageClient, name: str) -> StorageInfo:
    """One storage by name (NotFoundError from the client when it does not exist)."""
    return StorageInfo.from_api({"name": name}, _as_dict(client.storage(name)))
