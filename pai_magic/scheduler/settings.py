"""What the scheduler tells its execution processes: one small JSON file in the staging area.

jupyter-scheduler starts each job's ExecutionManager in a fresh (spawned) process with only a
job id, paths and a database URL, so the PaiScheduler's configuration (profile, images,
compute types, limits) is written beside the jobs' staging folders where the process finds it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SETTINGS_NAME = "pai-magic-scheduler.json"
STOP_FLAG = ".pai-magic-stop"
JOB_FILE = ".pai-magic-job"

#: name -> resources; the default compute type is the first one.
DEFAULT_COMPUTE_TYPES: dict[str, dict[str, int]] = {
    "CPU": {"gpu": 0, "cpu": 4, "memory_mb": 8192},
    "1 GPU": {"gpu": 1, "cpu": 4, "memory_mb": 16384},
    "2 GPUs": {"gpu": 2, "cpu": 8, "memory_mb": 32768},
    "4 GPUs": {"gpu": 4, "cpu": 16, "memory_mb": 65536},
    "8 GPUs": {"gpu": 8, "cpu": 32, "memory_mb": 131072},
}


def write_settings(staging_path: str, data: dict[str, Any]) -> Path:
    path = Path(staging_path) / SETTINGS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_settings(job_staging_dir: str) -> dict[str, Any]:
    path = Path(job_staging_dir).parent / SETTINGS_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def compute_types(configured: dict[str, dict[str, int]], vc_gpus: int | None) -> dict[str, dict[str, int]]:
    """The configured types the virtual cluster can hold (all when it reports no GPUs at all)."""
    if not vc_gpus:
        return dict(configured)
    return {name: res for name, res in configured.items() if int(res.get("gpu", 0)) <= vc_gpus}
