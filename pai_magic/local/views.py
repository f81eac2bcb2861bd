"""The JSON shapes of the real rest-server (v1.8), built from store rows.

Field names, nullability and quirks follow microsoft/pai ``src/rest-server`` (the
frameworkcontroller converters), because the client must not be able to tell the embedded
backend from a cluster: ``containerPorts`` values are strings ("37508", "1,2" for several),
``subState`` is the frameworkcontroller state, times are epoch milliseconds or null.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from pai_magic.local.store import Store

SUB_STATE = {
    "WAITING": "AttemptCreationPending",
    "RUNNING": "AttemptRunning",
    "STOPPING": "AttemptDeletionRequested",
    "SUCCEEDED": "Completed",
    "FAILED": "Completed",
    "STOPPED": "Completed",
}

_EXIT_SPECS: dict[int, dict[str, Any]] = {
    0: {"code": 0, "phrase": "Succeeded", "issuer": "USER_CONTAINER", "causer": "USER_CONTAINER",
        "type": "USER_SUCCESS", "stage": "COMPLETING", "behavior": "UNKNOWN", "reaction": "NEVER_RETRY",
        "reason": "The user program exited with code 0", "repro": [], "solution": []},
    -210: {"code": -210, "phrase": "StopFrameworkRequested", "issuer": "PAI_FC", "causer": "USER_STOP",
           "type": "USER_STOP", "stage": "UNKNOWN", "behavior": "PERMANENT", "reaction": "NEVER_RETRY",
           "reason": "Stop to complete current job attempt", "repro": ["Stop a job"], "solution": []},
    -220: {"code": -220, "phrase": "FrameworkAttemptCompletion", "issuer": "PAI_FC", "causer": "USER_STOP",
           "type": "USER_STOP", "stage": "UNKNOWN", "behavior": "PERMANENT", "reaction": "NEVER_RETRY",
           "reason": "Stop to complete current FrameworkAttempt", "repro": [], "solution": []},
    -1: {"code": -1, "phrase": "BackendStopped", "issuer": "PAI_RUNTIME", "causer": "PAI_RUNTIME",
         "type": "PLATFORM_FAILURE", "stage": "RUNNING", "behavior": "UNKNOWN", "reaction": "NEVER_RETRY",
         "reason": "the embedded backend stopped while the job ran", "repro": [], "solution": []},
}


def exit_spec(code: int | None) -> dict[str, Any] | None:
    if code is None:
        return None
    if code in _EXIT_SPECS:
        return dict(_EXIT_SPECS[code])
    return {"code": code, "phrase": "UserContainerFailed", "issuer": "USER_CONTAINER", "causer": "USER_CONTAINER",
            "type": "USER_FAILURE", "stage": "RUNNING", "behavior": "UNKNOWN", "reaction": "RETRY_TO_MAX",
            "reason": f"The user program exited with code {code}", "repro": [], "solution": []}


def debug_id(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def attempt_state(state: str) -> str:
    return "RUNNING" if state == "STOPPING" else state


def _status_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The status fields a job list item and a job detail's ``jobStatus`` share on the server."""
    return {
        "username": row["username"],
        "state": row["state"],
        "subState": SUB_STATE.get(row["state"], "AttemptCreationPending"),
        "executionType": row["execution_type"],
        "retries": row["retries"],
        "retryDetails": {"user": row["retries"], "platform": 0, "resource": 0},
        "retryDelayTime": None,
        "submissionTime": row["submission_time"],
        "createdTime": row["created_time"],
        "launchedTime": row["launched_time"],
        "completedTime": row["completed_time"],
    }


def job_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "debugId": debug_id(row["name"]),
        "name": row["job_name"],
        **_status_fields(row),
        "tags": [],
        "appExitCode": row["app_exit_code"],
        "virtualCluster": row["vc"],
        "totalGpuNumber": row["total_gpu"],
        "totalTaskNumber": row["total_tasks"],
        "totalTaskRoleNumber": row["total_roles"],
        "jobPriority": None,
    }


def _ports(text: str | None) -> dict[str, str]:
    return {k: str(v) for k, v in json.loads(text or "{}").items()}


def log_path(job: str, job_attempt: int, role: str, idx: int, task_attempt: int) -> str:
    return f"/api/v2/jobs/{job}/attempts/{job_attempt}/taskRoles/{role}/taskIndex/{idx}/attempts/{task_attempt}/logs"


def task_status(job: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    state = task["state"]
    started = task["launched_time"] is not None
    code = task["exit_code"]
    return {
        "taskIndex": task["idx"],
        "taskUid": task["uid"],
        "taskState": state,
        "containerId": task["uid"] if started else None,
        "containerIp": task["container_ip"] if started else None,
        "containerNodeName": "localhost" if started else None,
        "containerPorts": _ports(task["ports"]) if started else {},
        "containerGpus": None,
        "containerLog": log_path(job["name"], job["attempt_id"], task["role"], task["idx"], task["attempt_id"]),
        "containerExitCode": code,
        "containerExitSpec": exit_spec(code),
        "containerExitDiagnostics": task["diagnostics"],
        "retries": task["retries"],
        "accountableRetries": task["retries"],
        "createdTime": task["created_time"],
        "launchedTime": task["launched_time"],
        "completedTime": task["completed_time"],
        "attemptId": task["attempt_id"],
        "attemptState": attempt_state(state),
        "currentAttemptCreatedTime": task["created_time"],
        "currentAttemptLaunchedTime": task["launched_time"],
        "currentAttemptCompletedTime": task["completed_time"],
    }


def job_detail(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    trigger = json.loads(row["trigger"]) if row["trigger"] else None
    code = row["app_exit_code"]
    diag = row["diagnostics"]
    completed = row["state"] in ("SUCCEEDED", "FAILED", "STOPPED")
    detail: dict[str, Any] = {
        "debugId": debug_id(row["name"]),
        "name": row["job_name"],
        "tags": [],
        "jobPriority": None,
        "jobStatus": {
            **_status_fields(row),
            "attemptId": row["attempt_id"],
            "attemptState": attempt_state(row["state"]) if completed or row["state"] != "WAITING" else "WAITING",
            "appId": debug_id(f"{row['name']}#{row['attempt_id']}"),
            "appProgress": 1 if completed else 0,
            "appTrackingUrl": "",
            "appCreatedTime": row["attempt_created"],
            "appLaunchedTime": row["attempt_launched"],
            "appCompletedTime": row["attempt_completed"],
            "appExitCode": code if completed else None,
            "appExitSpec": exit_spec(code) if completed else None,
            "appExitDiagnostics": diag,
            "appExitMessages": {"container": None, "runtime": None, "launcher": diag} if diag else None,
            "appExitTriggerMessage": trigger.get("message") if trigger else None,
            "appExitTriggerTaskRoleName": trigger.get("taskRoleName") if trigger else None,
            "appExitTriggerTaskIndex": trigger.get("taskIndex") if trigger else None,
            "appExitType": (exit_spec(code) or {}).get("type") if completed else None,
            "virtualCluster": row["vc"],
        },
        "taskRoles": {},
    }
    for task in store.get_tasks(row["name"]):
        role = detail["taskRoles"].setdefault(task["role"], {"taskRoleStatus": {"name": task["role"]},
                                                             "taskStatuses": []})
        role["taskStatuses"].append(task_status(row, task))
    return detail


def task_attempts(row: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """``.../taskIndex/<i>/attempts``: the task with every attempt, newest first."""
    attempts = []
    current = task_status(row, task)
    if task["launched_time"] is not None or task["state"] != "WAITING":
        attempts.append(_attempt_entry(row, task["role"], task["idx"], {
            "attemptId": task["attempt_id"], "state": task["state"], "exitCode": task["exit_code"],
            "diagnostics": task["diagnostics"], "uid": task["uid"], "ports": task["ports"],
            "created": task["created_time"], "launched": task["launched_time"], "completed": task["completed_time"],
            "jobAttemptId": row["attempt_id"]}))
    for old in reversed(json.loads(task["attempts"] or "[]")):
        if old["attemptId"] == task["attempt_id"]:
            continue
        attempts.append(_attempt_entry(row, task["role"], task["idx"], old))
    return {
        "taskIndex": task["idx"], "taskUid": task["uid"], "taskState": task["state"], "retries": task["retries"],
        "accountableRetries": task["retries"], "createdTime": current["createdTime"],
        "launchedTime": current["launchedTime"], "completedTime": current["completedTime"],
        "username": row["username"], "jobName": row["job_name"], "jobAttemptId": row["attempt_id"],
        "taskRoleName": task["role"], "attempts": attempts,
    }


def _attempt_entry(row: dict[str, Any], role: str, idx: int, a: dict[str, Any]) -> dict[str, Any]:
    started = a.get("launched") is not None
    return {
        "attemptId": a["attemptId"],
        "attemptState": attempt_state(a["state"]),
        "currentAttemptCreatedTime": a.get("created"),
        "currentAttemptLaunchedTime": a.get("launched"),
        "currentAttemptCompletedTime": a.get("completed"),
        "containerId": a.get("uid") if started else None,
        "containerIp": "127.0.0.1" if started else None,
        "containerNodeName": "localhost" if started else None,
        "containerPorts": _ports(a.get("ports")) if started else {},
        "containerGpus": None,
        "containerLog": log_path(row["name"], a.get("jobAttemptId", row["attempt_id"]), role, idx, a["attemptId"]),
        "containerExitCode": a.get("exitCode"),
        "containerExitSpec": exit_spec(a.get("exitCode")),
        "containerExitDiagnostics": a.get("diagnostics"),
    }


def event_view(job: str, ev: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime, timezone

    ts = datetime.fromtimestamp(ev["ts"] / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "uid": f"{ev['id']:016x}",
        "frameworkName": debug_id(job),
        "podUid": ev["uid"],
        "taskroleName": ev["role"],
        "taskName": f"{debug_id(job)}-{ev['role']}-{ev['idx']}" if ev["role"] else debug_id(job),
        "taskIndex": ev["idx"],
        "type": ev["type"],
        "reason": ev["reason"],
        "message": ev["message"],
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
        "sourceComponent": "pai-magic-local",
        "sourceHost": None,
    }
