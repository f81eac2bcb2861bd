"""PaiClient and the job policies over real HTTP against the embedded backend (a real subprocess)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from pai_magic.core import auth, profiles
from pai_magic.core.client import PaiClient
from pai_magic.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PaiTimeoutError,
)
from pai_magic.core.jobs import JobWatcher, follow_logs, stop_job, submit_job, wait_for
from pai_magic.core.protocol import JobSpec, build_protocol, unique_job_name

EXAMPLES = Path("/work/shared/reference/job-examples")
if not EXAMPLES.is_dir():  # the repo may carry its own copy later
    EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "job-examples"


def client_of(backend, token: str | None = None, **kw) -> PaiClient:
    prof = profiles.Profile(name="t", url=backend.url, user=backend.user,
                            token=backend.token if token is None else token)
    return PaiClient(prof, **kw)


def shell_job(stem: str, *lines: str, **spec) -> dict:
    return build_protocol(JobSpec(name=stem, image="ubuntu:22.04", commands=list(lines), **spec))


@pytest.fixture
def client(local_backend):
    with client_of(local_backend) as c:
        yield c


# ----- login and tokens --------------------------------------------------------------------

def test_info_and_password_login_saves_token_not_password(local_backend):
    prof = auth.login_with_password(local_backend.url, local_backend.user, local_backend.password,
                                    profile_name="lab")
    assert prof.user == local_backend.user and prof.token
    stored = profiles.load_profile()
    assert stored.name == "lab" and stored.token == prof.token
    text = profiles.profile_path().read_text()
    assert local_backend.password not in text
    assert oct(profiles.profile_path().stat().st_mode & 0o777) == oct(0o600)
    info = auth.detect_cluster(local_backend.url)
    assert info.version and info.has_basic_login


def test_wrong_password_is_refused_in_one_line(local_backend):
    with pytest.raises(AuthError) as err:
        auth.login_with_password(local_backend.url, local_backend.user, "not-the-password")
    assert "wrong user name or password" in str(err.value)
    assert "not-the-password" not in str(err.value)
    assert not profiles.profile_path().exists()


def test_token_check_and_application_token(local_backend, client):
    status = client.check_token()
    assert status.valid and status.user == local_backend.user and not status.application
    assert status.checked_with == "tokens/check"
    app_token = client.create_application_token()
    prof, app_status = auth.login_with_token(local_backend.url, app_token, profile_name="app")
    assert app_status.application and prof.user == local_backend.user
    with PaiClient(prof) as app_client:
        with pytest.raises(ForbiddenError) as err:
            app_client.update_ssh_keys([("k", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9ob3N0 k")])
        assert "application token" in str(err.value) and "login" in str(err.value)


def test_missing_and_bad_tokens_are_401_with_login_hint(local_backend):
    for token in ("", "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VybmFtZSI6Im1hbGxvcnkifQ.forged"):
        with client_of(local_backend, token=token) as c:
            with pytest.raises(AuthError) as err:
                c.submit(shell_job("unauth", "true"))
            assert "pai-magic login" in str(err.value) and "\n" not in str(err.value)
    with client_of(local_backend, token="garbage") as c:
        with pytest.raises(AuthError):
            c.check_token()


# ----- submit, get, config, logs ------------------------------------------------------------

def test_built_job_runs_with_string_ports_config_and_logs(client, local_backend):
    job = shell_job("built", "echo out-line-1", "echo err-line >&2", "echo out-line-2")
    name = submit_job(client, job)
    seen: list[str] = []
    detail = wait_for(client, name, timeout=60, on_progress=lambda d: seen.append(d.state), poll=0.5)
    assert detail.state == "SUCCEEDED" and detail.exit_code == 0
    assert seen[-1] == "SUCCEEDED"
    task = detail.task()
    assert task.role == "taskrole" and task.container_ip
    raw = client.http.get_json(f"jobs/{local_backend.user}~{name}")
    for value in raw["taskRoles"]["taskrole"]["taskStatuses"][0].get("containerPorts", {}).values():
        assert isinstance(value, str)  # as a cluster sends them
    config = client.job_config(name)
    assert config["name"] == name and config["taskRoles"]["taskrole"]["commands"][0] == "echo out-line-1"
    out = client.task_log_text(name, stream="stdout")
    err = client.task_log_text(name, stream="stderr")
    assert out.text == "out-line-1\nout-line-2\n" and err.text == "err-line\n"
    again = client.task_log_text(name, stream="stdout", offset=len("out-line-1\n"))
    assert again.text == "out-line-2\n" and again.next_offset == out.next_offset
    assert isinstance(client.job_events(name), list)


def test_file_job_hello_world_example(client):
    text = (EXAMPLES / "hello-world-job.yaml").read_text()
    job = yaml.safe_load(text)
    job["name"] = unique_job_name("hello")
    for role in job["taskRoles"].values():
        role["commands"] = ["echo hello-from-example"]
    name = submit_job(client, yaml.safe_dump(job, sort_keys=False))
    detail = wait_for(client, name, timeout=60, poll=0.5)
    assert detail.state == "SUCCEEDED"
    assert "hello-from-example" in client.task_log_text(name).text


def test_failed_job_reports_exit_code(client):
    name = submit_job(client, shell_job("fails", "echo about to fail", "exit 3"))
    detail = wait_for(client, name, timeout=60, poll=0.5)
    assert detail.state == "FAILED" and detail.task().exit_code == 3


def test_reused_name_is_409_even_for_a_finished_job(client):
    job = shell_job("once", "true")
    name = submit_job(client, job)
    wait_for(client, name, timeout=60, poll=0.5)
    with pytest.raises(ConflictError) as err:
        submit_job(client, job)
    assert "never reuses job names" in str(err.value) and name in str(err.value)


def test_unknown_job_is_404_with_next_step(client):
    with pytest.raises(NotFoundError) as err:
        client.get_job("no_such_job_here")
    assert "pai-magic jobs" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(NotFoundError):
        client.stop("no_such_job_here")
    with pytest.raises(NotFoundError):
        client.job_config("no_such_job_here")


def test_invalid_job_is_refused_before_any_post(client):
    before = client.http.requests_sent
    with pytest.raises(InvalidInputError) as err:
        submit_job(client, {"protocolVersion": 2, "name": "bad_job", "type": "job",
                            "prerequisites": [], "taskRoles": {}})
    assert err.value.details
    assert client.http.requests_sent == before
    # and the server's own refusal, when validation is skipped, is one line with details
    with pytest.raises(InvalidInputError) as err2:
        submit_job(client, {"protocolVersion": 2, "name": "bad_job2", "type": "job", "taskRoles": {}},
                   validate=False)
    assert "bad_job2" in str(err2.value) and err2.value.code == "InvalidProtocolError"


# ----- stop, wait, follow --------------------------------------------------------------------

def test_stop_a_running_job(client):
    name = submit_job(client, shell_job("sleeper", "echo started", "sleep 120"))
    wait_until(lambda: client.get_job(name).state == "RUNNING")
    detail = stop_job(client, name, wait=True, timeout=60, poll=0.5)
    assert detail.state == "STOPPED"
    client.stop(name)  # stopping again is harmless (idempotent PUT)


def test_wait_timeout_carries_the_state(client):
    name = submit_job(client, shell_job("slow", "sleep 120"))
    try:
        with pytest.raises(PaiTimeoutError) as err:
            wait_for(client, name, timeout=1.0, poll=0.3)
        assert err.value.state in ("WAITING", "RUNNING")
        assert f"pai-magic stop {name}" in str(err.value)
    finally:
        client.stop(name)


def test_follow_logs_yields_everything_until_the_end(client, tmp_path):
    """The job cannot finish before the test has received its first line: proof of streaming."""
    gate = tmp_path / "go"
    name = submit_job(client, shell_job("talker", "echo line 1",
                                        f"while [ ! -e {gate} ]; do sleep 0.05; done",
                                        "for i in 2 3 4 5; do echo line $i; done"))
    chunks: list[str] = []
    for chunk in follow_logs(client, name, poll=0.2, timeout=60):
        chunks.append(chunk)
        if "".join(chunks) == "line 1\n":
            gate.touch()  # the job was still running when this arrived
    assert gate.exists()
    assert "".join(chunks) == "".join(f"line {i}\n" for i in range(1, 6))


# ----- list, paging, filters, watcher --------------------------------------------------------

def test_list_paging_filters_and_watcher(fresh_local_backend):
    with client_of(fresh_local_backend) as c:
        names = [submit_job(c, shell_job(f"many{i}", "exit 1" if i % 4 == 0 else "true")) for i in range(12)]
        watcher = JobWatcher(c, names)
        sent = c.http.requests_sent
        final = watcher.run(timeout=120, poll=0.5)
        assert c.http.requests_sent - sent == watcher.ticks  # one list request per tick, whatever the count
        assert {s.name for s in final.values()} == set(names)
        pages = [c.list_jobs(username=fresh_local_backend.user, offset=o, limit=5) for o in (0, 5, 10)]
        assert [len(p) for p in pages] == [5, 5, 2]
        assert all(p.total == 12 for p in pages) and pages[0].has_more and not pages[2].has_more
        listed = [s.name for p in pages for s in p]
        assert sorted(listed) == sorted(names) and len(set(listed)) == 12
        times = [s.submission_time for p in pages for s in p]
        assert times == sorted(times, reverse=True)  # newest first, across pages
        failed = c.list_jobs(state="FAILED")
        assert {s.name for s in failed} == {n for i, n in enumerate(names) if i % 4 == 0} and failed.total == 3
        assert c.list_jobs(keyword="many1").total == 3  # many1, many10, many11
        assert c.list_jobs(vc="default").total == 12
        assert len(list(c.iter_jobs(page_size=5))) == 12


# ----- users, storages, virtual clusters -----------------------------------------------------

def test_ssh_keys_read_append_write(fresh_local_backend):
    key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne1111111111111111111111111111111111111 one"
    key2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo2222222222222222222222222222222222222 two"
    with client_of(fresh_local_backend) as c:
        assert c.update_ssh_keys([("laptop", key1)])[0]["value"] == key1
        keys = c.update_ssh_keys([("desk", key2), ("laptop-again", key1)])  # same key is not added twice
        assert [k["title"] for k in keys] == ["laptop", "desk"]
        assert [k["title"] for k in c.ssh_keys()] == ["laptop", "desk"]
        assert [k["title"] for k in c.update_ssh_keys(remove_titles=["laptop"])] == ["desk"]
        user = c.get_user()
        assert "privateKey" not in str(user.get("extension", {}).get("jobSSH", {}))


def test_storages_and_virtual_clusters(client):
    vcs = client.virtual_clusters()
    assert "default" in vcs
    stores = client.storages()
    assert stores and {"name"} <= set(stores[0])
    one = client.storage(stores[0]["name"])
    assert one["name"] == stores[0]["name"]
    with pytest.raises(NotFoundError):
        client.storage("no-such-storage")


def wait_until(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")
