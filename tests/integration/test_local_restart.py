"""The backend dies mid-job (SIGKILL) and comes back: nothing lost, the running job FAILED."""
from __future__ import annotations

import os
import time
from pathlib import Path

import requests

from pai_magic.core.protocol import unique_job_name
from tests.fixtures.services import wait_for_file

T = 10


def job(name: str, commands: list[str]) -> dict:
    return {"protocolVersion": 2, "name": name, "type": "job",
            "prerequisites": [{"name": "i", "type": "dockerimage", "uri": "ubuntu:22.04"}],
            "taskRoles": {"main": {"instances": 1, "dockerImage": "i",
                                   "resourcePerInstance": {"cpu": 1, "memoryMB": 64, "gpu": 0},
                                   "commands": commands}}}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, OSError):
        return False


def test_sigkill_mid_job_then_restart(fresh_local_backend, tmp_path):
    b = fresh_local_backend
    done = unique_job_name("done")
    assert b.submit(job(done, ["echo finished-before"])).status_code == 202
    assert b.wait(done)["jobStatus"]["state"] == "SUCCEEDED"
    running = unique_job_name("running")
    pidfile = tmp_path / "pid"
    assert b.submit(job(running, [f"echo $$ > {pidfile}", "echo started", "sleep 300"])).status_code == 202
    b.wait(running, ("RUNNING",))
    pid = int(wait_for_file(pidfile))
    assert alive(pid)
    port = b.port

    b.kill()  # SIGKILL: the backend runs no cleanup at all
    assert alive(pid), "the task outlives its backend until the restart"
    b.start()
    assert b.port == port

    detail = b.job(running)
    status = detail["jobStatus"]
    assert status["state"] == "FAILED"
    assert "the embedded backend stopped while the job ran" in status["appExitDiagnostics"]
    assert status["completedTime"] is not None
    task = detail["taskRoles"]["main"]["taskStatuses"][0]
    assert task["taskState"] == "FAILED" and "embedded backend stopped" in task["containerExitDiagnostics"]
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "the restarted backend ends the orphaned task"
    # the log written before the crash is still served
    assert b.log_text(running, "main") == "started\n"

    # everything else is intact: the finished job, its logs, the name reservation, the tokens
    assert b.job(done)["jobStatus"]["state"] == "SUCCEEDED"
    assert b.log_text(done, "main") == "finished-before\n"
    assert b.submit(job(done, ["true"])).status_code == 409
    listed = requests.get(f"{b.api}/jobs", params={"withTotalCount": "true"}, headers=b.headers(), timeout=T).json()
    assert listed["totalCount"] == 2
    # and the restarted backend runs new jobs
    after = unique_job_name("after")
    assert b.submit(job(after, ["true"])).status_code == 202
    assert b.wait(after)["jobStatus"]["state"] == "SUCCEEDED"


def test_graceful_stop_ends_running_jobs_as_interrupted(fresh_local_backend, tmp_path):
    b = fresh_local_backend
    name = unique_job_name("graceful")
    pidfile = tmp_path / "pid"
    assert b.submit(job(name, [f"echo $$ > {pidfile}", "sleep 300"])).status_code == 202
    b.wait(name, ("RUNNING",))
    pid = int(wait_for_file(pidfile))
    b.stop()  # SIGTERM
    assert not alive(pid)
    assert not (b.data_dir / "server.json").exists()
    b.start()
    status = b.job(name)["jobStatus"]
    assert status["state"] == "FAILED" and "embedded backend stopped" in status["appExitDiagnostics"]


def test_find_running_and_server_json(fresh_local_backend):
    from pai_magic.local import find_running

    b = fresh_local_backend
    assert find_running(b.data_dir) == b.url
    b.kill()
    assert find_running(b.data_dir) is None  # server.json is left behind by a crash, the pid is gone
