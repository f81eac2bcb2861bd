"""The core's dataclasses as the JSON the sidebar reads (camelCase, see openapi.yaml).

Explicit field lists rather than ``asdict``: a field added to a model must never reach the
browser by accident (a model may one day carry something secret).
"""
from __future__ import annotations

from typing import Any

from pai_magic.core.diagnostics import readable_diagnostics
from pai_magic.core.kinds import job_kind, kind_label, kind_short_name
from pai_magic.core.models import JobDetail, JobSummary, TaskStatus


def job_row(job: JobSummary | JobDetail) -> dict[str, Any]:
    return {
        # what pai_magic started the job for (a kernel, a notebook run), read from its name
        "kind": job_kind(job.name),
        "kindLabel": kind_label(job.name),
        # the name without that prefix, for lists too narrow for the whole name
        "shortName": kind_short_name(job.name),
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


def job_detail(job: JobDetail, shell_commands: dict[str, str] | None = None) -> dict[str, Any]:
    """``shell_commands`` (``role/index`` to a shell line) adds each task's ``terminalCommand``."""
    data = job_row(job)
    data["gpus"] = None  # the detail answer does not say; the list row does
    data["diagnostics"] = readable_diagnostics(job.diagnostics)  # not the job controller's words
    data["tasks"] = [task_row(t) for t in job.tasks]
    for row in data["tasks"]:
        row["terminalCommand"] = (shell_commands or {}).get(f"{row['role']}/{row['index']}")
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


def storage_row(row: Any) -> dict[str, Any]:
    """A ``StorageOverview`` (core.storage.overview): a cluster storage with where it is
    mounted on this machine and how full it is."""
    usage = None
    if row.mountpoint is not None:
        fraction = round(row.fraction_used, 4) if row.fraction_used is not None else None
        usage = {"total": row.total, "used": row.used, "free": row.free, "fractionUsed": fraction,
                 "warn": row.warn, "message": row.usage_message}
    return {
        "name": row.name, "type": row.type, "server": row.server, "path": row.path,
        "readOnly": row.read_only, "default": row.default, "mountPath": row.mount_path,
        "mountCommand": row.mount_command, "mounted": row.mountpoint is not None,
        "mountpoint": row.mountpoint, "mountedBy": row.mounted_by, "usage": usage,
    }


def form_spec(job: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``(spec, None)`` when the sidebar's form can hold ``job`` exactly, else ``(None, why)``.

    The core's ``form_from_protocol`` reads the job; the sidebar takes ``commands`` as a list
    of lines rather than one text."""
    from pai_magic.core.jobform import form_cannot_hold, form_from_protocol

    why = form_cannot_hold(job)
    if why is not None:
        return None, why
    form = form_from_protocol(job)
    form["commands"] = form["commands"].splitlines()
    return form, None
