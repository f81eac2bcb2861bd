"""The embedded backend brings a job's recorded state in line with its processes.

Ways a job's record can say it is active while none of its processes runs, each produced for
real against a backend serving real HTTP on loopback:

- a task's parent process (the shim) is killed from outside the backend (``kill -9`` on the
  process group its Started event names, or the OOM killer): its task's processes, in their
  own session, must not run on unsupervised and hold the job RUNNING through the pipes;
- the store says otherwise than the processes: a second writer on the same sqlite file (a
  restored copy, another process; WAL lets one write while the backend serves) puts a job that
  ended, or that was being stopped, back into an active state. The reconciler
  (``Runner.reconcile`` every RECONCILE_SECONDS on its own thread) finalizes it from what the
  store knows, with a reason the user can read through the REST API;
- the backend dies (SIGKILL) while the user is stopping a job: ``recover()`` at the next start
  over the same data dir ends it the way the stop would have.
"""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin

import pytest
import requests
import yaml

from pai_magic.core.protocol import unique_job_name
from pai_magic.local import runner as runner_module
from pai_magic.local.server import ServerHandle, start_in_thread
from tests.fixtures.local_backend import LocalBackendProcess
from tests.integration.test_local_jobs import simple_job

T = 30
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class Api:
    """The backend (in this process, so a test can reach its runner) and a REST session."""

    def __init__(self, handle: ServerHandle, user: str, password: str) -> None:
        self.handle, self.api, self.user = handle, handle.api, user
        resp = requests.post(f"{self.api}/authn/basic/login", json={"username": user, "password": password},
                             timeout=T)
        resp.raise_for_status()
        self.headers = {"Authorization": f"Bearer {resp.json()['token']}"}

    def submit(self, name: str, commands: list[str]) -> None:
        resp = requests.post(f"{self.api}/jobs", data=yaml.safe_dump(simple_job(name, commands)).encode(), timeout=T,
                             headers={**self.headers, "Content-Type": "text/yaml"})
        assert resp.status_code == 202, resp.text

    def job(self, name: str) -> dict:
        resp = requests.get(f"{self.api}/jobs/{self.user}~{name}", headers=self.headers, timeout=T)
        resp.raise_for_status()
        return resp.json()

    def events(self, name: str) -> list[dict]:
        resp = requests.get(f"{self.api}/jobs/{self.user}~{name}/events", headers=self.headers, timeout=T)
        resp.raise_for_status()
        return resp.json()["data"]

    def stderr(self, name: str) -> str:
        """The task's stderr, found the way a client finds it (log locations, then the link)."""
        url = f"{self.api}/jobs/{self.user}~{name}/attempts/0/taskRoles/main/taskIndex/0/attempts/0/logs"
        resp = requests.get(url, headers=self.headers, timeout=T)
        resp.raise_for_status()
        uri = {loc["name"]: loc["uri"] for loc in resp.json()["locations"]}["stderr"]
        return requests.get(urljoin(self.handle.url + "/", uri), timeout=T).text

    def wait(self, name: str, states: tuple[str, ...] = TERMINAL, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        detail: dict = {}
        while time.monotonic() < deadline:
            detail = self.job(name)
            if detail["jobStatus"]["state"] in states:
                return detail
            time.sleep(0.05)
        raise AssertionError(f"job {name} not in {states} after {timeout}s: {detail.get('jobStatus')}")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with pytest.MonkeyPatch.context() as mp:
        # the reconciler's round, shortened so a test waits for the real loop, not 5 s a case
        mp.setattr(runner_module, "RECONCILE_SECONDS", 0.2)
        password = "reconcile-pass-1"
        handle = start_in_thread(tmp_path_factory.mktemp("reconcile") / "data", users={"tester": password})
        try:
            yield Api(handle, "tester", password)
        finally:
            handle.stop()


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def wait_for_pids(path: Path, count: int, timeout: float = T) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(x) for x in path.read_text().split()] if path.exists() else []
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"the job did not write {count} pids into {path}")


def task_status(detail: dict) -> dict:
    return detail["taskRoles"]["main"]["taskStatuses"][0]


def test_a_task_whose_parent_is_killed_from_outside_ends_its_job_with_the_reason(backend, tmp_path):
    """Before: the task's commands (their own session, below the shim) ran on as orphans, the
    job stayed RUNNING as long as they held its output pipe, and a STOP could not end them."""
    b = backend
    pidfile = tmp_path / "pids"
    name = unique_job_name("outside-kill")
    b.submit(name, [f"echo $$ >> {pidfile}", f"sleep 300 & echo $! >> {pidfile}", "wait"])
    b.wait(name, ("RUNNING",))
    pids = wait_for_pids(pidfile, 2)
    b.handle.backend.runner.reconcile()  # a healthy running job is left alone
    assert b.job(name)["jobStatus"]["state"] == "RUNNING"

    started = next(e["message"] for e in b.events(name) if e["reason"] == "Started")
    group = int(re.search(r"process group (\d+)", started).group(1))  # type: ignore[union-attr]
    os.killpg(group, signal.SIGKILL)  # what `kill -9 -<pgid>` from a shell does

    detail = b.wait(name)
    status, task = detail["jobStatus"], task_status(detail)
    assert (status["state"], status["appExitCode"], task["taskState"], task["containerExitCode"]) == (
        "FAILED", 137, "FAILED", 137), (status, task)
    reason = task["containerExitDiagnostics"]
    assert "SIGKILL" in reason and "from outside" in reason and "\n" not in reason, reason
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), [p for p in pids if alive(p)]  # nothing of the task runs on


def test_a_task_whose_main_process_is_killed_says_so_in_its_last_stderr_line(backend, tmp_path):
    """The shim stays: it ends the rest of the task and exits 137 like the container would, and
    says why, or 137 reads as the commands' own exit code (faces show the last stderr line)."""
    b = backend
    pidfile = tmp_path / "pid"
    name = unique_job_name("main-killed")
    b.submit(name, [f"echo $$ > {pidfile}", "echo working >&2", "sleep 300"])
    b.wait(name, ("RUNNING",))
    os.kill(wait_for_pids(pidfile, 1)[0], signal.SIGKILL)
    detail = b.wait(name)
    assert (detail["jobStatus"]["state"], task_status(detail)["containerExitCode"]) == ("FAILED", 137), detail
    lines = b.stderr(name).splitlines()
    assert lines[0] == "working" and lines[-1] == (
        "pai-magic local: the task's main process was killed by SIGKILL (out of memory, or a kill from outside "
        "the job?); exit code 137"), lines


def _rewrite(data_dir: Path, framework: str, job: dict, tasks: dict | None = None) -> None:
    """Change a job's (and its tasks') record as a second writer of the store does: its own
    connection, one transaction."""
    db = sqlite3.connect(str(data_dir / "backend.sqlite"), timeout=T, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in job)} WHERE name = ?", [*job.values(), framework])
        if tasks:
            db.execute(f"UPDATE tasks SET {', '.join(f'{k} = ?' for k in tasks)} WHERE job = ?",
                       [*tasks.values(), framework])
        db.execute("COMMIT")
    finally:
        db.close()


RUNNING_AGAIN = {"state": "RUNNING", "completed_time": None, "app_exit_code": None, "diagnostics": None,
                 "trigger": None, "attempt_completed": None}


def test_a_job_recorded_running_with_its_tasks_but_no_process_is_failed_with_the_reason(backend):
    b = backend
    name = unique_job_name("lost")
    b.submit(name, ["echo done"])
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    # the record says the job and its task run; no process of it does
    _rewrite(b.handle.data_dir, f"{b.user}~{name}", RUNNING_AGAIN,
             {"state": "RUNNING", "exit_code": None, "diagnostics": None, "completed_time": None, "pid": 2 ** 22 + 1})
    detail = b.wait(name)
    status, task = detail["jobStatus"], task_status(detail)
    assert (status["state"], status["appExitCode"]) == ("FAILED", -1), status
    lost = "the embedded backend lost track of the job's tasks (see its log)"
    assert status["appExitTriggerMessage"] == lost and status["appExitDiagnostics"].startswith(lost), status
    assert status["completedTime"] is not None
    assert (task["taskState"], task["containerExitCode"], task["containerExitDiagnostics"]) == (
        "STOPPED", -220, lost), task


def test_a_job_recorded_running_whose_tasks_all_ended_gets_the_outcome_they_give(backend):
    b = backend
    name = unique_job_name("ended")
    b.submit(name, ["echo done"])
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    _rewrite(b.handle.data_dir, f"{b.user}~{name}", RUNNING_AGAIN)  # the job's end was not recorded
    detail = b.wait(name)
    status, task = detail["jobStatus"], task_status(detail)
    assert (status["state"], status["appExitCode"]) == ("SUCCEEDED", 0), status
    assert status["appExitTriggerMessage"] == ("SucceededTaskCount 1 has reached MinSucceededTaskCount 1 "
                                               "in the TaskRole main"), status
    assert (task["taskState"], task["containerExitCode"]) == ("SUCCEEDED", 0), task  # the task's record stays


def test_a_job_recorded_stopping_with_no_process_is_stopped_as_the_user_asked(backend):
    b = backend
    name = unique_job_name("stopping")
    b.submit(name, ["echo done"])
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    _rewrite(b.handle.data_dir, f"{b.user}~{name}", {**RUNNING_AGAIN, "state": "STOPPING", "execution_type": "STOP"})
    detail = b.wait(name)
    status = detail["jobStatus"]
    assert (status["state"], status["appExitCode"], status["executionType"]) == ("STOPPED", -210, "STOP"), status
    assert status["appExitTriggerMessage"] == "Stop to complete current job attempt: user requested", status


def test_the_reconciler_waits_while_a_bookkeeping_write_is_retried(backend):
    """While a write is being retried (a full disk: test_local_hardening's full-disk test makes
    a real one) a sweep would race it, so none happens. FAKE: the pending retry is registered
    by hand; a real one needs the disk to fill or sqlite to stay locked past its 30 s timeout."""
    b = backend
    runner = b.handle.backend.runner
    name = unique_job_name("held")
    b.submit(name, ["echo done"])
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    with runner._pending_lock:
        runner._pending.add("a fake pending write")
    try:
        _rewrite(b.handle.data_dir, f"{b.user}~{name}", RUNNING_AGAIN)
        runner.reconcile()
        assert b.job(name)["jobStatus"]["state"] == "RUNNING"
    finally:
        with runner._pending_lock:
            runner._pending.discard("a fake pending write")
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"  # the loop's next round does it


# -- a restart over the same data dir ------------------------------------------------------

def test_jobs_the_user_was_stopping_when_the_backend_died_end_stopped_at_the_restart(tmp_path):
    """recover() at the next start ends the jobs the dead backend left active; one the user had
    asked to stop ends STOPPED as the stop would have, also when it had not reached STOPPING
    yet (before: FAILED, 'the embedded backend stopped while the job ran')."""
    b = LocalBackendProcess(tmp_path / "data")
    b.start()
    try:
        stubborn, queued = unique_job_name("stubborn"), unique_job_name("queued")
        pidfile = tmp_path / "pids"
        # ignores the STOP's SIGTERM: it stays STOPPING for the shim's grace period
        assert b.submit(simple_job(stubborn, ["trap '' TERM", f"echo $$ >> {pidfile}", "sleep 300 & wait"])).status_code == 202
        assert b.submit(simple_job(queued, ["echo done"])).status_code == 202
        b.wait(stubborn, ("RUNNING",))
        assert b.wait(queued)["jobStatus"]["state"] == "SUCCEEDED"
        pids = wait_for_pids(pidfile, 1)
        resp = requests.put(f"{b.api}/jobs/{b.user}~{stubborn}/executionType", json={"value": "STOP"},
                            headers=b.headers(), timeout=T)
        assert resp.status_code == 202 and b.job(stubborn)["jobStatus"]["state"] == "STOPPING"
        b.kill()  # SIGKILL mid-stop: the backend records nothing more
        # and a job that was still queued when its stop was asked for (what stop() writes first)
        _rewrite(b.data_dir, f"{b.user}~{queued}", {**RUNNING_AGAIN, "state": "WAITING", "execution_type": "STOP",
                                                    "launched_time": None},
                 {"state": "WAITING", "exit_code": None, "completed_time": None, "launched_time": None})
        b.start()
        for name in (stubborn, queued):
            status = b.job(name)["jobStatus"]
            assert (status["state"], status["appExitCode"], status["executionType"]) == ("STOPPED", -210, "STOP"), (
                name, status)
            assert status["appExitDiagnostics"].startswith("Stop to complete current job attempt: user requested")
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids)
    finally:
        b.stop()
