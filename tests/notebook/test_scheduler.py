"""JupyterLab's Notebook Jobs on OpenPAI, through a real Jupyter server with jupyter-scheduler
and ``c.SchedulerApp.scheduler_class = "pai_magic.scheduler.PaiScheduler"``, the embedded backend
as the cluster: the environments carry OpenPAI compute types; a job created over the REST API
reaches COMPLETED and its executed notebook downloads into the Notebook Jobs list; a running job
stopped over the REST API ends STOPPED, and so does its OpenPAI job; our notebook route answers."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest

from pai_magic.core.profiles import Profile, save_profile
from tests.notebook.conftest import need_scheduler, outputs_text, python_without_nbclient, write_notebook
from tests.server.jupyter_process import JupyterProcess

WAIT = 240.0
SCHEDULER_LINE = {"SchedulerApp": {"scheduler_class": "pai_magic.scheduler.PaiScheduler"}}


def _server(local_backend, tmp_path_factory, extra: dict | None = None):
    need_scheduler()
    root = tmp_path_factory.mktemp("sched")
    pai_config, pai_data, home = root / "pai-config", root / "pai-data", root / "home"
    home.mkdir()
    with mock.patch.dict(os.environ, {"PAI_MAGIC_CONFIG_DIR": str(pai_config)}):
        save_profile(Profile(name="local", url=local_backend.url, user=local_backend.user,
                             token=local_backend.token))
    proc = JupyterProcess(root / "server", pai_config, extra_config={**SCHEDULER_LINE, **(extra or {})},
                          env={"PAI_MAGIC_DATA_DIR": str(pai_data), "HOME": str(home)})
    proc.start()
    proc.notebooks = root / "server" / "notebooks"  # type: ignore[attr-defined]
    proc.pai_data = pai_data  # type: ignore[attr-defined]
    return proc


@pytest.fixture(scope="module")
def jupyter(local_backend, tmp_path_factory):
    proc = _server(local_backend, tmp_path_factory)
    yield proc
    proc.stop()


def _job(jupyter, job_id):
    resp = jupyter.get(f"scheduler/jobs/{job_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def _until(jupyter, job_id, predicate, what):
    deadline = time.monotonic() + WAIT
    job = {}
    while time.monotonic() < deadline:
        job = _job(jupyter, job_id)
        if predicate(job):
            return job
        time.sleep(0.5)
    pytest.fail(f"{what} not reached: {job}\n{jupyter.log_tail()}")


def _create(jupyter, notebook: str, **extra):
    body = {"input_uri": notebook, "runtime_environment_name": "python:3.11", "name": Path(notebook).stem,
            "output_formats": ["ipynb", "html"], "compute_type": "CPU", **extra}
    resp = jupyter.post("scheduler/jobs", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["job_id"]


def _ended(job) -> bool:
    """A new job reads STOPPED until its process marks it IN_PROGRESS (start_time set)."""
    return job["status"] in ("COMPLETED", "FAILED") or (job["status"] == "STOPPED" and bool(job.get("start_time")))


def _openpai_job(job) -> str:
    message = job.get("status_message") or ""
    assert "OpenPAI" in message, job
    return next(word for word in message.replace(":", " ").split() if "~pai-nb-" in word)


def test_environments_offer_openpai_compute_types(jupyter):
    envs = jupyter.get("scheduler/runtime_environments").json()
    assert envs and all(e["compute_types"][:2] == ["CPU", "1 GPU"] for e in envs), envs
    assert envs[0]["default_compute_type"] == "CPU" and envs[0]["label"].startswith("OpenPAI")


def test_job_completes_and_executed_notebook_downloads(jupyter, local_backend):
    write_notebook(jupyter.notebooks / "sched.ipynb", "print('lr is', lr)", parameters="lr = 1")
    job_id = _create(jupyter, "sched.ipynb", parameters={"lr": "0.5"})
    job = _until(jupyter, job_id, _ended, "the end")
    assert job["status"] == "COMPLETED", job
    name = _openpai_job(job)
    assert local_backend.job(name.split("~")[1])["jobStatus"]["state"] == "SUCCEEDED"
    resp = jupyter.get(f"scheduler/jobs/{job_id}/download_files")
    assert resp.status_code in (200, 204), resp.text
    job = _until(jupyter, job_id, lambda j: j.get("downloaded"), "the download")
    files = {f["file_format"]: f["file_path"] for f in job["job_files"]}
    executed = jupyter.notebooks / files["ipynb"]
    assert "lr is 0.5" in outputs_text(executed)
    assert (jupyter.notebooks / files["html"]).read_text().count("lr is 0.5") >= 1
    # the sidebar's route finds the same run by its OpenPAI name
    answer = jupyter.get(f"pai-magic/api/jobs/{name}/notebook")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "SUCCEEDED" and body["failed_cell"] is None
    assert body["absolute_path"].endswith(".ipynb") and "lr is 0.5" in outputs_text(body["absolute_path"])
    missing = jupyter.get(f"pai-magic/api/jobs/{local_backend.user}~pai-nb-nothing_here/notebook")
    assert missing.status_code == 404 and missing.json()["error"]


def test_stop_a_running_job_stops_the_openpai_job(jupyter, local_backend):
    write_notebook(jupyter.notebooks / "long.ipynb", "print('first cell ran', flush=True)",
                   "import time\ntime.sleep(300)")
    job_id = _create(jupyter, "long.ipynb")
    job = _until(jupyter, job_id, lambda j: "cell 2 of 2" in (j.get("status_message") or ""), "cell 2 running")
    name = _openpai_job(job)
    resp = jupyter.request("PATCH", f"scheduler/jobs/{job_id}", json={"status": "STOPPED"})
    assert resp.status_code in (200, 204), resp.text
    job = _until(jupyter, job_id, _ended, "STOPPED")
    assert job["status"] == "STOPPED", job
    assert local_backend.wait(name.split("~")[1], timeout=60)["jobStatus"]["state"] == "STOPPED"
    jupyter.get(f"scheduler/jobs/{job_id}/download_files")
    job = _until(jupyter, job_id, lambda j: j.get("downloaded"), "the download")
    ipynb = next(f["file_path"] for f in job["job_files"] if f["file_format"] == "ipynb")
    assert "first cell ran" in outputs_text(jupyter.notebooks / ipynb)


def test_deleting_a_running_job_stops_its_openpai_job(jupyter, local_backend):
    write_notebook(jupyter.notebooks / "doomed.ipynb", "import time\ntime.sleep(300)")
    job_id = _create(jupyter, "doomed.ipynb")
    job = _until(jupyter, job_id, lambda j: "cell 1 of 1" in (j.get("status_message") or ""), "cell 1 running")
    name = _openpai_job(job)
    resp = jupyter.request("DELETE", f"scheduler/jobs/{job_id}")
    assert resp.status_code == 204, resp.text
    assert local_backend.wait(name.split("~")[1], timeout=60)["jobStatus"]["state"] == "STOPPED"


def test_job_that_cannot_start_fails_with_the_reason_and_its_openpai_job_ends(local_backend, tmp_path_factory):
    """Images whose Python lacks nbclient (here: Debian's /usr/bin/python3 as the images' Python)."""
    python = python_without_nbclient()
    proc = _server(local_backend, tmp_path_factory, {"PaiScheduler": {"python": python}})
    try:
        write_notebook(proc.notebooks / "nodeps.ipynb", "print('never')")
        job_id = _create(proc, "nodeps.ipynb")
        job = _until(proc, job_id, _ended, "the end")
        assert job["status"] == "FAILED", job
        assert "lacks nbformat, nbclient, ipykernel" in job["status_message"], job["status_message"]
        assert "c.PaiScheduler.install_deps = True" in job["status_message"]
        name = _openpai_job(job)
        assert local_backend.wait(name.split("~")[1], timeout=60)["jobStatus"]["state"] == "FAILED"
    finally:
        proc.stop()


def test_a_job_waiting_for_resources_past_the_start_timeout_fails_saying_so(one_gpu_backend, tmp_path_factory):
    """A full cluster for real: the backend counts one GPU and another job holds it, so the run's
    OpenPAI job waits; past c.PaiScheduler.start_timeout it is stopped and the Notebook Job
    fails with that reason, not after 30 minutes nor never."""
    from tests.integration.test_local_gpus import hold_the_gpu, stop_job

    holder = hold_the_gpu(one_gpu_backend)
    proc = _server(one_gpu_backend, tmp_path_factory, {"PaiScheduler": {"start_timeout": 5}})
    try:
        write_notebook(proc.notebooks / "on_gpu.ipynb", "print('never')")
        job_id = _create(proc, "on_gpu.ipynb", compute_type="1 GPU")
        job = _until(proc, job_id, _ended, "the end")
        assert job["status"] == "FAILED", job
        assert "the task did not start within 5 s; the job was stopped" in job["status_message"], job
        name = _openpai_job(job).split("~")[1]
        assert one_gpu_backend.wait(name, timeout=60)["jobStatus"]["state"] == "STOPPED"
    finally:
        proc.stop()
        stop_job(one_gpu_backend, holder)


def test_progress_written_while_the_scheduler_database_is_locked_still_arrives(jupyter, local_backend):
    """A real fault, not a fake: another connection holds the scheduler's sqlite database (as a
    busy Jupyter server may on a loaded machine) when the run moves to its last cell, for longer
    than SQLAlchemy's default 5 s. The progress write waits for the lock (the scheduler's
    sessions wait up to 60 s, pai_magic.scheduler.database; a write that still fails is kept and
    retried); the status must say "cell 2 of 2" once the lock is gone, although the runner's
    status does not change again for the rest of the long cell, and the job must not fail."""
    gate = Path(tempfile.mkdtemp(prefix="pai-sched-gate-"))
    gate.chmod(0o777)  # the task runs as an unprivileged user
    try:
        write_notebook(jupyter.notebooks / "gated.ipynb",
                       f"import os, time\nwhile not os.path.exists({str(gate / 'go')!r}):\n    time.sleep(0.1)",
                       f"open({str(gate / 'in-cell-2')!r}, 'w').close()\nimport time\ntime.sleep(300)")
        job_id = _create(jupyter, "gated.ipynb")
        _until(jupyter, job_id, lambda j: "cell 1 of 2" in (j.get("status_message") or ""), "cell 1 running")
        db = sqlite3.connect(jupyter.root / "jupyter-data" / "scheduler.sqlite", timeout=30)
        try:
            db.execute("BEGIN EXCLUSIVE")
            (gate / "go").touch()
            deadline = time.monotonic() + WAIT
            while not (gate / "in-cell-2").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert (gate / "in-cell-2").exists(), "cell 2 never started"
            # longer than the driver's default busy timeout (5 s) plus the follower's poll
            time.sleep(8.0)
        finally:
            db.rollback()
            db.close()
        job = _until(jupyter, job_id, lambda j: "cell 2 of 2" in (j.get("status_message") or ""), "cell 2 running")
        assert job["status"] == "IN_PROGRESS", job
        resp = jupyter.request("PATCH", f"scheduler/jobs/{job_id}", json={"status": "STOPPED"})
        assert resp.status_code in (200, 204), resp.text
        assert _until(jupyter, job_id, _ended, "STOPPED")["status"] == "STOPPED"
    finally:
        shutil.rmtree(gate, ignore_errors=True)


def test_parameters_without_a_parameters_cell_complete_with_the_warning(jupyter, local_backend):
    """The job still runs; its final status message ends with the core's warning (once), and the
    sidebar's notebook route answers it in ``warnings``."""
    write_notebook(jupyter.notebooks / "untagged.ipynb", "lr = 1\nprint('lr is', lr)")
    job_id = _create(jupyter, "untagged.ipynb", parameters={"lr": "0.5"})
    job = _until(jupyter, job_id, _ended, "the end")
    assert job["status"] == "COMPLETED", job
    message = job["status_message"]
    assert message.count("no cell tagged `parameters`") == 1 and "warning: untagged.ipynb has no cell" in message, job
    name = _openpai_job(job)
    from tests.server.conftest import CheckedJupyter

    answer = CheckedJupyter(jupyter).get(f"jobs/{name}/notebook")  # validated against server/openapi.yaml
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "SUCCEEDED" and len(body["warnings"]) == 1, body
    assert body["warnings"][0] in message and "lr is 1" in outputs_text(body["absolute_path"])


def test_a_parameter_name_the_core_refuses_is_refused_at_create_and_nothing_exists(jupyter, local_backend):
    """The dialog shows the core's one line; no job, no definition, no run (the status code is
    jupyter-scheduler's: its handlers answer every SchedulerError with 500)."""
    write_notebook(jupyter.notebooks / "named.ipynb", "print(x)", parameters="x = 1")
    before = _recorded_runs(jupyter)
    jobs_before = jupyter.get("scheduler/jobs", params={"max_items": 1000}).json()["jobs"]
    definitions_before = jupyter.get("scheduler/job_definitions").json()["job_definitions"]
    body = {"input_uri": "named.ipynb", "runtime_environment_name": "python:3.11", "name": "named",
            "output_formats": ["ipynb"], "compute_type": "CPU", "parameters": {"not a name": "1"}}
    for path, extra in (("scheduler/jobs", {}), ("scheduler/job_definitions", {"schedule": "0 0 * * *"})):
        resp = jupyter.post(path, json={**body, **extra})
        assert resp.status_code >= 400, resp.text
        message = resp.json()["message"]
        assert "'not a name' is not a Python name" in message and "\n" not in message.strip(), message
    assert jupyter.get("scheduler/jobs", params={"max_items": 1000}).json()["jobs"] == jobs_before
    assert jupyter.get("scheduler/job_definitions").json()["job_definitions"] == definitions_before
    assert _recorded_runs(jupyter) == before  # nothing was submitted


def _recorded_runs(jupyter) -> set:
    """The runs the server's processes recorded (core.notebook.results' index in their data dir)."""
    index = jupyter.pai_data / "notebook-runs.json"
    return set(json.loads(index.read_text())["runs"]) if index.exists() else set()


def test_run_with_input_folder_reads_the_files_beside_the_notebook(jupyter, local_backend):
    """The dialog's "Run job with input folder": jupyter-scheduler copies the notebook's folder
    into staging; before, only the notebook reached the OpenPAI task and `open('data.csv')` failed."""
    (jupyter.notebooks / "withdata" / "conf").mkdir(parents=True)
    (jupyter.notebooks / "withdata" / "data.csv").write_text("x\n7\n")
    (jupyter.notebooks / "withdata" / "conf" / "c.txt").write_text("deep\n")
    write_notebook(jupyter.notebooks / "withdata" / "reads.ipynb",
                   "print('got', open('data.csv').read().split(), open('conf/c.txt').read().strip())",
                   "import os\nos.makedirs('plots', exist_ok=True)\nopen('plots/loss.txt', 'w').write('0.25')")
    job_id = _create(jupyter, "withdata/reads.ipynb", output_formats=["ipynb"])  # without the folder
    job = _until(jupyter, job_id, _ended, "the end")
    assert job["status"] == "FAILED" and "FileNotFoundError" in job["status_message"], job
    assert "Run job with input folder" in job["status_message"] and "--file" not in job["status_message"], job
    job_id = _create(jupyter, "withdata/reads.ipynb", package_input_folder=True, output_formats=["ipynb"])
    job = _until(jupyter, job_id, _ended, "the end")
    assert job["status"] == "COMPLETED", job
    assert jupyter.get(f"scheduler/jobs/{job_id}/download_files").status_code in (200, 204)
    job = _until(jupyter, job_id, lambda j: j.get("downloaded"), "the download")
    files = {f["file_format"]: f["file_path"] for f in job["job_files"]}
    assert "got ['x', '7'] deep" in outputs_text(jupyter.notebooks / files["ipynb"])
    # what the notebook wrote downloads beside the executed copy, as jupyter-scheduler's own runs do
    assert "plots/loss.txt" in job["packaged_files"], job
    written = jupyter.notebooks / Path(files["ipynb"]).parent / "plots" / "loss.txt"
    deadline = time.monotonic() + 30  # the download runs in its own process
    while not written.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert written.read_text() == "0.25"
    assert "1 file the notebook wrote came back beside it: plots/loss.txt" in job["status_message"], job
