"""The core's dataclasses as the JSON the sidebar reads (camelCase, see openapi.yaml).

Explicit field lists rather than ``asdict``: a field added to a model must never reach the
browser by accident (a model may one day carry something secret).
"""
from __future__ import annotations

from typing import Any

from pai_magic.core.models import JobDetail, JobSummary, TaskStatus


def job_row(job: JobSummary | JobDetail) -> dict[str, Any]:
    return {
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
    }


def job_detail(job: JobDetail) -> dict[str, Any]:
    data = job_row(job)
    data["gpus"] = None  # the detail answer does not say; the list row does
    data["diagnostics"] = job.diagnostics
    data["tasks"] = [task_row(t) for t in job.tasks]
    return data
