"""Recurring Notebook Jobs (job definitions with a cron schedule) on OpenPAI, for real: a Jupyter
server with jupyter-scheduler and ``PaiScheduler``, the embedded backend as the cluster, the task
runner polling every second (``TaskRunner.poll_interval``), and definitions scheduled
``* * * * *`` (cron's finest step: the first run comes at the next minute boundary).

A second server on the same scheduler database starts after the definitions exist, so its task
runner loads them from the database (what a restarted server does) and fires the same ticks as
the first server's: every tick must still give ONE run and one OpenPAI job per definition. Each
run is its own ``pai-nb-`` job with the definition's parameters; pausing a definition stops its
runs; deleting one keeps its finished runs and their outputs; neither gets a run afterwards.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.notebook.conftest import need_scheduler, outputs_text, write_notebook
from tests.notebook.test_scheduler import SCHEDULER_LINE, _ended, _job, _openpai_job, _server, _until

FIRST_RUN_WAIT = 75.0   # the next minute boundary, plus the runners' poll and a loaded machine
TICK_SLACK = 5.0        # after a minute boundary: both runners (1 s polls) have had their turn
POLL = {"TaskRunner": {"poll_interval": 1}}


def _runs(jupyter, definition_id: str) -> list[dict]:
    resp = jupyter.get("scheduler/jobs", params={"job_definition_id": definition_id, "max_items": 100})
    assert resp.status_code == 200, resp.text
    return resp.json()["jobs"]


def _define(jupyter, notebook: str, parameters: dict[str, str]) -> str:
    body = {"input_uri": notebook, "runtime_environment_name": "python:3.11", "name": Path(notebook).stem,
            "output_formats": ["ipynb"], "compute_type": "CPU", "parameters": parameters,
            "schedule": "* * * * *", "timezone": "UTC"}
    resp = jupyter.post("scheduler/job_definitions", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["job_definition_id"]


def _first_run(jupyter, definition_id: str) -> dict:
    deadline = time.monotonic() + FIRST_RUN_WAIT
    while time.monotonic() < deadline:
        runs = _runs(jupyter, definition_id)
        if runs:
            return runs[0]
        time.sleep(0.5)
    pytest.fail(f"no run of definition {definition_id} within {FIRST_RUN_WAIT}s\n{jupyter.log_tail()}")


def _backend_jobs(backend, stem: str) -> list[str]:
    """The OpenPAI jobs whose names carry ``stem``, as the cluster lists them."""
    resp = requests.get(f"{backend.api}/jobs", params={"username": backend.user, "keyword": stem, "limit": 100},
                        headers=backend.headers(), timeout=30)
    resp.raise_for_status()
    body = resp.json()
    jobs = body["data"] if isinstance(body, dict) else body
    return sorted(j["name"] for j in jobs if j["name"].startswith(f"pai-nb-{stem}_"))


def _clear_of_the_next_tick(margin: float = 12.0) -> None:
    """When the next minute boundary is closer than ``margin`` s, wait until it has passed: the
    second server must be up before the first tick, or it would not fire that tick too."""
    left = 60.0 - time.time() % 60.0
    if left < margin:
        time.sleep(left + 0.5)


def _refused(proc, definition_id: str) -> bool:
    """Whether this server's task runner fired a tick that the other server's run had claimed."""
    text = proc.log_path.read_text(errors="replace")
    return f"run of job definition {definition_id} for " in text and "created by another server" in text


def _after_next_tick(since: float) -> float:
    """Seconds (wall clock) until the first minute boundary after ``since``, plus the slack."""
    boundary = (int(since) // 60 + 1) * 60
    return max(0.0, boundary + TICK_SLACK - time.time())


def test_scheduled_definition_runs_on_openpai_once_per_tick_then_pause_and_delete_stop_it(
        local_backend, tmp_path_factory):
    first = _server(local_backend, tmp_path_factory, POLL)
    second = None
    try:
        _clear_of_the_next_tick()
        write_notebook(first.notebooks / "every_minute_kept.ipynb", "print('lr is', lr)", parameters="lr = 1")
        write_notebook(first.notebooks / "every_minute_dropped.ipynb", "print('lr is', lr)", parameters="lr = 1")
        kept = _define(first, "every_minute_kept.ipynb", {"lr": "0.25"})
        dropped = _define(first, "every_minute_dropped.ipynb", {"lr": "0.5"})
        assert first.get(f"scheduler/job_definitions/{kept}").json()["schedule"] == "* * * * *"

        # a second server on the same database and staging area: its task runner reads the
        # definitions at start, as after a restart, and fires the same ticks
        data = first.root / "jupyter-data"
        shared = {"SchedulerApp": {**SCHEDULER_LINE["SchedulerApp"], "db_url": f"sqlite:///{data}/scheduler.sqlite"},
                  "PaiScheduler": {"staging_path": str(data / "scheduler_staging_area")}, **POLL}
        second = _server(local_backend, tmp_path_factory, shared)

        run = _first_run(first, kept)
        # both runners fired that tick; the one that came second created nothing
        deadline = time.monotonic() + 30
        while not (_refused(first, kept) or _refused(second, kept)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _refused(first, kept) or _refused(second, kept), second.log_tail()
        # pausing stops further runs, not the one under way
        resp = first.request("PATCH", f"scheduler/job_definitions/{kept}", json={"active": False})
        assert resp.status_code == 204, resp.text
        paused_at = time.time()
        assert first.get(f"scheduler/job_definitions/{kept}").json()["active"] is False

        run = _until(first, run["job_id"], _ended, "the end of the scheduled run")
        assert run["status"] == "COMPLETED", f"{run.get('status_message')}\n{first.log_tail()}\n{second.log_tail()}"
        name = _openpai_job(run)
        assert name.split("~")[1].startswith("pai-nb-every_minute_kept_"), name
        assert local_backend.wait(name.split("~")[1], timeout=60)["jobStatus"]["state"] == "SUCCEEDED"
        assert first.get(f"scheduler/jobs/{run['job_id']}/download_files").status_code in (200, 204)
        run = _until(first, run["job_id"], lambda j: j.get("downloaded"), "the download")
        executed = first.notebooks / next(f["file_path"] for f in run["job_files"] if f["file_format"] == "ipynb")
        assert "lr is 0.25" in outputs_text(executed), outputs_text(executed)

        drop_run = _until(first, _first_run(first, dropped)["job_id"], _ended, "the end of the other run")
        assert drop_run["status"] == "COMPLETED", f"{drop_run.get('status_message')}\n{first.log_tail()}"
        drop_name = _openpai_job(drop_run)
        assert drop_name != name and local_backend.wait(drop_name.split("~")[1], timeout=60)["jobStatus"]["state"] == "SUCCEEDED"
        dropped_runs = _runs(first, dropped)
        finished = [j for j in dropped_runs if _ended(j)]
        resp = first.request("DELETE", f"scheduler/job_definitions/{dropped}")
        assert resp.status_code == 204, resp.text
        deleted_at = time.time()
        assert first.get(f"scheduler/job_definitions/{dropped}").status_code >= 400
        for old in finished:  # the finished runs stay, with their outputs
            kept_run = _job(first, old["job_id"])
            assert kept_run["status"] == old["status"] and _openpai_job(kept_run) == _openpai_job(old)
        first.get(f"scheduler/jobs/{drop_run['job_id']}/download_files")
        drop_run = _until(first, drop_run["job_id"], lambda j: j.get("downloaded"), "the kept run's download")
        ipynb = next(f["file_path"] for f in drop_run["job_files"] if f["file_format"] == "ipynb")
        assert "lr is 0.5" in outputs_text(first.notebooks / ipynb)

        # the next tick after the pause and the delete passes, in both servers: nothing new
        time.sleep(_after_next_tick(max(paused_at, deleted_at)))
        runs = _runs(first, kept)
        assert [j for j in runs if j["create_time"] / 1000 > paused_at] == [], runs
        every = first.get("scheduler/jobs", params={"max_items": 100}).json()["jobs"]
        assert len(every) == len(runs) + len(finished), every  # nothing new for the deleted one either
        assert all(j["create_time"] / 1000 <= deleted_at for j in every), every
        for definition_id, stem, its_runs in ((kept, "every_minute_kept", runs),
                                              (dropped, "every_minute_dropped", dropped_runs)):
            # one run per tick however many runners fired it, and one OpenPAI job per run
            tokens = [j.get("idempotency_token") or "" for j in its_runs]
            assert len(set(tokens)) == len(tokens), tokens
            assert all(t.startswith(f"pai-magic-tick:{definition_id}@") for t in tokens), tokens
            assert len(_backend_jobs(local_backend, stem)) == len(its_runs), (_backend_jobs(local_backend, stem), its_runs)
    finally:
        if second is not None:
            second.stop()
        first.stop()


def _claim_when_released(db_url: str, token: str, barrier, answers) -> None:
    """One "server" (a process of its own) claiming a tick at the same moment as the others."""
    from jupyter_scheduler.orm import create_session

    from pai_magic.scheduler.recurring import claim

    session = create_session(db_url)
    barrier.wait(timeout=60)
    answers.put(claim(session, token, "definition"))


def test_a_tick_claimed_by_several_processes_at_once_is_won_by_exactly_one(tmp_path):
    """The claim itself, raced for real: processes on one sqlite database, released together.
    (In the server test the second runner's claim comes milliseconds later; here it does not.)"""
    import multiprocessing

    from pai_magic.scheduler.recurring import create_claims_table, tick_token

    db_url = f"sqlite:///{tmp_path / 'scheduler.sqlite'}"
    create_claims_table(db_url)
    create_claims_table(db_url)  # a second server starting on the same database
    ctx = multiprocessing.get_context("spawn")
    barrier, answers = ctx.Barrier(4), ctx.Queue()
    token = tick_token("definition", 1_800_000_000_000)
    procs = [ctx.Process(target=_claim_when_released, args=(db_url, token, barrier, answers)) for _ in range(4)]
    for proc in procs:
        proc.start()
    try:
        won = [answers.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
    assert sorted(won) == [False, False, False, True], won
    assert all(proc.exitcode == 0 for proc in procs)


def test_a_runner_that_missed_a_schedule_change_does_not_fire_the_old_times(tmp_path, monkeypatch):
    """Two PaiSchedulers (two servers) on one real sqlite database, in this process: a schedule
    changed through A leaves B's task runner with the old one in memory (jupyter-scheduler tells
    only the runner of the server that took the change). B's runner, due at an old time, must not
    run it; an unchanged definition due at the same time runs once, however many runners fire."""
    need_scheduler()
    from jupyter_scheduler.models import CreateJobDefinition, UpdateJobDefinition
    from jupyter_scheduler.orm import Job, create_tables
    from jupyter_scheduler.task_runner import JobDefinitionTask, UpdateJobDefinitionCache
    from traitlets.config import Config

    from pai_magic.scheduler import PaiEnvironmentManager, PaiScheduler

    for var in ("PAI_URL", "PAI_USER", "PAI_TOKEN", "PAI_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(tmp_path / "no-profile"))  # a run fails at once, submits nothing
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "changed.ipynb", "print(1)")
    write_notebook(root / "unchanged.ipynb", "print(1)")
    db_url = f"sqlite:///{tmp_path / 'scheduler.sqlite'}"
    create_tables(db_url)
    config = Config({"PaiScheduler": {"staging_path": str(tmp_path / "staging")}})
    a, b = (PaiScheduler(root_dir=str(root), environments_manager=PaiEnvironmentManager(), db_url=db_url,
                         config=config) for _ in range(2))

    def define(notebook: str) -> str:
        return a.create_job_definition(CreateJobDefinition(
            input_uri=notebook, runtime_environment_name="python:3.11", name=notebook, output_formats=["ipynb"],
            schedule="* * * * *", timezone="UTC"))

    changed, unchanged = define("changed.ipynb"), define("unchanged.ipynb")
    b.task_runner.populate_cache()  # B started after both existed, then A takes the change alone
    a.update_job_definition(changed, UpdateJobDefinition(schedule="0 0 1 1 *", timezone="UTC"))
    tick = (int(time.time()) // 60 - 1) * 60 * 1000  # a past minute: due now under "* * * * *"
    assert time.gmtime(tick / 1000)[1:3] != (1, 1), "pick another tick: this one is on the new schedule too"
    for runner in (b.task_runner, a.task_runner):  # the same tick, fired by both servers
        for definition_id in (changed, unchanged):
            runner.cache.update(definition_id, UpdateJobDefinitionCache(next_run_time=tick))
            runner.queue.push(JobDefinitionTask(job_definition_id=definition_id, next_run_time=tick))
        runner.process_queue()

    with a.db_session() as session:
        rows = [(j.job_definition_id, j.idempotency_token, j.pid) for j in session.query(Job)]
    import psutil

    for _, _, pid in rows:  # each run ends at once (no profile here): nothing outlives the test
        try:
            psutil.Process(pid).wait(timeout=120)
        except psutil.NoSuchProcess:
            pass
    assert [(d, t) for d, t, _ in rows] == [(unchanged, f"pai-magic-tick:{unchanged}@{tick}")], rows
