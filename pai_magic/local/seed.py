"""Seed many finished jobs straight into a backend's store (tests and benchmarks).

Listing 10,000 jobs must be measured without running 10,000 jobs first; these rows are
shaped exactly like the rows the runner writes for a finished one-task job, so the HTTP
listing code cannot tell them apart. Safe while a backend serves the same data dir
(sqlite WAL; one transaction).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from pai_magic.local.store import Store, now_ms

FINISHED = ("SUCCEEDED", "FAILED", "STOPPED")
_EXIT = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": -210}


def seed_jobs(data_dir: Path | str, user: str, count: int, *, prefix: str = "seeded",
              states: Sequence[str] = FINISHED, vc: str = "default", start_ms: int | None = None) -> list[str]:
    """Insert ``count`` finished jobs named ``<prefix>-<i>`` (i = 0..count-1) for ``user``.

    Job ``i`` has state ``states[i % len(states)]`` and submission time ``start_ms + i``
    seconds, so the newest is ``<prefix>-<count-1>``. Returns the job names in that order.
    """
    store = Store(Path(data_dir) / "backend.sqlite")
    try:
        base = start_ms if start_ms is not None else now_ms() - count * 1000
        jobs, tasks, names = [], [], []
        spec = json.dumps({"roles": {"taskrole": {"instances": 1, "commands": "true", "ports": {}, "minFailed": 1,
                                                  "minSucceeded": 1, "taskRetryCount": 0, "cpu": 1,
                                                  "memoryMB": 512, "gpu": 0}},
                           "role_order": ["taskrole"], "jobRetryCount": 0, "ssh": False, "authorized_keys": [],
                           "storages": [], "notes": [], "framework_env": {}, "images": []})
        for i in range(count):
            name = f"{prefix}-{i}"
            state = states[i % len(states)]
            t = base + i * 1000
            framework = f"{user}~{name}"
            names.append(name)
            config = {"protocolVersion": 2, "name": name, "type": "job",
                      "prerequisites": [{"name": "image", "type": "dockerimage", "uri": "ubuntu:22.04"}],
                      "taskRoles": {"taskrole": {"instances": 1, "dockerImage": "image",
                                                 "resourcePerInstance": {"cpu": 1, "memoryMB": 512, "gpu": 0},
                                                 "commands": ["true"]}}}
            trigger = json.dumps({"message": "seeded", "taskRoleName": "taskrole", "taskIndex": 0})
            jobs.append({
                "name": framework, "job_name": name, "username": user, "vc": vc, "state": state,
                "execution_type": "STOP" if state == "STOPPED" else "START", "submission_time": t,
                "created_time": t + 10, "launched_time": t + 20, "completed_time": t + 500,
                "app_exit_code": _EXIT.get(state, 1), "diagnostics": "seeded", "trigger": trigger, "retries": 0,
                "attempt_id": 0, "attempt_created": t + 10, "attempt_launched": t + 20, "attempt_completed": t + 500,
                "total_gpu": 0, "total_tasks": 1, "total_roles": 1, "config_masked": json.dumps(config),
                "run_spec": spec,
            })
            tasks.append({"job": framework, "role": "taskrole", "idx": 0, "uid": f"seed{i:08d}", "state": state,
                          "attempt_id": 0, "retries": 0, "pid": None,
                          "ports": json.dumps({"ssh": str(20000 + i % 1000), "http": str(30000 + i % 1000)}),
                          "container_ip": "127.0.0.1", "exit_code": _EXIT.get(state, 1), "diagnostics": None,
                          "created_time": t + 10, "launched_time": t + 20, "completed_time": t + 500,
                          "attempts": "[]"})
        store.insert_jobs_bulk(jobs, tasks)
        return names
    finally:
        store.close()
