"""The core's dataclasses as the JSON the sidebar reads (camelCase, see openapi.yaml).

Explicit field lists rather than ``asdict``: a field added to a model must never reach the
browser by accident (a model may one day carry something secret).
"""
from __future__ import annotations

from typing import Any

from pai_magic.core.kinds import job_kind, kind_label
from pai_magic.core.models import JobDetail, JobSummary, TaskStatus


def job_row(job: JobSummary | JobDetail) -> dict[str, Any]:
    return {
        # what pai_magic started the job for (a kernel, a notebook run), read from its name
        "kind": job_kind(job.name),
        "kindLabel": kind_label(job.name),
        "name": job.name,
        "user": job.user,
        "state": job.state,
        "virtualCluster": job.virtual_cluster,
        "gpus": int(getattr(job, "gpus", 0) or 0),
        "submissionTime": job.submission_time,
        "completedTime": job.completed_time,
        "exitCode": job.exit_code,
        "retries": job.retries,
    }


def task_row(task: TaskStatus) -> dict[str, Any]:
    return {
        "role": task.role,
        "index": task.index,
        "state": task.state,
        "containerIp": task.container_ip,
        "ports": {name: list(ports) for name, ports in task.ports.items()},
        "exitCode": task.exit_code,
        "diagnostics": task.diagnostics,
        "retries": task.retries,
        "attemptId": task.attempt_id,
    }


def job_detail(job: JobDetail) -> dict[str, Any]:
    data = job_row(job)
    data["gpus"] = None  # the detail answer does not say; the list row does
    data["diagnostics"] = job.diagnostics
    data["tasks"] = [task_row(t) for t in job.tasks]
    return data


def image_tags(host: str, rows: list[Any]) -> list[dict[str, Any]]:
    """``ImageDetail`` rows (one per tag and platform) as one entry per tag, newest first.

    ``reference`` is what the submit form's image field takes: the registry host is part of
    it, or the cluster would pull the name from Docker Hub.
    """
    by_tag: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_tag.setdefault(row.tag, {
            "tag": row.tag, "reference": f"{host}/{row.repository}:{row.tag}", "digest": row.digest or None,
            "size": None, "created": None, "platforms": [], "error": None})
        if row.error:
            entry["error"] = row.error
            continue
        if row.size is not None:
            entry["size"] = max(entry["size"] or 0, int(row.size))
        if row.created and (entry["created"] is None or row.created > entry["created"]):
            entry["created"] = row.created
        if row.os or row.architecture:
            platform = "/".join(p for p in (row.os, row.architecture, row.variant) if p)
            if platform not in entry["platforms"]:
                entry["platforms"].append(platform)
    return sorted(by_tag.values(), key=lambda e: (e["created"] or "", e["tag"]), reverse=True)


def storage_row(info: Any, mounts: list[Any]) -> dict[str, Any]:
    """A cluster storage with where it is mounted on this machine and how full it is."""
    from pai_magic.core.errors import PaiError
    from pai_magic.core.storage.mounttable import same_source
    from pai_magic.core.storage.usage import share_usage

    mount = next((m for m in mounts if m.mounted and m.storage == info.name), None)
    if mount is None and info.source:
        mount = next((m for m in mounts if m.mounted and same_source(m.source, info.source)), None)
    usage = None
    if mount is not None:
        try:
            u = share_usage(mount.mountpoint)
            usage = {"total": u.total, "used": u.used, "free": u.free, "fractionUsed": round(u.fraction_used, 4),
                     "warn": u.warn, "message": u.message}
        except PaiError as exc:
            usage = {"total": None, "used": None, "free": None, "fractionUsed": None, "warn": True,
                     "message": str(exc)}
    return {
        "name": info.name, "type": info.type, "server": info.server, "path": info.path,
        "readOnly": info.read_only, "default": info.default, "mountPath": info.default_mount_path,
        "mountCommand": info.mount_command, "mounted": mount is not None,
        "mountpoint": mount.mountpoint if mount is not None else None,
        "mountedBy": ("pai_magic" if mount.by_pai_magic else "system") if mount is not None else None,
        "usage": usage,
    }
