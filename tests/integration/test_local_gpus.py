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


@pytest.fixture(scope="module")
def one_gpu(tmp_path_factory):
    backend = LocalBackendProcess(tmp_path_factory.mktemp("one-gpu") / "data", extra_args=["--gpus", "1"])
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


def _gpu_job(name: str, commands: list[str], gpu: int = 1) -> dict:
    return simple_job(name, commands, resourcePerInstance={"cpu": 1, "memoryMB": 256, "gpu": gpu})


def _stop(backend: LocalBackendProcess, name: str) -> None:
    resp = requests.put(f"{backend.api}/jobs/{backend.user}~{name}/executionType", json={"value": "STOP"},
                        headers=backend.headers(), timeout=30)
    assert resp.status_code == 202, resp.text


def _holding(backend: LocalBackendProcess) -> str:
    """A job that holds the one GPU until stopped."""
    name = f"hold_{uuid.uuid4().hex[:6]}"
    assert backend.submit(_gpu_job(name, ["sleep 300"])).status_code == 202
    backend.wait(name, ("RUNNING",), timeout=30)
    return name


def test_a_job_waits_for_the_gpu_another_holds_and_runs_once_it_is_freed(one_gpu):
    holder = _holding(one_gpu)
    second = f"second_{uuid.uuid4().hex[:6]}"
    cpu_only = f"cpu_{uuid.uuid4().hex[:6]}"
    try:
        assert one_gpu.submit(_gpu_job(second, ["echo second ran"])).status_code == 202
        assert one_gpu.submit(_gpu_job(cpu_only, ["echo cpu ran"], gpu=0)).status_code == 202
        assert one_gpu.wait(cpu_only, timeout=60)["jobStatus"]["state"] == "SUCCEEDED"  # needs no GPU: not queued
        assert one_gpu.job(second)["jobStatus"]["state"] == "WAITING"
        vc = requests.get(f"{one_gpu.api}/virtual-clusters/default", headers=one_gpu.headers(), timeout=30).json()
        assert vc["resourcesTotal"]["GPUs"] == 1 and vc["resourcesUsed"]["GPUs"] == 1, vc
    finally:
        _stop(one_gpu, holder)
    detail = one_gpu.wait(second, timeout=60)
    assert detail["jobStatus"]["state"] == "SUCCEEDED", detail["jobStatus"]
    assert "second ran" in one_gpu.log_text(second, "main")
    assert "it held 1 of the 1 GPU(s) the embedded backend counts, none real" in \
        detail["jobStatus"]["appExitDiagnostics"]


def test_a_kernel_waits_for_resources_and_its_start_timeout_stops_its_job(one_gpu, tmp_path, monkeypatch):
    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import Profile
    from pai_magic.kernel.job import KernelJob
    from pai_magic.kernel.spec import KernelSettings

    monkeypatch.setenv("HOME", str(tmp_path))  # pai_magic makes its own SSH key here
    settings = KernelSettings(image="python:3.11", gpu=1, cpu=1, memory_mb=512, python=sys.executable)
    prof = Profile(name="gpu", url=one_gpu.url, user=one_gpu.user, token=one_gpu.token)
    connection = {"key": uuid.uuid4().hex, "signature_scheme": "hmac-sha256"}
    holder = _holding(one_gpu)
    stopped_holder = False
    with PaiClient(prof) as client:
        phases: list[str] = []
        timed_out = KernelJob(settings, client=client, kernel_name="gpu", on_phase=phases.append)
        try:
            with pytest.raises(PaiTimeoutError) as info:
                timed_out.start_kernel(dict(connection), timeout=4)
            assert "did not start running within 4s, so it was stopped" in str(info.value), info.value
            assert any("waiting for resources" in p for p in phases), phases
            assert one_gpu.wait(timed_out.job, timeout=30)["jobStatus"]["state"] == "STOPPED"

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
            assert one_gpu.job(waiting.job)["jobStatus"]["state"] == "WAITING"
            _stop(one_gpu, holder)
            stopped_holder = True
            thread.join(180)
            try:
                assert "local" in outcome, outcome
                assert any("kernel ready in job" in p for p in phases), phases
                assert one_gpu.job(waiting.job)["jobStatus"]["state"] == "RUNNING"
            finally:
                waiting.stop()
        finally:
            if not stopped_holder:
                _stop(one_gpu, holder)


def test_a_negative_gpu_count_is_refused_in_one_line(tmp_path):
    for command in (["-m", "pai_magic.local"], ["-m", "pai_magic", "local"]):
        proc = subprocess.run([sys.executable, *command, "--data-dir", str(tmp_path / "d"), "--gpus", "-1"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "--gpus must be 0 or more, got -1" in lines[0], proc.stderr
