"""A full cluster, for real: the embedded backend started with ``--gpus 1`` counts one GPU (none
is real), so a second job asking for it WAITS until the first ends, as on OpenPAI. That is what
makes a kernel's "waiting for resources" phase and its start timeout real here: the kernel's job
waits in the backend, over real HTTP and SSH, not in a fake."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
import requests

from pai_magic.core.errors import PaiTimeoutError
from tests.fixtures.local_backend import LocalBackendProcess
from tests.integration.test_local_jobs import simple_job


def _gpu_job(name: str, commands: list[str], gpu: int = 1) -> dict:
    return simple_job(name, commands, resourcePerInstance={"cpu": 1, "memoryMB": 256, "gpu": gpu})


def stop_job(backend: LocalBackendProcess, name: str) -> None:
    """PUT executionType STOP, as the portal's Stop does."""
    resp = requests.put(f"{backend.api}/jobs/{backend.user}~{name}/executionType", json={"value": "STOP"},
                        headers=backend.headers(), timeout=30)
    assert resp.status_code == 202, resp.text


def cli_on(backend: LocalBackendProcess, home: Any, monkeypatch: pytest.MonkeyPatch) -> LocalBackendProcess:
    """The CLI's profile from PAI_* variables, on ``backend`` (what CI and scripts use)."""
    monkeypatch.setenv("HOME", str(home))
    for var, value in (("PAI_URL", backend.url), ("PAI_USER", backend.user), ("PAI_TOKEN", backend.token)):
        monkeypatch.setenv(var, value)
    return backend


def hold_the_gpu(backend: LocalBackendProcess) -> str:
    """A job that holds the one GPU until stopped."""
    name = f"hold_{uuid.uuid4().hex[:6]}"
    assert backend.submit(_gpu_job(name, ["sleep 300"])).status_code == 202
    backend.wait(name, ("RUNNING",), timeout=30)
    return name


def test_a_job_waits_for_the_gpu_another_holds_and_runs_once_it_is_freed(one_gpu_backend):
    holder = hold_the_gpu(one_gpu_backend)
    second = f"second_{uuid.uuid4().hex[:6]}"
    cpu_only = f"cpu_{uuid.uuid4().hex[:6]}"
    try:
        assert one_gpu_backend.submit(_gpu_job(second, ["echo second ran"])).status_code == 202
        assert one_gpu_backend.submit(_gpu_job(cpu_only, ["echo cpu ran"], gpu=0)).status_code == 202
        assert one_gpu_backend.wait(cpu_only, timeout=60)["jobStatus"]["state"] == "SUCCEEDED"  # needs no GPU: not queued
        assert one_gpu_backend.job(second)["jobStatus"]["state"] == "WAITING"
        vc = requests.get(f"{one_gpu_backend.api}/virtual-clusters/default", headers=one_gpu_backend.headers(), timeout=30).json()
        assert vc["resourcesTotal"]["GPUs"] == 1 and vc["resourcesUsed"]["GPUs"] == 1, vc
    finally:
        stop_job(one_gpu_backend, holder)
    detail = one_gpu_backend.wait(second, timeout=60)
    assert detail["jobStatus"]["state"] == "SUCCEEDED", detail["jobStatus"]
    assert "second ran" in one_gpu_backend.log_text(second, "main")
    assert "it held 1 of the 1 GPU(s) the embedded backend counts, none real" in \
        detail["jobStatus"]["appExitDiagnostics"]


def test_a_kernel_waits_for_resources_and_its_start_timeout_stops_its_job(one_gpu_backend, tmp_path, monkeypatch):
    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import Profile
    from pai_magic.kernel.job import KernelJob
    from pai_magic.kernel.spec import KernelSettings

    monkeypatch.setenv("HOME", str(tmp_path))  # pai_magic makes its own SSH key here
    settings = KernelSettings(image="python:3.11", gpu=1, cpu=1, memory_mb=512, python=sys.executable)
    prof = Profile(name="gpu", url=one_gpu_backend.url, user=one_gpu_backend.user, token=one_gpu_backend.token)
    connection = {"key": uuid.uuid4().hex, "signature_scheme": "hmac-sha256"}
    holder = hold_the_gpu(one_gpu_backend)
    stopped_holder = False
    with PaiClient(prof) as client:
        phases: list[str] = []
        timed_out = KernelJob(settings, client=client, kernel_name="gpu", on_phase=phases.append)
        try:
            with pytest.raises(PaiTimeoutError) as info:
                timed_out.start_kernel(dict(connection), timeout=4)
            assert "did not start running within 4s, so it was stopped" in str(info.value), info.value
            assert any("waiting for resources" in p for p in phases), phases
            assert one_gpu_backend.wait(timed_out.job, timeout=30)["jobStatus"]["state"] == "STOPPED"

            # a start that waits long enough runs once the GPU is free
            phases.clear()
            waiting = KernelJob(settings, client=client, kernel_name="gpu", on_phase=phases.append)
            outcome: dict[str, Any] = {}

            def start() -> None:
                try:
                    outcome["local"] = waiting.start_kernel(dict(connection), timeout=180)
                except Exception as exc:  # noqa: BLE001 - the assertion below shows it
                    outcome["error"] = exc

            thread = threading.Thread(target=start, daemon=True)
            thread.start()
            deadline = time.monotonic() + 30
            while not any("waiting for resources" in p for p in phases) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert any("waiting for resources" in p for p in phases), phases
            assert one_gpu_backend.job(waiting.job)["jobStatus"]["state"] == "WAITING"
            stop_job(one_gpu_backend, holder)
            stopped_holder = True
            thread.join(180)
            try:
                assert "local" in outcome, outcome
                assert any("kernel ready in job" in p for p in phases), phases
                assert one_gpu_backend.job(waiting.job)["jobStatus"]["state"] == "RUNNING"
            finally:
                waiting.stop()
        finally:
            if not stopped_holder:
                stop_job(one_gpu_backend, holder)


def test_a_negative_gpu_count_is_refused_in_one_line(tmp_path):
    for command in (["-m", "pai_magic.local"], ["-m", "pai_magic", "local"]):
        proc = subprocess.run([sys.executable, *command, "--data-dir", str(tmp_path / "d"), "--gpus", "-1"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "--gpus must be 0 or more, got -1" in lines[0], proc.stderr


def test_a_notebook_run_waiting_past_its_start_timeout_is_stopped_and_says_so(one_gpu_backend, tmp_path,
                                                                              monkeypatch, capsys):
    from pai_magic.cli import main as cli_main
    from tests.notebook.conftest import write_notebook

    backend = cli_on(one_gpu_backend, tmp_path, monkeypatch)
    nb = write_notebook(tmp_path / "on_gpu.ipynb", "print('never')")
    assert cli_main(["run-notebook", str(nb), "--image", "python:3.11", "--start-timeout", "0", "--wait"]) == 2
    assert capsys.readouterr().err.strip() == "pai-magic: --start-timeout must be more than 0 seconds, got 0."
    holder = hold_the_gpu(backend)
    try:
        code = cli_main(["run-notebook", str(nb), "--image", "python:3.11", "--gpu", "1", "--start-timeout", "3",
                         "--wait"])
    finally:
        stop_job(backend, holder)
    err = capsys.readouterr().err
    assert code == 1, err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    assert line.endswith("FAILED: the task did not start within 3 s; the job was stopped"), line
    job = line.split()[1].split("~")[1]
    assert backend.wait(job, timeout=30)["jobStatus"]["state"] == "STOPPED"


def test_vcs_shows_the_gpus_in_use_and_free(one_gpu_backend, tmp_path, monkeypatch, capsys):
    import json

    from pai_magic.cli import main as cli_main
    from tests.integration.test_cli_json_keys import bad_keys

    backend = cli_on(one_gpu_backend, tmp_path, monkeypatch)

    def vcs() -> dict:
        assert cli_main(["vcs", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert not bad_keys(data), data  # snake_case, as every verb's --json
        (vc,) = data["virtual_clusters"]
        return vc

    holder = hold_the_gpu(backend)
    try:
        held = vcs()
        assert cli_main(["vcs"]) == 0
        lines = capsys.readouterr().out.splitlines()
    finally:
        stop_job(backend, holder)
    assert held["name"] == "default" and held["usable"] is True, held
    assert (held["gpus_used"], held["gpus_total"], held["gpus_free"]) == (1, 1, 0), held
    assert lines[0].split()[:4] == ["virtual", "cluster", "GPUs", "free"], lines
    assert lines[1].split()[:5] == ["default", "0", "1", "of", "1"], lines
    backend.wait(holder, timeout=30)
    assert vcs()["gpus_free"] == 1
