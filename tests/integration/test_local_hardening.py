"""The embedded backend under bad input, as an attacker or an unlucky user sends it (issue 12).

Each test reproduces one finding over real HTTP against a real ``python -m pai_magic.local``:
path segments that escape the data folder, job names too long for a folder, storages that
create links anywhere, oversized or explosive bodies, deep nesting, password guessing.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
import yaml

from pai_magic.core.protocol import unique_job_name
from tests.fixtures.chunked import send_chunked
from tests.fixtures.local_backend import LocalBackendProcess

T = 30


def simple_job(name: str, commands: list[str], **extra: object) -> dict:
    job: dict = {"protocolVersion": 2, "name": name, "type": "job",
                 "prerequisites": [{"name": "image", "type": "dockerimage", "uri": "ubuntu:22.04"}],
                 "taskRoles": {"main": {"instances": 1, "dockerImage": "image",
                                        "resourcePerInstance": {"cpu": 1, "memoryMB": 256, "gpu": 0},
                                        "commands": commands}}}
    job.update(extra)
    return job


@pytest.fixture(scope="module")
def mount_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("configured-mounts")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, mount_root: Path):
    b = LocalBackendProcess(tmp_path_factory.mktemp("hardening") / "data",
                            extra_args=["--mount-root", str(mount_root)])
    b.start()
    try:
        yield b
    finally:
        b.stop()


# -- path segments -------------------------------------------------------------------------

def test_log_route_refuses_an_encoded_dot_dot_task_role(backend):
    b = backend
    name = unique_job_name("traversal")
    assert b.submit(simple_job(name, ["echo hi"])).status_code == 202
    b.wait(name)
    outside = b.data_dir.parent / "outside" / "0" / "0"
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "all").write_text("not yours\n")
    role = "..%2F..%2F..%2F..%2Foutside"
    url = f"{b.api}/jobs/{b.user}~{name}/attempts/0/taskRoles/{role}/taskIndex/0/attempts/0/logs"
    resp = requests.get(url, headers=b.headers(), timeout=T)
    assert resp.status_code == 404, resp.text
    assert resp.json()["code"] == "NoTaskLogError"
    # a signed link for the real role still works, and a forged query on it does not
    loc = requests.get(f"{b.api}/jobs/{b.user}~{name}/attempts/0/taskRoles/main/taskIndex/0/attempts/0/logs",
                       headers=b.headers(), timeout=T).json()["locations"][0]["uri"]
    assert requests.get(urljoin(b.url + "/", loc), timeout=T).text == "hi\n"
    forged = loc.replace("taskrole=main", "taskrole=..%2F..%2F..%2F..%2Foutside")
    assert requests.get(urljoin(b.url + "/", forged), timeout=T).status_code in (400, 401, 404)


@pytest.mark.parametrize("segment", ["-1", "1e3", "%20", "99999999999999999999999", "0x1"])
def test_index_and_attempt_segments_must_be_small_decimal_numbers(backend, segment):
    b = backend
    url = f"{b.api}/jobs/{b.user}~nojob/attempts/{segment}/taskRoles/main/taskIndex/{segment}/attempts/0/logs"
    resp = requests.get(url, headers=b.headers(), timeout=T)
    assert resp.status_code == 404 and resp.json()["code"] in ("NoTaskLogError", "NoJobError"), resp.text


def test_job_names_too_long_for_a_folder_are_refused_at_submit(backend):
    b = backend
    longest = 255 - len(f"{b.user}~")
    too_long = "x" * (longest + 1) + unique_job_name("l")[-4:]
    resp = b.submit(simple_job(too_long, ["true"]))
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "InvalidProtocolError" and "characters" in body["message"]
    fits = unique_job_name("f")
    fits = fits + "y" * (longest - len(fits))
    assert b.submit(simple_job(fits, ["true"])).status_code == 202
    assert b.wait(fits)["jobStatus"]["state"] == "SUCCEEDED"


# -- storages ------------------------------------------------------------------------------

def test_storage_mount_paths_only_under_the_job_or_a_configured_root(backend, mount_root, tmp_path):
    b = backend
    stray = tmp_path / "anywhere" / "link"
    name = unique_job_name("stray")
    job = simple_job(name, ["true"], extras={"storages": [{"name": "default", "mountPath": str(stray)}]})
    assert b.submit(job).status_code == 202
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    assert not stray.parent.exists()  # nothing created outside the configured root
    events = requests.get(f"{b.api}/jobs/{b.user}~{name}/events", headers=b.headers(), timeout=T).json()
    assert any("PAI_STORAGE_DEFAULT_PATH" in e["message"] for e in events["data"])
    for bad in ("../../escape", "a/../../b", "/tmp/../etc/x", ""):
        job = simple_job(unique_job_name("bad"), ["true"],
                         extras={"storages": [{"name": "default", "mountPath": bad}]})
        resp = b.submit(job)
        assert resp.status_code == 400, (bad, resp.text)

    (b.data_dir / "storages" / "default" / "seen.txt").write_text("shared\n")
    configured = mount_root / "team" / "default"
    name = unique_job_name("mounts")
    job = simple_job(name, ["cat data/seen.txt", f"cat {configured}/seen.txt", "pwd > where.txt"],
                     extras={"storages": [{"name": "default", "mountPath": "data"},
                                          {"name": "default", "mountPath": str(configured)}]})
    assert b.submit(job).status_code == 202, job
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    assert b.log_text(name, "main") == "shared\nshared\n"
    # the relative one lived in the task's folder, not the backend's working directory
    assert not (Path.cwd() / "data" / "seen.txt").exists()
    # everything the job created is gone once it ended
    assert not configured.exists() and not (mount_root / "team").exists()
    assert not list((b.data_dir / "jobs").glob(f"*{name}*/main-0/data"))
    assert (b.data_dir / "storages" / "default" / "seen.txt").exists()  # the storage itself stays


def test_a_mount_path_that_exists_is_not_replaced(backend, mount_root):
    b = backend
    taken = mount_root / "taken"
    taken.mkdir()
    (taken / "mine").write_text("keep")
    name = unique_job_name("taken")
    job = simple_job(name, ["true"], extras={"storages": [{"name": "default", "mountPath": str(taken)}]})
    assert b.submit(job).status_code == 202
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    assert (taken / "mine").read_text() == "keep"
    events = requests.get(f"{b.api}/jobs/{b.user}~{name}/events", headers=b.headers(), timeout=T).json()
    assert any("PAI_STORAGE_DEFAULT_PATH" in e["message"] for e in events["data"])


# -- bodies, YAML limits, the event loop ----------------------------------------------------

def anchor_bomb(name: str, levels: int = 9) -> str:
    """About 600 bytes whose nested anchors stand for 9**levels values."""
    lines = ["protocolVersion: 2", f"name: {name}", "type: job", "parameters:",
             '  a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines += ["prerequisites:", "  - {name: image, type: dockerimage, uri: 'ubuntu:22.04'}", "taskRoles:",
              "  main:", "    dockerImage: image", "    resourcePerInstance: {cpu: 1, memoryMB: 256, gpu: 0}",
              "    commands: [echo]"]
    return "\n".join(lines) + "\n"


class InfoProbe:
    """GET /info in a loop on another thread; ``worst`` is the slowest answer seen."""

    def __init__(self, api: str) -> None:
        self.api, self.worst, self.count = api, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                start = time.perf_counter()
                session.get(f"{self.api}/info", timeout=T).raise_for_status()
                self.worst = max(self.worst, time.perf_counter() - start)
                self.count += 1

    def __enter__(self) -> "InfoProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(T)


def test_an_anchor_bomb_is_refused_with_a_reason_and_stalls_nobody(backend):
    b = backend
    name = unique_job_name("bomb")
    text = anchor_bomb(name)
    assert len(text) < 800
    with InfoProbe(b.api) as probe:
        for _ in range(5):
            resp = b.submit(text)
            assert resp.status_code == 400, resp.text[:300]
            assert resp.json()["code"] == "InvalidProtocolError"
            assert "aliases" in resp.json()["message"] and "\n" not in resp.json()["message"]
    assert probe.count > 0 and probe.worst < 2.0, probe.worst  # was: seconds per request
    assert requests.get(f"{b.api}/jobs/{b.user}~{name}", headers=b.headers(), timeout=T).status_code == 404
    # a few aliases, as people write them, still work
    ok = unique_job_name("alias")
    small = anchor_bomb(ok, levels=2).replace("commands: [echo]", "commands: [echo <% $parameters.a0 %>]")
    assert b.submit(small).status_code == 202
    assert b.wait(ok)["jobStatus"]["state"] == "SUCCEEDED"


def test_an_oversized_body_is_refused_before_it_is_read(backend):
    b = backend
    big = b"x: " + b"y" * (50 * 1024 * 1024)
    with InfoProbe(b.api) as probe:
        start = time.perf_counter()
        resp = requests.post(f"{b.api}/jobs", data=big, timeout=T,
                             headers={**b.headers(), "Content-Type": "text/yaml"})
        took = time.perf_counter() - start
    assert resp.status_code == 413, resp.text[:200]
    assert resp.json()["code"] == "PayloadTooLargeError" and "100 kB" in resp.json()["message"]
    assert took < 10 and probe.worst < 2.0, (took, probe.worst)  # was: 18 s with every request blocked

    def chunks():  # no Content-Length: a chunked body past the limit is refused too
        for _ in range(30):
            yield b"z" * 8192

    resp = requests.post(f"{b.api}/authn/basic/login", data=chunks(), timeout=T,
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 413, resp.text[:200]
    assert requests.get(f"{b.api}/info", timeout=T).status_code == 200


def test_a_chunked_body_past_the_limit_gets_the_json_413_however_it_is_chunked(backend):
    """Without Content-Length the limit can only be seen while the body arrives. Before, past
    10x the limit (the server's hard cap), or in ONE chunk whose header declared more than
    that, tornado answered a bare 400 without a body before the handler saw a byte."""
    b = backend
    refused = {"code": "PayloadTooLargeError",
               "message": "request entity too large: the limit is 100 kB, as on the rest-server"}
    shapes = {
        "many small chunks, past the old hard cap": (b"y" * 8192 for _ in range(800)),  # 6.4 MB
        "one chunk that declares 4 MB": iter([b"y" * 65536] * 64),
        "a body that never ends": iter(lambda: b"y" * 65536, None),
    }
    for shape, chunks in shapes.items():
        for path, headers in (("/rest-server/api/v2/jobs", {**b.headers(), "Content-Type": "text/yaml"}),
                              ("/rest-server/api/v2/authn/basic/login", {"Content-Type": "application/json"})):
            status, ctype, body, sent = send_chunked(b.url, path, chunks, headers,
                                                     4 << 20 if "declares" in shape else None)
            assert (status, ctype.split(";")[0]) == (413, "application/json"), (shape, path, status, body[:200])
            assert json.loads(body) == refused, (shape, body[:200])
            assert sent < 16 << 20, (shape, sent)  # answered while the body still came
            if "never" not in shape:
                break  # the finite shapes are spent; the endless one tries the other route too
    # and the server still answers: a chunked body within the limit is read as before
    login = json.dumps({"username": b.user, "password": b.password}).encode()
    status, _, body, _ = send_chunked(b.url, "/rest-server/api/v2/authn/basic/login", iter([login[:5], login[5:]]),
                                      {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body)["user"] == b.user, body[:200]
    assert requests.get(f"{b.api}/info", timeout=T).status_code == 200


def test_deep_json_and_deep_yaml_answer_400_not_500(backend):
    b = backend
    deep_json = "[" * 50_000 + "]" * 50_000
    resp = requests.post(f"{b.api}/authn/basic/login", data=deep_json, timeout=T,
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["code"] == "InvalidParametersError", resp.text[:200]
    for body in ("[" * 100_000, "{\"a\":" * 10_000 + "1" + "}" * 10_000):
        resp = requests.put(f"{b.api}/users/me", data=body, timeout=T,
                            headers={**b.headers(), "Content-Type": "application/json"})
        assert resp.status_code == 400, resp.text[:200]
    deep_yaml = "protocolVersion: 2\nname: deep\nparameters:\n  p: " + "[" * 50_000 + "]" * 50_000 + "\n"
    resp = b.submit(deep_yaml)
    assert resp.status_code == 400 and "nests deeper" in resp.json()["message"], resp.text[:200]


def test_repeated_wrong_passwords_are_slowed_down_and_a_success_resets(backend):
    b = backend
    user, password = "guessme", "right-password-1"
    resp = requests.post(f"{b.api}/users", json={"username": user, "password": password}, headers=b.headers(),
                         timeout=T)
    assert resp.status_code == 201, resp.text

    def attempt(pw: str) -> tuple[int, float]:
        start = time.perf_counter()
        r = requests.post(f"{b.api}/authn/basic/login", json={"username": user, "password": pw}, timeout=T)
        return r.status_code, time.perf_counter() - start

    quick = [attempt("wrong-password") for _ in range(3)]
    assert all(code == 400 for code, _ in quick)
    # then each guess waits 0.5, 1, 2 ... s, one at a time: in parallel they are no faster
    results: list[tuple[int, float]] = []
    start = time.perf_counter()
    threads = [threading.Thread(target=lambda: results.append(attempt("wrong-again"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.perf_counter() - start >= 0.5 + 1 + 2 - 0.3, results
    assert sorted(took for _, took in results)[0] >= 0.4 and all(code == 400 for code, _ in results)
    code, took = attempt(password)
    assert code == 200 and took >= 3.5  # the real user still gets in, after the wait the guesses earned
    code, took = attempt(password)
    assert code == 200 and took < 2.0  # and the count is reset
    # other users are not slowed down by someone guessing this one
    code, took = requests.post(f"{b.api}/authn/basic/login", json={"username": b.user, "password": b.password},
                               timeout=T).status_code, 0
    assert code == 200


# -- task processes ------------------------------------------------------------------------

def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def pids_in(path: Path, count: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(x) for x in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.05)
    raise AssertionError(f"the job did not write {count} pids into {path}")


def gone(pids: list[int], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


ESCAPES = ("setsid sleep 300 & echo $! >> {f}",                              # holds the output pipe
           "setsid sleep 301 >/dev/null 2>&1 < /dev/null & echo $! >> {f}",  # fully detached
           "env -i setsid sleep 302 >/dev/null 2>&1 & echo $! >> {f}")       # no marker either


def test_a_job_ends_with_its_main_command_and_takes_its_leftovers_along(backend, tmp_path):
    b = backend
    pidfile = tmp_path / "pids"
    name = unique_job_name("leftover")
    assert b.submit(simple_job(name, [e.format(f=pidfile) for e in ESCAPES] + ["echo main done"])).status_code == 202
    detail = b.wait(name, timeout=30)  # was: RUNNING for as long as the setsid sleep lived
    assert detail["jobStatus"]["state"] == "SUCCEEDED"
    pids = pids_in(pidfile, 3)
    assert gone(pids), [p for p in pids if alive(p)]
    assert "main done" in b.log_text(name, "main")


def test_stop_ends_every_process_of_the_job(backend, tmp_path):
    b = backend
    pidfile = tmp_path / "pids"
    name = unique_job_name("stopall")
    cmds = [e.format(f=pidfile) for e in ESCAPES] + ["trap '' TERM", f"sleep 303 & echo $! >> {pidfile}", "wait"]
    assert b.submit(simple_job(name, cmds)).status_code == 202
    pids = pids_in(pidfile, 4)
    resp = requests.put(f"{b.api}/jobs/{b.user}~{name}/executionType", json={"value": "STOP"},
                        headers=b.headers(), timeout=T)
    assert resp.status_code == 202
    assert b.wait(name, timeout=30)["jobStatus"]["state"] == "STOPPED"
    assert gone(pids), [p for p in pids if alive(p)]


def test_restart_recovery_finds_the_leftovers_of_a_crashed_backend(tmp_path):
    b = LocalBackendProcess(tmp_path / "data")
    b.start()
    try:
        pidfile = tmp_path / "pids"
        name = unique_job_name("crash")
        cmds = [e.format(f=pidfile) for e in ESCAPES] + [f"sleep 304 & echo $! >> {pidfile}", "wait"]
        assert b.submit(simple_job(name, cmds)).status_code == 202
        pids = pids_in(pidfile, 4)
        b.kill()  # SIGKILL: the backend cannot clean up
        assert any(alive(p) for p in pids)
        b.start()
        detail = b.wait(name, timeout=30)
        assert detail["jobStatus"]["state"] == "FAILED"
        assert gone(pids), [p for p in pids if alive(p)]
    finally:
        b.stop()


# -- a full data disk ----------------------------------------------------------------------

@pytest.fixture
def small_disk_backend(tmp_path):
    """A backend whose data dir is an 16 MB tmpfs mounted in its own private mount namespace
    (unshare -m, as root): a real full disk that nothing else on the machine sees. The test
    reaches the files through /proc/<pid>/root, which resolves in that namespace."""
    from tests.fixtures.services import need, need_binary

    need(os.geteuid() == 0, "a tmpfs data dir needs root")
    unshare = need_binary("unshare", "util-linux")
    data = tmp_path / "data"
    wrap = [unshare, "-m", "--propagation", "private", "sh", "-c",
            'mkdir -p "$0" && mount -t tmpfs -o size=16m tmpfs "$0" && exec "$@"', str(data)]
    b = LocalBackendProcess(data, wrap=wrap)
    try:
        b.start()
    except RuntimeError as exc:
        need(False, f"cannot mount a tmpfs in a private namespace here: {exc}")
    try:
        yield b
    finally:
        b.stop()


def fill(path: Path) -> None:
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 20))
                fh.flush()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC


def test_a_full_data_disk_answers_507_and_no_job_stays_running(small_disk_backend, tmp_path):
    b = small_disk_backend
    assert b.proc is not None
    inside = Path(f"/proc/{b.proc.pid}/root") / str(b.data_dir).lstrip("/")
    assert (inside / "backend.sqlite").exists() and not (b.data_dir / "backend.sqlite").exists()
    go = tmp_path / "go"
    name = unique_job_name("fulldisk")
    pidfile = tmp_path / "pid"
    quiet = unique_job_name("quiet")  # ends without output: only its bookkeeping meets the full disk
    job = simple_job(quiet, [f"echo $$ > {pidfile}", f"while [ ! -e {go} ]; do sleep 0.05; done"])
    assert b.submit(job).status_code == 202
    job = simple_job(name, [f"while [ ! -e {go} ]; do sleep 0.05; done", "seq 1 200000", "echo finished"])
    assert b.submit(job).status_code == 202
    b.wait(name, ("RUNNING",))
    b.wait(quiet, ("RUNNING",))
    pid = pids_in(pidfile, 1)[0]
    fill(inside / "filler")
    go.write_text("go")  # the tasks end (one writing output) while nothing can be written
    assert gone([pid])
    log_text = b.log_path.read_text
    deadline = time.monotonic() + 30
    while "the data disk is full; retrying" not in log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "the data disk is full; retrying" in log_text()  # the failure this test is about happened
    assert b.job(quiet)["jobStatus"]["state"] == "RUNNING"  # nothing could be recorded yet
    for _ in range(3):
        resp = b.submit(simple_job(unique_job_name("nospace"), ["true"]))
        assert resp.status_code in (507, 503), resp.text
        assert resp.json()["code"] == "InsufficientStorageError" and "\n" not in resp.text
        assert "full" in resp.json()["message"]
    resp = requests.post(f"{b.api}/authn/basic/login", json={"username": b.user, "password": b.password},
                         timeout=T)
    assert resp.status_code in (507, 503) and "full" in resp.json()["message"], resp.text
    (inside / "filler").unlink()  # space again: the job's end is recorded, nothing stays RUNNING
    for job_name in (name, quiet):
        detail = b.wait(job_name, timeout=60)
        assert detail["jobStatus"]["state"] == "SUCCEEDED", detail["jobStatus"]
    again = unique_job_name("after")
    assert b.submit(simple_job(again, ["echo ok"])).status_code == 202
    assert b.wait(again)["jobStatus"]["state"] == "SUCCEEDED"


# -- conformance with rest-server v1.8's user controllers -----------------------------------

def _login(b: LocalBackendProcess, user: str, password: str) -> str:
    resp = requests.post(f"{b.api}/authn/basic/login", json={"username": user, "password": password}, timeout=T)
    assert resp.status_code == 200, resp.text
    return resp.json()["token"]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_password_changes_revoke_browser_tokens_but_not_application_tokens(backend):
    b = backend
    user = unique_job_name("pw").replace("-", "_")
    assert requests.post(f"{b.api}/users", json={"username": user, "password": "first-pass"}, headers=b.headers(),
                         timeout=T).status_code == 201
    browser = _login(b, user, "first-pass")
    app = requests.post(f"{b.api}/tokens/application", headers=_auth(browser), timeout=T).json()["token"]
    # the user changes it (PUT /users/me): their browser tokens stop working, application ones do not
    resp = requests.put(f"{b.api}/users/me", headers=_auth(browser), timeout=T,
                        json={"data": {"username": user, "newPassword": "second-pass", "oldPassword": "first-pass"},
                              "patch": True})
    assert resp.status_code == 201, resp.text
    assert requests.get(f"{b.api}/jobs", headers=_auth(browser), timeout=T).status_code == 401
    assert requests.get(f"{b.api}/jobs", headers=_auth(app), timeout=T).status_code == 200
    # an admin changes it (PUT /users): the same
    browser = _login(b, user, "second-pass")
    resp = requests.put(f"{b.api}/users", headers=b.headers(), timeout=T,
                        json={"data": {"username": user, "password": "third-pass"}, "patch": True})
    assert resp.status_code == 201 and resp.json() == {"message": f"Update user {user} successfully"}, resp.text
    assert requests.get(f"{b.api}/jobs", headers=_auth(browser), timeout=T).status_code == 401
    assert requests.get(f"{b.api}/jobs", headers=_auth(app), timeout=T).status_code == 200
    browser = _login(b, user, "third-pass")

    # PUT /users: the schema first (400), then admin (403), then the user (404)
    resp = requests.put(f"{b.api}/users", headers=b.headers(), json={"data": {"username": user}}, timeout=T)
    assert resp.status_code == 400 and resp.json()["code"] == "InvalidParametersError"
    resp = requests.put(f"{b.api}/users", headers=_auth(browser), timeout=T,
                        json={"data": {"username": b.user, "admin": False}, "patch": True})
    assert resp.status_code == 403 and resp.json()["code"] == "ForbiddenUserError"
    resp = requests.put(f"{b.api}/users", headers=b.headers(), timeout=T,
                        json={"data": {"username": "nobody-here", "email": "a@b.c"}, "patch": True})
    assert resp.status_code == 404 and resp.json()["code"] == "NoUserError"
    resp = requests.put(f"{b.api}/users", headers=_auth(app), timeout=T,
                        json={"data": {"username": user, "email": "a@b.c"}, "patch": True})
    assert resp.status_code == 403  # application tokens never change users
    resp = requests.put(f"{b.api}/users", headers=b.headers(), timeout=T,
                        json={"data": {"username": user, "email": "x@y.z", "admin": True}, "patch": True})
    assert resp.status_code == 201
    got = requests.get(f"{b.api}/users/{user}", headers=b.headers(), timeout=T).json()
    assert got["email"] == "x@y.z" and got["admin"] is True


def test_delete_user_as_the_rest_server_does(backend):
    b = backend
    user = unique_job_name("gone").replace("-", "_")
    assert requests.post(f"{b.api}/users", json={"username": user, "password": "some-pass"}, headers=b.headers(),
                         timeout=T).status_code == 201
    token = _login(b, user, "some-pass")
    resp = requests.delete(f"{b.api}/users/{b.user}", headers=_auth(token), timeout=T)
    assert resp.status_code == 403 and resp.json()["code"] == "ForbiddenUserError"  # not an admin
    resp = requests.delete(f"{b.api}/users/{b.user}", headers=b.headers(), timeout=T)
    assert resp.status_code == 403 and resp.json() == {"code": "RemoveAdminError",
                                                       "message": f"Admin {b.user} is not allowed to remove."}
    resp = requests.delete(f"{b.api}/users/nobody-here", headers=b.headers(), timeout=T)
    assert resp.status_code == 404 and resp.json()["code"] == "NoUserError"
    resp = requests.delete(f"{b.api}/users/{user}", headers=b.headers(), timeout=T)
    assert resp.status_code == 200 and resp.json() == {"message": "user is removed successfully"}
    assert requests.get(f"{b.api}/jobs", headers=_auth(token), timeout=T).status_code == 401
    assert requests.get(f"{b.api}/users/{user}", headers=b.headers(), timeout=T).json()["code"] == "NoUserError"


def test_unimplemented_routes_of_the_reference_answer_no_api_error(backend):
    b = backend
    for method, path in (("GET", "/groups"), ("PUT", f"/users/{b.user}/grouplist/"),
                         ("PUT", f"/jobs/{b.user}~x/tag"), ("GET", f"/jobs/{b.user}~x/job-attempts"),
                         ("GET", "/kubernetes/nodes"), ("GET", "/alerts"), ("GET", "/authn/oidc/login"),
                         ("PATCH", "/info"), ("POST", f"/users/{b.user}")):
        resp = requests.request(method, f"{b.api}{path}", headers=b.headers(), timeout=T)
        assert resp.status_code == 404 and resp.json()["code"] == "NoApiError", (method, path, resp.text)


# -- jobs of a root backend run unprivileged ------------------------------------------------

#: a group the isolating backend is a member of and its jobs must not be
BACKEND_GROUP = 4242


@pytest.fixture(scope="module")
def isolating_backend():
    from tests.fixtures.services import need

    need(os.geteuid() == 0, "switching a job's user needs a backend running as root")
    # the data folder must be reachable by other uids (pytest's tmp folders are 0700 root)
    base = Path(tempfile.mkdtemp(prefix="pai-isolation-", dir="/tmp"))
    os.chmod(base, 0o711)
    # the backend belongs to a supplementary group, as a service account on a workstation often
    # does: a job's uid must not inherit it (setpriv, util-linux, execs the backend with it)
    b = LocalBackendProcess(base / "data", extra_args=["--job-user", "per-user"],
                            wrap=["setpriv", f"--groups={BACKEND_GROUP}", "--"])
    b.start()
    try:
        yield b
    finally:
        b.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_root_backend_runs_jobs_as_unprivileged_users_who_cannot_read_its_files(isolating_backend):
    b = isolating_backend
    other, other_pw = "otheruser", "other-pass-1"
    assert requests.post(f"{b.api}/users", json={"username": other, "password": other_pw}, headers=b.headers(),
                         timeout=T).status_code == 201
    other_token = _login(b, other, other_pw)
    mine = unique_job_name("mine")
    probe = ("for f in {data}/secret.key {data}/backend.sqlite {data}/credentials.json {data}/job-uids.json; "
             "do if head -c1 $f >/dev/null 2>&1; then echo READ $f; else echo denied; fi; done; "
             "if ls {data}/logs >/dev/null 2>&1 || ls {data} >/dev/null 2>&1; then echo READ listing; "
             "else echo denied; fi").format(data=b.data_dir)
    job = simple_job(mine, ["echo uid=$(id -u) home=$HOME user=$USER", "echo private > mine.txt",
                            "echo team > $PAI_STORAGE_DEFAULT_PATH/from-$USER.txt", probe],
                     extras={"storages": []})
    assert b.submit(job).status_code == 202
    assert b.wait(mine)["jobStatus"]["state"] == "SUCCEEDED"
    out = b.log_text(mine, "main")
    uid = int(out.split("uid=")[1].split()[0])
    assert uid >= 1_000_000 and f"user={b.user}" in out, out
    assert "READ" not in out and out.count("denied") == 5, out
    my_dir = next((b.data_dir / "jobs").glob(f"*{mine}*")) / "main-0"
    assert (my_dir / "mine.txt").stat().st_uid == uid

    theirs = unique_job_name("theirs")
    job = simple_job(theirs, ["echo uid=$(id -u)",
                              f"if cat {my_dir}/mine.txt; then echo READ-OTHER; else echo denied-other; fi",
                              "cat $PAI_STORAGE_DEFAULT_PATH/from-tester.txt"], extras={"storages": []})
    resp = requests.post(f"{b.api}/jobs", data=yaml.safe_dump(job).encode(), timeout=T,
                         headers={**_auth(other_token), "Content-Type": "text/yaml"})
    assert resp.status_code == 202, resp.text
    detail = b.wait(theirs, user=other)
    url = f"{b.api}/jobs/{other}~{theirs}/attempts/0/taskRoles/main/taskIndex/0/attempts/0/logs"
    loc = requests.get(url, headers=b.headers(), timeout=T).json()["locations"][0]["uri"]
    out = requests.get(urljoin(b.url + "/", loc), timeout=T).text
    other_uid = int(out.split("uid=")[1].split()[0])
    assert other_uid != uid and other_uid >= 1_000_000
    # another user's task folder is closed to this job; the storage is shared
    assert "denied-other" in out and "READ-OTHER" not in out and "team" in out, (out, detail["jobStatus"])
    assert detail["jobStatus"]["state"] == "SUCCEEDED", detail["jobStatus"]
    # and the leftovers of an unprivileged task are still ended with it
    left = [(p.name, (p / "cmdline").read_bytes()) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _owner(p) in (uid, other_uid) and alive(int(p.name))]
    assert not left, left


def _owner(proc_dir: Path) -> int:
    try:
        return proc_dir.stat().st_uid
    except OSError:
        return -1


def test_a_task_that_kills_its_own_parent_still_leaves_nothing_behind(backend, tmp_path):
    b = backend
    pidfile = tmp_path / "pids"
    name = unique_job_name("parricide")
    cmds = [f"setsid sleep 305 >/dev/null 2>&1 & echo $! >> {pidfile}", "kill -9 $PPID", "sleep 1"]
    assert b.submit(simple_job(name, cmds)).status_code == 202
    b.wait(name, timeout=30)
    assert gone(pids_in(pidfile, 1))


def test_a_link_on_the_way_to_a_mount_path_cannot_lead_the_backend_elsewhere(backend, mount_root, tmp_path):
    b = backend
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (mount_root / "detour").symlink_to(elsewhere)
    name = unique_job_name("detour")
    job = simple_job(name, ["true"], extras={"storages": [{"name": "default",
                                                           "mountPath": str(mount_root / "detour" / "x")}]})
    assert b.submit(job).status_code == 202
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    assert list(elsewhere.iterdir()) == []
    events = requests.get(f"{b.api}/jobs/{b.user}~{name}/events", headers=b.headers(), timeout=T).json()
    assert any("leads out of" in e["message"] for e in events["data"]), events


def test_task_ssh_and_sftp_act_as_the_jobs_uid(isolating_backend, tmp_path, monkeypatch):
    """Per-user jobs: what arrives over the task's SSH (a kernel's supervisor, a folder made on a
    mounted storage with --mkdir-personal, an uploaded notebook) belongs to the job's uid, so
    the job can read and write it; and SFTP cannot read what the job's uid may not (the
    backend's key). Before, SFTP acted as root: the job could not read what was sent to it."""
    from pai_magic.core.client import PaiClient
    from pai_magic.core.jobs import submit_job
    from pai_magic.core.profiles import Profile
    from pai_magic.core.protocol import JobSpec, build_protocol
    from pai_magic.core.ssh.exec import run_command
    from pai_magic.core.ssh.keys import ensure_key
    from pai_magic.core.ssh.tasks import open_task_session

    b = isolating_backend
    monkeypatch.setenv("HOME", str(tmp_path))  # pai_magic makes its own SSH key here
    name = unique_job_name("sftp-as-uid")
    with PaiClient(Profile(name="iso", url=b.url, user=b.user, token=b.token)) as client:
        key = ensure_key(None)
        spec = JobSpec(name=name, exact_name=True, image="ubuntu:22.04", storages=[("default", None)],
                       commands=['while [ ! -e "$PAI_STORAGE_DEFAULT_PATH/sent/go" ]; do sleep 0.1; done',
                                 'cat "$PAI_STORAGE_DEFAULT_PATH/sent/go"; echo mine > "$PAI_STORAGE_DEFAULT_PATH/sent/back"',
                                 "echo job-uid=$(id -u)"],
                       ssh_public_key=key.public_line)
        submit_job(client, build_protocol(spec))
        storage = b.data_dir / "storages" / "default"
        with open_task_session(client, name, key=key, start_wait=120) as session:
            sftp = session.sftp()
            sftp.mkdir(f"{storage}/sent", 0o700)  # as --mkdir-personal does
            with sftp.open(f"{storage}/sent/go.tmp", "w") as fh:
                sftp.chmod(f"{storage}/sent/go.tmp", 0o600)  # as the kernel's supervisor is sent
                fh.write(b"sent over sftp\n")
            with pytest.raises(PermissionError):
                sftp.open(str(b.data_dir / "secret.key"), "r").read()
            # nor what the backend's supplementary group may read
            group_only = b.data_dir.parent / "backend-group-only.txt"
            group_only.write_text("for the backend's group\n")
            os.chown(group_only, 0, BACKEND_GROUP)
            os.chmod(group_only, 0o640)
            with pytest.raises(PermissionError):
                sftp.open(str(group_only), "r").read()
            # only that thread left the group: the backend (its main thread) is still a member
            status = Path(f"/proc/{b.proc.pid}/status").read_text()
            assert str(BACKEND_GROUP) in status.split("Groups:")[1].splitlines()[0], status
            out: list[str] = []
            assert run_command(session, "id -u", on_stdout=out.append, timeout=60) == 0
            sftp.posix_rename(f"{storage}/sent/go.tmp", f"{storage}/sent/go")
        detail = b.wait(name)
    log = b.log_text(name, "taskrole")
    uid = int(log.split("job-uid=")[1].split()[0])
    assert detail["jobStatus"]["state"] == "SUCCEEDED" and "sent over sftp" in log, (detail["jobStatus"], log)
    assert uid >= 1_000_000 and int("".join(out).strip()) == uid  # an SSH session runs as the job's uid
    assert (storage / "sent").stat().st_uid == uid and (storage / "sent" / "back").stat().st_uid == uid


def test_a_python_the_job_uid_cannot_reach_is_named_with_the_fix():
    """A Python under a private folder (as /root/.pyenv under /root 0700): one line naming the
    folder and what to do; a Python every uid may pass: nothing to say."""
    from pai_magic.local.jobuser import python_unreachable

    base = Path(tempfile.mkdtemp(prefix="pai-python-", dir="/tmp"))  # pytest's tmp folders are 0700
    try:
        os.chmod(base, 0o711)
        private = base / "home"
        (private / "bin").mkdir(parents=True)
        exe = private / "bin" / "python3"
        exe.write_text("#!/bin/sh\n")
        os.chmod(private, 0o700)
        message = python_unreachable((2_000_123, 2_000_123), str(exe))
        assert "\n" not in message and f"{private} is mode 700" in message and "--job-user root" in message, message
        os.chmod(private, 0o755)
        assert python_unreachable((2_000_123, 2_000_123), str(exe)) == ""
    finally:
        shutil.rmtree(base, ignore_errors=True)
