"""The server extension over real HTTP: a real Jupyter server subprocess with pai_magic.server
enabled by the repository's jupyter-config file, calling the core against the embedded
OpenPAI backend (a real subprocess). Every answer is validated against openapi.yaml and
scanned for the token and the password (tests/server/conftest.py)."""
from __future__ import annotations

import stat
import threading
import time
import uuid

import pytest
import yaml

from tests.server.conftest import CheckedJupyter, _start

# The shape of the official hello-world example (shared/reference/job-examples), its commands
# replaced by a short shell line.
HELLO_WORLD = """\
protocolVersion: 2
name: NAME
type: job
jobRetryCount: 0
prerequisites:
  - type: dockerimage
    uri: 'openpai/standard:python_3.6-tensorflow_1.15.0-gpu'
    name: docker_image_0
taskRoles:
  taskrole:
    instances: 1
    completion:
      minFailedInstances: 1
      minSucceededInstances: -1
    taskRetryCount: 0
    dockerImage: docker_image_0
    resourcePerInstance:
      gpu: 1
      cpu: 1
      memoryMB: 6500
    commands:
      - echo from-yaml
defaults:
  virtualCluster: default
"""


def _spec(stem: str, *commands: str, **extra):
    return {"name": stem, "image": "ubuntu:22.04", "commands": list(commands), **extra}


# ---- login and status ------------------------------------------------------------------------


def test_status_login_and_wrong_password(jupyter_fresh: CheckedJupyter, local_backend):
    api = jupyter_fresh
    status = api.get("status").json()
    assert status["loggedIn"] is False and status["url"] is None
    # the sidebar shows this next to its own login form: it points there, not at the CLI
    assert "below" in status["message"] and "pai_login" not in status["message"]

    # listing jobs before logging in: 401 with a sentence that says what to do
    resp = api.get("jobs")
    assert resp.status_code == 401 and "login" in resp.json()["error"].lower()

    wrong = api.post("login", {"url": local_backend.url, "user": local_backend.user, "password": "not-the-password"})
    assert wrong.status_code == 401
    assert "not-the-password" not in wrong.text
    assert api.get("status").json()["loggedIn"] is False

    ok = api.post("login", {"url": local_backend.url, "user": local_backend.user, "password": local_backend.password})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["loggedIn"] is True and body["user"] == local_backend.user
    assert body["url"] == local_backend.url.rstrip("/")
    for token in api.saved_tokens():
        api.add_secret(token)

    status = api.get("status").json()
    assert status == body
    assert set(status) == {"loggedIn", "profile", "url", "user", "virtualCluster", "message"}

    # only the token is kept, in a 0600 profile file; never the password
    profile_file = api.proc.pai_config_dir / "profiles.yaml"
    assert stat.S_IMODE(profile_file.stat().st_mode) == 0o600
    text = profile_file.read_text()
    assert local_backend.password not in text
    assert api.saved_tokens(), "the token was not saved"
    # the server's own log never holds the password or the token either
    log = api.proc.log_path.read_text(errors="replace")
    for secret in [local_backend.password, *api.saved_tokens()]:
        assert secret not in log


def test_login_with_pasted_token(jupyter_fresh: CheckedJupyter, local_backend):
    resp = jupyter_fresh.post("login", {"url": local_backend.url, "token": local_backend.token})
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"] == local_backend.user and resp.json()["loggedIn"] is True
    bad = jupyter_fresh.post("login", {"url": local_backend.url, "token": "not.a.token"})
    assert bad.status_code == 401


def test_login_to_unreachable_cluster_is_502(jupyter_fresh: CheckedJupyter):
    from tests.fixtures.services import free_port

    resp = jupyter_fresh.post("login", {"url": f"http://127.0.0.1:{free_port()}", "user": "a", "password": "b"})
    assert resp.status_code == 502
    assert "127.0.0.1" in resp.json()["error"]


def test_requests_without_jupyter_auth_are_refused(jupyter_module: CheckedJupyter):
    import requests

    resp = requests.get(jupyter_module.proc.url + "pai-magic/api/status", timeout=30)
    assert resp.status_code == 403
    assert "error" in resp.json()


# ---- jobs ------------------------------------------------------------------------------------------


def test_submit_spec_list_detail_logs(api: CheckedJupyter):
    marker = uuid.uuid4().hex
    resp = api.post("jobs", {"spec": _spec("srv_echo", f"echo {marker}", "echo done-$PAI_TASK_INDEX")})
    assert resp.status_code == 202, resp.text
    name = resp.json()["name"]
    assert name.startswith("srv_echo_") and resp.json()["duplicate"] is False

    final = api.wait_state(name, {"SUCCEEDED", "FAILED", "STOPPED"})
    assert final["state"] == "SUCCEEDED", final
    assert final["exitCode"] == 0
    assert final["tasks"] and final["tasks"][0]["role"] == "taskrole"

    jobs = api.get("jobs?limit=50").json()["jobs"]
    row = next(j for j in jobs if j["name"] == name)
    assert row["state"] == "SUCCEEDED"
    succeeded = api.get("jobs?state=SUCCEEDED&limit=1000").json()["jobs"]
    assert name in {j["name"] for j in succeeded}
    assert all(j["state"] == "SUCCEEDED" for j in succeeded)

    logs = api.get(f"jobs/{name}/logs").json()
    assert marker in logs["text"] and logs["task"] == "taskrole/0"
    tail = api.get(f"jobs/{name}/logs?task=taskrole/0&stream=stdout&tail=8").json()
    assert len(tail["text"]) <= 8 and tail["truncated"] is True


def test_logs_of_a_long_log_use_the_tail_or_the_whole(api: CheckedJupyter):
    """A small tail comes from the log manager's tail mode (no whole download per sidebar tick);
    a tail larger than that window reads the whole log."""
    resp = api.post("jobs", {"spec": _spec("srv_long", "seq 1 20000", "echo LAST-LINE")})
    assert resp.status_code == 202, resp.text
    name = resp.json()["name"]
    assert api.wait_state(name, {"SUCCEEDED", "FAILED", "STOPPED"})["state"] == "SUCCEEDED"
    short = api.get(f"jobs/{name}/logs?tail=200").json()
    assert short["text"].rstrip().endswith("LAST-LINE") and len(short["text"]) <= 200 and short["truncated"]
    whole = api.get(f"jobs/{name}/logs?tail=1000000").json()
    assert whole["text"].startswith("1\n2\n") and "20000\nLAST-LINE" in whole["text"]
    assert whole["truncated"] is False


def test_submit_official_example_yaml(api: CheckedJupyter):
    """An official example with its commands replaced by a short shell line, the rest unchanged."""
    name = f"srv_yaml_{uuid.uuid4().hex[:8]}"
    text = HELLO_WORLD.replace("name: NAME", f"name: {name}")
    job = yaml.safe_load(text)
    resp = api.post("jobs", {"yaml": text})
    assert resp.status_code == 202, resp.text
    assert resp.json()["name"] == job["name"]
    assert api.wait_state(job["name"], {"SUCCEEDED", "FAILED"})["state"] == "SUCCEEDED"

    # OpenPAI never reuses a name, even of a finished job: 409 with a one-line reason
    again = api.post("jobs", {"protocol": job})
    assert again.status_code == 409
    assert "name" in again.json()["error"].lower()


def test_same_request_id_submits_once(api: CheckedJupyter):
    """A double click / retried POST with one requestId creates one job, whatever the timing."""
    request_id = uuid.uuid4().hex
    stem = f"srv_once_{uuid.uuid4().hex[:6]}"
    body = {"spec": _spec(stem, "echo once"), "requestId": request_id}
    answers: list = []

    def post() -> None:
        answers.append(api.post("jobs", body))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 4
    names = {a.json()["name"] for a in answers}
    assert len(names) == 1, names
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    assert sum(a.json()["duplicate"] for a in answers) == 3
    mine = [j for j in api.get("jobs?limit=1000").json()["jobs"] if j["name"].startswith(stem)]
    assert len(mine) == 1


def test_stop_running_job(api: CheckedJupyter):
    name = api.post("jobs", {"spec": _spec("srv_sleep", "sleep 300")}).json()["name"]
    api.wait_state(name, {"RUNNING"})
    resp = api.post(f"jobs/{name}/stop", {})
    assert resp.status_code == 202, resp.text
    assert resp.json()["name"] == name
    assert api.wait_state(name, {"STOPPED", "FAILED", "SUCCEEDED"})["state"] == "STOPPED"
    # stopping a stopped job is harmless
    assert api.post(f"jobs/{name}/stop").status_code == 202


def test_ssh_info_lines(api: CheckedJupyter):
    name = api.post("jobs", {"spec": _spec("srv_ssh", "echo ready", ssh=True, keepAlive=True)}).json()["name"]
    try:
        detail = api.wait_state(name, {"RUNNING"})
        port = detail["tasks"][0]["ports"]["ssh"][0]
        info = api.get(f"jobs/{name}/ssh").json()
        assert info["hasSsh"] is True
        assert any(line.startswith(f"ssh -p {port} ") and "@127.0.0.1" in line for line in info["lines"]), info
        # the same lines with their kind, so the sidebar can label them
        assert [c["line"] for c in info["commands"]] == info["lines"]
        assert [c["kind"] for c in info["commands"]] == ["portal", "key"]
        assert " -i " in info["commands"][1]["line"] and " -i " not in info["commands"][0]["line"]
        assert info["commands"][0]["task"].endswith("/0")
    finally:
        api.post(f"jobs/{name}/stop")

    plain = api.post("jobs", {"spec": _spec("srv_nossh", "sleep 300")}).json()["name"]
    try:
        api.wait_state(plain, {"RUNNING"})
        info = api.get(f"jobs/{plain}/ssh").json()
        assert info["hasSsh"] is False and info["lines"] == []
        assert "ssh" in (info["message"] or "").lower()
    finally:
        api.post(f"jobs/{plain}/stop")


# ---- bad input -------------------------------------------------------------------------------------

BAD_REQUESTS = [
    ("POST", "jobs", "this is not json", 400, "JSON"),
    ("POST", "jobs", [1, 2], 400, "object"),
    ("POST", "jobs", {}, 400, "spec"),
    ("POST", "jobs", {"spec": {}, "yaml": "x"}, 400, "exactly one"),
    ("POST", "jobs", {"spec": {"commands": ["echo"]}}, 400, "image"),
    ("POST", "jobs", {"spec": {"image": "ubuntu", "commands": []}}, 400, "commands"),
    ("POST", "jobs", {"spec": {"image": "ubuntu", "commands": ["x"], "gpu": "two"}}, 400, "gpu"),
    ("POST", "jobs", {"spec": {"image": "ubuntu", "commands": ["x"], "gpus": 1}}, 400, "gpus"),
    ("POST", "jobs", {"yaml": "name: [unclosed"}, 400, "YAML"),
    ("POST", "jobs", {"yaml": "protocolVersion: 2\nname: x\ntype: job\ntaskRoles: {}\n"}, 400, ""),
    ("POST", "jobs", {"protocol": "text"}, 400, "object"),
    ("POST", "jobs", {"spec": {"image": "u", "commands": ["x"]}, "requestId": 5}, 400, "requestId"),
    ("GET", "jobs?state=NOPE", None, 400, "state"),
    ("GET", "jobs?limit=0", None, 400, "limit"),
    ("GET", "jobs?limit=many", None, 400, "limit"),
    ("GET", "jobs/has%20space", None, 400, "job name"),
    ("GET", "jobs/no_such_job_here", None, 404, ""),
    ("POST", "jobs/no_such_job_here/stop", {}, 404, ""),
    ("GET", "jobs/no_such_job_here/logs?task=1bad", None, 400, "task"),
    ("GET", "jobs/no_such_job_here/logs?stream=video", None, 400, "stream"),
    ("GET", "jobs/no_such_job_here/ssh", None, 404, ""),
    ("POST", "login", {"url": "http://x"}, 400, "password"),
    ("POST", "login", {"user": "u", "password": "p"}, 400, "URL"),
    ("POST", "login", {"url": "http://x", "user": "u", "password": "p", "token": "t"}, 400, "either"),
    ("POST", "login", {"url": 5, "password": "p"}, 400, "url"),
    ("POST", "login", {"url": "ftp://x", "user": "u", "password": "p"}, 400, ""),
    ("POST", "login", {"url": "my cluster", "user": "u", "password": "p"}, 400, "http://HOST"),
    ("GET", "kernel-starts?wait=99", None, 400, "wait"),
    ("GET", "kernel-starts?wait=soon", None, 400, "wait"),
    ("GET", "kernel-starts?since=-1", None, 400, "since"),
    ("GET", "no/such/route", None, 404, "endpoint"),
]


@pytest.mark.parametrize("method,path,body,status,words", BAD_REQUESTS,
                         ids=[f"{m} {p} {i}" for i, (m, p, *_rest) in enumerate(BAD_REQUESTS)])
def test_bad_input_is_4xx_with_one_json_line(api: CheckedJupyter, method, path, body, status, words):
    # unknown routes are not in the OpenAPI file; everything else must match it
    validate = not path.startswith("no/")
    if method == "GET":
        resp = api.get(path, validate=validate)
    else:
        resp = api.post(path, body if body is not None else {}, validate=validate)
    assert resp.status_code == status, resp.text
    assert words.lower() in resp.json()["error"].lower(), resp.json()


def test_invalid_protocol_lists_details(api: CheckedJupyter):
    job = {"protocolVersion": 2, "name": "srv_invalid", "type": "job",
           "taskRoles": {"1bad": {"instances": 1, "commands": []}}}
    resp = api.post("jobs", {"protocol": job})
    assert resp.status_code == 400
    details = resp.json().get("details") or []
    assert details and all(": " in line for line in details), resp.json()


def test_kernel_starts_long_poll_waits_for_a_change_bounded(jupyter_module: CheckedJupyter):
    """No kernel starts in this server: an up-to-date `since` waits `wait` seconds and answers
    the same version; any other `since`, or no `wait`, answers at once."""
    first = jupyter_module.get("kernel-starts").json()
    assert first["starts"] == [] and isinstance(first["version"], int)
    t0 = time.monotonic()
    same = jupyter_module.get(f"kernel-starts?since={first['version']}&wait=1", timeout=30).json()
    took = time.monotonic() - t0
    assert same["version"] == first["version"] and 0.9 <= took < 15, took
    t0 = time.monotonic()
    other = jupyter_module.get(f"kernel-starts?since={first['version'] - 1}&wait=30", timeout=60).json()
    assert other["version"] == first["version"] and time.monotonic() - t0 < 10


def test_method_not_allowed_is_json(api: CheckedJupyter):
    resp = api.check(api.proc.request("DELETE", "pai-magic/api/status"), validate=False)
    assert resp.status_code == 405


# ---- configuration -----------------------------------------------------------------------------------


def test_backend_is_swappable_through_config(tmp_path, local_backend):
    """ExtensionApp.backend_class is a traitlets Type: a deployment swaps it in config.

    ``tests.server.swapped_backend.PinnedStatusBackend`` is a subclass of the real backend
    that only labels its status message; everything else stays real."""
    proc = _start(tmp_path / "jp", extra_config={
        "PaiMagicExtension": {"backend_class": "tests.server.swapped_backend.PinnedStatusBackend"}})
    try:
        api = CheckedJupyter(proc, [local_backend.token, local_backend.password])
        assert api.get("status").json()["message"] == "served by PinnedStatusBackend"
        api.login(local_backend)
        assert api.get("jobs").status_code == 200
    finally:
        proc.stop()


def test_works_under_a_base_url(tmp_path, local_backend):
    """Under JupyterHub the server lives at /user/<name>/: the routes follow the base URL."""
    proc = _start(tmp_path / "jp", base_url="/user/alice/")
    try:
        resp = proc.post("pai-magic/api/login", json={"url": local_backend.url, "user": local_backend.user,
                                                      "password": local_backend.password})
        assert resp.status_code == 200, resp.text
        assert proc.get("pai-magic/api/jobs").status_code == 200
        assert proc.request("GET", "/pai-magic/api/status".lstrip("/")).url.startswith(
            f"http://127.0.0.1:{proc.port}/user/alice/")
    finally:
        proc.stop()


def test_local_endpoint_starts_and_logs_in(tmp_path):
    """POST /local starts the embedded backend inside the Jupyter server and logs into it;
    a second call finds the same one."""
    from tests.server.jupyter_process import JupyterProcess

    data = tmp_path / "local-data"
    proc = JupyterProcess(tmp_path / "jp2", tmp_path / "pai-config2",
                          extra_config={"CoreBackend": {"local_data_dir": str(data)}}).start()
    try:
        api = CheckedJupyter(proc)
        first = api.post("local", {})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["loggedIn"] is True and body["url"].startswith("http://127.0.0.1:")
        server_json = data / "server.json"
        assert server_json.exists()
        for token in api.saved_tokens():
            api.add_secret(token)
        again = api.post("local", {}).json()
        assert again["url"] == body["url"]
        name = api.post("jobs", {"spec": _spec("srv_local", "echo local")}).json()["name"]
        assert api.wait_state(name, {"SUCCEEDED", "FAILED"})["state"] == "SUCCEEDED"
    finally:
        proc.stop()
    assert not (data / "server.json").exists(), "the backend started by the server did not stop with it"
