"""A kernel in an OpenPAI job (the embedded backend), driven through a REAL Jupyter server over
REST and its websocket, as JupyterLab does: start from an installed kernelspec, run cells,
interrupt, restart, a killed SSH transport, shutdown, culling, an external stop, a Jupyter
server killed with SIGKILL (the lease ends the job), and an image Python without ipykernel.

One server and one kernel carry the ordered checks of the main test (honest: each check
leaves the kernel as the next needs it); the server's culler runs alongside.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from pai_magic.kernel.spec import KernelSettings, build_kernelspec
from tests.fixtures.services import need, need_binary
from tests.server.conftest import CheckedJupyter
from tests.server.jupyter_process import JupyterProcess

websocket = pytest.importorskip("websocket")

CULL_AFTER = 12
DISPLAY = "Python 3 on OpenPAI (lab, no GPU)"


def install_spec(jp_root: Path, name: str, **settings: Any) -> None:
    """Write a kernelspec into the server's private Jupyter data dir."""
    spec = build_kernelspec("lab", KernelSettings(image="python:3.11", profile="lab", gpu=0, cpu=1,
                                                  memory_mb=512, **settings))
    target = jp_root / "jupyter-data" / "kernels" / name
    target.mkdir(parents=True, exist_ok=True)
    (target / "kernel.json").write_text(json.dumps(spec))


def save_profile_for(root: Path, backend: Any) -> Path:
    """A pai_magic config dir for a Jupyter process under ``root``, with profile "lab"."""
    from pai_magic.core.profiles import Profile, save_profile

    cfg = root / "pai-config"
    old = os.environ.get("PAI_MAGIC_CONFIG_DIR")
    os.environ["PAI_MAGIC_CONFIG_DIR"] = str(cfg)
    try:
        save_profile(Profile(name="lab", url=backend.url, user=backend.user, token=backend.token))
    finally:
        if old is None:
            os.environ.pop("PAI_MAGIC_CONFIG_DIR", None)
        else:
            os.environ["PAI_MAGIC_CONFIG_DIR"] = old
    return cfg


def start_server(root: Path, backend: Any, **extra: Any) -> JupyterProcess:
    cfg = save_profile_for(root, backend)
    jp = JupyterProcess(root, cfg, extra_config=extra)
    install_spec(root, "pai-test", lease_seconds=30)
    install_spec(root, "pai-nokernel", python=f"{sys.executable} -S")
    install_spec(root, "pai-short-lease", lease_seconds=6)
    return jp.start()


class WsKernel:
    """The kernel's websocket, speaking the Jupyter message protocol (JSON frames)."""

    def __init__(self, jp: JupyterProcess, kernel_id: str) -> None:
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{jp.port}/api/kernels/{kernel_id}/channels?session_id={self.session}",
            header=[f"Authorization: token {jp.token}"], timeout=120)
        self.seen: list[dict[str, Any]] = []

    def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": msg_type, "session": self.session,
                                            "username": "test", "version": "5.3", "date": ""},
                                 "parent_header": {}, "metadata": {}, "content": content, "channel": channel}))
        return msg_id

    def collect(self, msg_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Output and reply of one request, once the kernel is idle again."""
        out: dict[str, Any] = {"text": "", "reply": None, "idle": False, "error": None}
        deadline = time.monotonic() + timeout
        while not (out["reply"] is not None and out["idle"]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete answer within {timeout}s: {out}")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            self.seen.append(msg)
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out["text"] += content["text"]
            elif kind == "execute_result":
                out["text"] += content["data"].get("text/plain", "")
            elif kind == "error":
                out["error"] = content["ename"]
            elif kind == "status" and content["execution_state"] == "idle":
                out["idle"] = True
            elif kind.endswith("_reply"):
                out["reply"] = content
        return out

    def execute(self, code: str, timeout: float = 120.0) -> dict[str, Any]:
        return self.collect(self.send("execute_request", {"code": code, "silent": False,
                                                          "store_history": True, "allow_stdin": False}), timeout)

    def wait_started(self, msg_id: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            self.seen.append(msg)
            if (msg.get("parent_header") or {}).get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
                return
        raise AssertionError("the cell did not start")

    def close(self) -> None:
        self.ws.close()


def start_kernel(jp: JupyterProcess, name: str = "pai-test") -> str:
    resp = jp.post("api/kernels", json={"name": name}, timeout=300)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def kernel_jobs(backend: Any) -> dict[str, str]:
    resp = requests.get(f"{backend.api}/jobs", headers=backend.headers(), params={"username": backend.user},
                        timeout=30)
    resp.raise_for_status()
    rows = resp.json()
    rows = rows.get("data", rows) if isinstance(rows, dict) else rows
    return {r["name"]: r["state"] for r in rows if r["name"].startswith("pai-kernel-")}


def wait_until(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, local_backend):
    jp = start_server(tmp_path_factory.mktemp("kernel-jupyter"), local_backend,
                      MappingKernelManager={"cull_idle_timeout": CULL_AFTER, "cull_interval": 3})
    try:
        yield jp
    finally:
        jp.stop()


def test_kernel_lifecycle_through_jupyter_server(server, local_backend):
    jp, backend = server, local_backend
    culled_id = start_kernel(jp)            # never connected: the culler should stop its job
    culled_started = time.monotonic()
    kid = start_kernel(jp)
    ws = WsKernel(jp, kid)
    try:
        # a cell returns the job's PAI_JOB_NAME; the job is a recognisable kernel job
        out = ws.execute("import os; print(os.environ['PAI_JOB_NAME'])")
        job = out["text"].strip().split("~")[-1]
        assert job.startswith("pai-kernel-pai-test_"), out
        assert kernel_jobs(backend)[job] == "RUNNING"

        # interrupt a long cell (message mode: an interrupt_request on the control channel)
        msg_id = ws.send("execute_request", {"code": "import time; time.sleep(100)", "silent": False})
        ws.wait_started(msg_id)
        t0 = time.monotonic()
        assert jp.post(f"api/kernels/{kid}/interrupt").status_code == 204
        out = ws.collect(msg_id, timeout=60)
        assert out["error"] == "KeyboardInterrupt" and time.monotonic() - t0 < 30

        # restart: variables gone, same job
        assert ws.execute("x = 41; x + 1")["text"] == "42"
        assert jp.post(f"api/kernels/{kid}/restart", timeout=300).status_code == 200
        out = ws.execute("x")
        assert out["error"] == "NameError", out
        assert ws.execute("import os; print(os.environ['PAI_JOB_NAME'])")["text"].strip().endswith(job)

        # a killed SSH transport (`ss -K`) while a cell prints: the link is re-established and,
        # the streams going through the job's relay, nothing is lost: every line exactly once,
        # the execute_reply, and the output of a cell sent at once after (no wait for IOPub)
        assert ws.execute("y = 'kept'; y")["text"] == "'kept'"
        need_binary("ss", "iproute2")
        need(os.geteuid() == 0, "killing a TCP connection with `ss -K` needs root (CAP_NET_ADMIN)")
        detail = backend.job(job)
        ssh_port = detail["taskRoles"]["kernel"]["taskStatuses"][0]["containerPorts"]["ssh"]
        lines = 40
        msg_id = ws.send("execute_request", {
            "code": f"import time\nfor i in range({lines}):\n    print('line', i, flush=True)\n    time.sleep(0.1)",
            "silent": False})
        ws.wait_started(msg_id)
        killed = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", f":{ssh_port}"],
                                capture_output=True, text=True, timeout=30)
        assert f":{ssh_port}" in killed.stdout, killed.stdout + killed.stderr
        out = ws.collect(msg_id, timeout=120)
        assert out["reply"]["status"] == "ok", out
        assert out["text"] == "".join(f"line {i}\n" for i in range(lines)), out["text"]
        assert ws.execute("print('still here', y)", timeout=120)["text"] == "still here kept\n"
        relinked = f"SSH link to job {job} re-established"
        wait_until(lambda: relinked in jp.log_path.read_text(errors="replace"), 60, "the SSH link to come back")

        # the kernel's ZMQ traffic is CurveZMQ-encrypted (ipykernel warns in the job's log otherwise)
        stderr = backend.log_text(job, "kernel", which="stderr")
        assert "pai-magic kernel: kernel 1 started" in stderr and "without encryption" not in stderr, stderr

        # a kernel that dies is noticed by poll (the restarter) and started again in the same job
        ws.send("execute_request", {"code": "import os; os._exit(1)", "silent": False})
        wait_until(lambda: any(m["msg_type"] == "status" and m["content"]["execution_state"] == "restarting"
                               for m in _drain(ws, 1)), 60, "the restarter to notice the dead kernel")
        out = wait_until(lambda: _try_execute(ws, "import os; print(os.environ['PAI_JOB_NAME'], 'y' in dir())"),
                         120, "the restarted kernel to answer")
        assert out["text"].strip().endswith(f"{job} False"), out
        assert kernel_jobs(backend)[job] == "RUNNING"

        # shutdown stops the job
        t0 = time.monotonic()
        assert jp.request("DELETE", f"api/kernels/{kid}").status_code == 204
        wait_until(lambda: kernel_jobs(backend)[job] == "STOPPED", 30, "the job to stop")
        print(f"shutdown to STOPPED: {time.monotonic() - t0:.2f}s")
    finally:
        ws.close()

    # culling: the never-connected kernel went away and so did its job
    remaining = CULL_AFTER + 60 - (time.monotonic() - culled_started)
    wait_until(lambda: jp.get(f"api/kernels/{culled_id}").status_code == 404, max(remaining, 10),
               "the idle kernel to be culled")
    wait_until(lambda: all(state != "RUNNING" for state in kernel_jobs(backend).values()), 30,
               "no kernel job left running")


def test_external_stop_reports_a_dead_kernel_with_its_reason(server, local_backend, tmp_path):
    jp = server
    resp = jp.post("api/sessions", json={"path": "stopped.ipynb", "name": "stopped.ipynb", "type": "notebook",
                                         "kernel": {"name": "pai-test"}}, timeout=300)
    assert resp.status_code == 201, resp.text
    kid = resp.json()["kernel"]["id"]
    ws = WsKernel(jp, kid)
    try:
        job = ws.execute("import os; print(os.environ['PAI_JOB_NAME'])")["text"].strip().split("~")[-1]
        env = dict(os.environ, PAI_MAGIC_CONFIG_DIR=str(jp.pai_config_dir))
        listed = subprocess.run([sys.executable, "-m", "pai_magic", "jobs"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert f"{job} (kernel)" in listed.stdout, listed.stdout + listed.stderr
        res = subprocess.run([sys.executable, "-m", "pai_magic", "stop", job], env=env, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        wait_until(lambda: jp.get(f"api/kernels/{kid}").status_code == 404, 60, "the kernel to be reported dead")
        assert any(m["msg_type"] == "status" and m["content"]["execution_state"] == "dead"
                   for m in _drain(ws)) or True  # the websocket may already be closed by the server
        log = jp.log_path.read_text(errors="replace")
        assert f"Job {job} was STOPPED outside Jupyter" in log
        assert "Traceback" not in log.split(f"Job {job} was STOPPED outside Jupyter")[1][:2000]
        # the page that follows kernel starts learns it too: the notebook, the job, the reason
        ended = [st for st in jp.get("pai-magic/api/kernel-starts").json()["starts"] if st["kernelId"] == kid]
        assert [(st["state"], st["path"], st["job"]) for st in ended] == [("ended", "stopped.ipynb", job)], ended
        assert ended[0]["error"].startswith(f"Job {job} was STOPPED outside Jupyter"), ended
    finally:
        ws.close()


def _try_execute(ws: WsKernel, code: str) -> dict[str, Any] | None:
    try:
        out = ws.execute(code, timeout=10)
    except Exception:  # noqa: BLE001 - the kernel is still coming back
        return None
    return out if out["reply"] and out["reply"].get("status") == "ok" else None


def _drain(ws: WsKernel, wait: float = 2) -> list[dict[str, Any]]:
    try:
        ws.ws.settimeout(wait)
        while True:
            ws.seen.append(json.loads(ws.ws.recv()))
    except Exception:
        pass
    return ws.seen


def test_start_phases_are_served_to_jupyterlab(server, local_backend):
    """A kernel started for a notebook (as JupyterLab does, through a session): the server
    extension's long poll answers at each phase, not only at the end; the phases come in
    order, name the notebook and the job, and end ready. A restart is a start of its own."""
    api = CheckedJupyter(server, [local_backend.token, local_backend.password])
    seen: list[dict[str, Any]] = []
    polling = threading.Event()
    stop = threading.Event()

    def follow() -> None:  # what the labextension does: since=<last version>&wait=30, again and again
        answer = api.get("kernel-starts").json()
        polling.set()
        while not stop.is_set():
            answer = api.get(f"kernel-starts?since={answer['version']}&wait=30", timeout=60).json()
            seen.extend(s for s in answer["starts"] if s["kernelName"] == "pai-test" and s["path"] == "phases.ipynb")

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert polling.wait(60)
    resp = server.post("api/sessions", json={"path": "phases.ipynb", "name": "phases.ipynb", "type": "notebook",
                                             "kernel": {"name": "pai-test"}}, timeout=300)
    assert resp.status_code == 201, resp.text
    kid = resp.json()["kernel"]["id"]
    try:
        wait_until(lambda: any(s["state"] == "ready" for s in seen), 60, "the long poll to report the kernel ready")
        states = [s["state"] for s in seen]
        assert states[0] == "starting" and states.index("ready") > 0, states  # answered during the start
        start = next(s for s in seen if s["state"] == "ready")
        assert start["kernelId"] == kid and not start["restart"] and start["error"] is None
        assert start["job"].startswith("pai-kernel-pai-test_") and start["displayName"] == DISPLAY
        keys = [p["key"] for p in start["phases"] if p["key"] != "waiting"]  # WAITING may be too short to see
        assert keys == ["submitted", "running", "connecting", "ready"], start["phases"]
        assert start["job"] in start["phases"][0]["text"]

        # a restart in the same job is a new start, marked as one (its phases end the follower's wait)
        stop.set()
        assert server.post(f"api/kernels/{kid}/restart", timeout=300).status_code == 200
        follower.join(60)
        assert not follower.is_alive()
        restarted = api.get("kernel-starts").json()["starts"]
        again = next(s for s in restarted if s["kernelId"] == kid)
        assert again["id"] != start["id"] and again["restart"] and again["state"] == "ready"
        assert [p["key"] for p in again["phases"]] == ["restarting", "ready"] and again["job"] == start["job"]
    finally:
        stop.set()
        server.request("DELETE", f"api/sessions/{resp.json()['id']}", timeout=120)
        follower.join(60)


def test_python_without_ipykernel_fails_in_one_line(server, local_backend):
    before = set(kernel_jobs(local_backend))
    resp = server.post("api/kernels", json={"name": "pai-nokernel"}, timeout=300)
    assert resp.status_code == 400
    message = resp.json().get("message", "")
    assert "has no ipykernel" in message and "pip install ipykernel" in message and "\n" not in message
    # JupyterLab's notification gets the same line
    api = CheckedJupyter(server, [local_backend.token, local_backend.password])
    failed = [s for s in api.get("kernel-starts").json()["starts"] if s["kernelName"] == "pai-nokernel"]
    assert failed and failed[-1]["state"] == "failed" and failed[-1]["error"] == message, failed
    assert failed[-1]["phases"][0]["key"] == "submitted" and failed[-1]["phases"][-1]["key"] == "failed"
    new = set(kernel_jobs(local_backend)) - before
    assert len(new) == 1
    job = new.pop()
    wait_until(lambda: kernel_jobs(local_backend)[job] in ("STOPPED", "FAILED"), 30, "the failed job to end")


def test_a_logged_out_profile_fails_in_one_line_naming_it(server, local_backend):
    """A kernelspec names its profile, often not the active one: the hint must name it too, or
    `pai-magic login` would log in to another profile and the start would fail again."""
    from pai_magic.core.profiles import Profile, save_profile

    os.environ["PAI_MAGIC_CONFIG_DIR"], old = str(server.pai_config_dir), os.environ.get("PAI_MAGIC_CONFIG_DIR")
    try:
        save_profile(Profile(name="gone", url=local_backend.url, user=local_backend.user, token=""), activate=False)
    finally:
        if old is None:
            os.environ.pop("PAI_MAGIC_CONFIG_DIR", None)
        else:
            os.environ["PAI_MAGIC_CONFIG_DIR"] = old
    spec = build_kernelspec("gone", KernelSettings(image="python:3.11", profile="gone", gpu=0, cpu=1, memory_mb=512))
    target = server.root / "jupyter-data" / "kernels" / "pai-gone"
    target.mkdir(parents=True, exist_ok=True)
    (target / "kernel.json").write_text(json.dumps(spec))
    before = set(kernel_jobs(local_backend))
    resp = server.post("api/kernels", json={"name": "pai-gone"}, timeout=300)
    assert resp.status_code == 400, resp.text
    message = resp.json().get("message", "")
    assert "'gone'" in message and "pai-magic login --profile gone" in message and "\n" not in message, message
    assert "%" not in message, message  # JupyterLab's session path doubles any % (jupyter_server + tornado 6.6)
    assert set(kernel_jobs(local_backend)) == before  # nothing submitted
    assert not [k for k in server.get("api/kernels").json() if k["name"] == "pai-gone"]


def test_logging_in_again_while_a_kernel_runs_keeps_it_watched(server, local_backend):
    """`pai-magic logout` (revokes the token) then `login` while a kernel runs: the kernel's job
    is still watched with the new token, so a stop from elsewhere is still reported (the
    provisioner kept the revoked token and took every refused poll for "alive")."""
    env = dict(os.environ, PAI_MAGIC_CONFIG_DIR=str(server.pai_config_dir), PAI_TEST_PW=local_backend.password)

    def cli(*argv: str) -> None:
        res = subprocess.run([sys.executable, "-m", "pai_magic", *argv], env=env, capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr

    cli("login", local_backend.url, "--user", local_backend.user, "--password-env", "PAI_TEST_PW",
        "--profile", "relog", "--no-activate")
    spec = build_kernelspec("relog", KernelSettings(image="python:3.11", profile="relog", gpu=0, cpu=1,
                                                    memory_mb=512))
    target = server.root / "jupyter-data" / "kernels" / "pai-relog"
    target.mkdir(parents=True, exist_ok=True)
    (target / "kernel.json").write_text(json.dumps(spec))
    kid = start_kernel(server, "pai-relog")
    ws = WsKernel(server, kid)
    try:
        job = ws.execute("import os; print(os.environ['PAI_JOB_NAME'])")["text"].strip().split("~")[-1]
        cli("logout", "--profile", "relog")
        time.sleep(4)  # a poll (every 3 s) meets the revoked token
        cli("login", "--user", local_backend.user, "--password-env", "PAI_TEST_PW", "--profile", "relog")
        cli("stop", job)
        wait_until(lambda: server.get(f"api/kernels/{kid}").status_code == 404, 60,
                   "the stopped job's kernel to be reported dead")
    finally:
        ws.close()
        server.request("DELETE", f"api/kernels/{kid}", timeout=120)


def test_killed_jupyter_server_leaves_no_running_job_after_the_lease(tmp_path, local_backend):
    jp = start_server(tmp_path / "lease-jupyter", local_backend)
    try:
        kid = start_kernel(jp, "pai-short-lease")
        ws = WsKernel(jp, kid)
        job = ws.execute("import os; print(os.environ['PAI_JOB_NAME'])")["text"].strip().split("~")[-1]
        ws.close()
        assert kernel_jobs(local_backend)[job] == "RUNNING"
        os.killpg(jp.proc.pid, signal.SIGKILL)
        jp.proc.wait(10)
        # lease 6 s: the supervisor ends the job soon after the renewals stop
        wait_until(lambda: kernel_jobs(local_backend)[job] != "RUNNING", 40, "the lease to end the job")
        assert kernel_jobs(local_backend)[job] == "FAILED"
    finally:
        jp.stop()


def test_stopping_the_server_during_a_start_exits_at_once_and_stops_the_job(tmp_path, local_backend):
    """Ctrl-C on the Jupyter server while a kernel starts (on a cluster: minutes of WAITING; here
    an image whose Python takes 45 s to come up): the server used to wait for the start to end
    (up to start_timeout), then leave a kernel nobody uses RUNNING until its lease ran out."""
    slow = Path(tempfile.mkdtemp(prefix="pai-slow-python-", dir="/tmp"))  # readable by the job's uid
    try:
        slow.chmod(0o755)
        python = slow / "python"
        python.write_text(f'#!/bin/sh\nsleep 45\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)
        jp = start_server(tmp_path / "exit-jupyter", local_backend)
        try:
            install_spec(jp.root, "pai-slow", python=str(python))
            before = set(kernel_jobs(local_backend))
            threading.Thread(target=_ignore_errors, args=(jp.post, "api/sessions"), daemon=True, kwargs={
                "json": {"path": "slow.ipynb", "type": "notebook", "kernel": {"name": "pai-slow"}},
                "timeout": 120}).start()
            job = wait_until(lambda: [j for j, st in kernel_jobs(local_backend).items()
                                      if j not in before and st == "RUNNING"], 60, "the kernel job to run")[0]
            assert jp.proc is not None
            t0 = time.monotonic()
            jp.proc.send_signal(signal.SIGTERM)
            jp.proc.wait(30)
            print(f"server exited {time.monotonic() - t0:.1f}s after SIGTERM")
            wait_until(lambda: kernel_jobs(local_backend)[job] != "RUNNING", 30, "the job to end")
            assert kernel_jobs(local_backend)[job] == "STOPPED"  # stopped, not ended by the lease
        finally:
            jp.stop()
    finally:
        shutil.rmtree(slow, ignore_errors=True)


def _ignore_errors(fn: Any, *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except requests.RequestException:  # the server went away during the request, as meant
        pass


def test_kernel_job_that_dies_at_boot_ends_the_start_with_its_reason(local_backend, tmp_path, monkeypatch):
    """The task's Python dies the moment the supervisor lands (on the demo: the supervisor was
    unreadable to the job's uid), which also drops the SSH link we are polling over: the start
    ends within seconds with ONE line carrying the task's last stderr line, not paramiko's
    'Server connection dropped' nor a bare exit code."""
    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import Profile
    from pai_magic.kernel.job import KernelJob, KernelStartError

    monkeypatch.setenv("HOME", str(tmp_path))  # pai_magic makes its own SSH key here
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'python: cannot open the supervisor: Permission denied' >&2\nexit 5\n")
    broken.chmod(0o755)
    settings = KernelSettings(image="python:3.11", gpu=0, cpu=1, memory_mb=512, python=str(broken))
    prof = Profile(name="boot", url=local_backend.url, user=local_backend.user, token=local_backend.token)
    with PaiClient(prof) as client:
        job = KernelJob(settings, client=client, kernel_name="boot", on_phase=lambda text: None)
        started = time.monotonic()
        with pytest.raises(KernelStartError) as info:
            job.start_kernel({"key": uuid.uuid4().hex, "signature_scheme": "hmac-sha256"}, timeout=120)
        took = time.monotonic() - started
    message = str(info.value)
    assert "\n" not in message and "cannot open the supervisor: Permission denied" in message, message
    assert took < 60, f"took {took:.1f} s to see a kernel job that died at boot"
