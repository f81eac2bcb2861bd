"""OpenPAI's rate limits on the embedded backend, and a client that shares its polls and backs off.

All against the real embedded backend over HTTP, started with its limits on (numbers made
small so a test reaches them in a few calls). Every limit window starts when the backend
starts, so each test that counts to a limit starts its own backend and stays well inside
the first minute.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pai_magic.core.client import PaiClient
from pai_magic.core.errors import RateLimitedError
from pai_magic.core.jobs import JobWatcher
from pai_magic.core.polling import DEFAULT_LIMIT, SharedJobList, watch_interval
from pai_magic.core.profiles import Profile
from pai_magic.core.protocol import JobSpec, build_protocol
from pai_magic.local.ratelimit import ENV_VAR, RateLimits, with_rate_limits
from tests.fixtures.local_backend import LocalBackendProcess

REPO = Path(__file__).resolve().parents[2]
TOO_MANY = "Too many requests, please try again later."


def limited_backend(tmp_path: Path, spec: str) -> LocalBackendProcess:
    backend = LocalBackendProcess(tmp_path / "limited-data")
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = spec  # the backend's config value, as a user would export it
    try:
        backend.start()
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old
    return backend


@pytest.fixture
def list_limited(tmp_path):
    backend = limited_backend(tmp_path, "1000,4,3")
    yield backend
    backend.stop()


def client_of(backend: LocalBackendProcess) -> PaiClient:
    return PaiClient(Profile(name="t", url=backend.url, user=backend.user, token=backend.token))


def test_limits_are_off_unless_asked(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    app = object()
    assert with_rate_limits(app, None) is app
    assert RateLimits.parse("on") == RateLimits(600, 120, 3600)  # rest-server.yaml's deployed numbers
    with pytest.raises(ValueError):
        RateLimits.parse("10,20")


def test_job_lists_and_submits_get_the_rest_servers_429(list_limited):
    b = list_limited
    jobs = f"{b.api}/jobs"
    assert requests.get(jobs, headers=b.headers("not-a-token"), timeout=30).status_code == 401  # not counted
    for _ in range(4):
        assert requests.get(jobs, headers=b.headers(), timeout=30).status_code == 200
    refused = requests.get(jobs, headers=b.headers(), timeout=30)
    assert refused.status_code == 429
    assert refused.text == TOO_MANY and refused.headers["Content-Type"].startswith("text/html")  # not JSON
    assert refused.headers["Retry-After"] == "60" and refused.headers["X-RateLimit-Limit"] == "4"
    # a job's detail is not a job list
    assert requests.get(f"{jobs}/{b.user}~nope", headers=b.headers(), timeout=30).status_code == 404
    # submits count per hour, refused bodies included (the limiter runs before the protocol check)
    statuses = [requests.post(jobs, data=b"not: [a job", headers={**b.headers(), "Content-Type": "text/yaml"},
                              timeout=30).status_code for _ in range(4)]
    assert statuses[:3] == [400, 400, 400] and statuses[3] == 429
    # the client: one request (Retry-After 60 is too long to sleep through), one clear error
    client = client_of(b)
    sent = client.http.requests_sent
    with pytest.raises(RateLimitedError) as info:
        client.list_jobs(username=b.user)
    assert client.http.requests_sent - sent == 1
    assert info.value.retry_after == 60  # type: ignore[attr-defined] and "wait 60 s" in str(info.value)


def test_calls_per_address_are_limited(tmp_path, monkeypatch):
    from pai_magic.local.server import start_in_thread

    monkeypatch.setenv(ENV_VAR, "5,100,100")
    handle = start_in_thread(tmp_path / "api-limited", users={"ann": "pw-ann-123456"})
    try:
        codes = [requests.get(f"{handle.api}/info", timeout=30).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        assert requests.get(f"{handle.api}/jobs", timeout=30).status_code == 429  # every route, per address
    finally:
        handle.stop()


def test_a_429_pauses_every_poller_until_retry_after(list_limited):
    b = list_limited
    first = SharedJobList(client_of(b), min_interval=0.0)
    got = [first.get(max_age=0.0) for _ in range(4)]  # four refreshes: the whole budget
    assert all(g.fresh for g in got) and first.client.http.requests_sent == 4
    limited = first.get(max_age=0.0)  # the 5th call is refused ...
    assert not limited.fresh and limited.limited and "HTTP 429" in (limited.note or "")
    assert limited.items == got[-1].items  # ... and the last list is served instead
    other = SharedJobList(client_of(b), min_interval=0.0)  # another kernel on the machine
    for _ in range(5):
        assert other.get(max_age=0.0).limited
    assert other.client.http.requests_sent == 0  # nobody calls the cluster before Retry-After


def test_kernels_sidebar_and_watch_share_one_list_request(local_backend):
    """Four processes asking at once for a list make one request; the others read its answer."""
    code = (
        "import json, sys\n"
        "from pai_magic.core.client import PaiClient\n"
        "from pai_magic.core.polling import SharedJobList\n"
        "from pai_magic.core.profiles import Profile\n"
        "url, user, token = sys.argv[1:4]\n"
        "c = PaiClient(Profile(name='t', url=url, user=user, token=token))\n"
        "lst = SharedJobList(c).get(max_age=60)\n"
        "print(json.dumps({'sent': c.http.requests_sent, 'n': len(lst.items)}))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    procs = [subprocess.Popen([sys.executable, "-c", code, local_backend.url, local_backend.user, local_backend.token],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sum(r["sent"] for r in results) == 1, results
    assert len({r["n"] for r in results}) == 1


def test_shared_watchers_tick_without_multiplying_requests(local_backend):
    from pai_magic.core.jobs import submit_job
    from pai_magic.core.protocol import JobSpec, build_protocol

    clients = [client_of(local_backend) for _ in range(3)]
    name = submit_job(clients[0], build_protocol(JobSpec(name="shared", image="ubuntu:22.04", commands=["sleep 1"])))
    watchers = [JobWatcher(c, [name], shared=True, max_age=2.0) for c in clients]
    before = sum(c.http.requests_sent for c in clients)
    started = time.monotonic()
    for _ in range(5):
        for w in watchers:
            w.tick()
    lists = sum(c.http.requests_sent for c in clients) - before
    elapsed = time.monotonic() - started
    assert all(w.states for w in watchers)  # every watcher knows the job
    assert lists <= 1 + int(elapsed / 2.0) + 1, (lists, elapsed)  # one list per 2 s, not 15


def test_long_running_jobs_are_polled_less_often():
    assert watch_interval(2.0, 10) == 2.0
    assert watch_interval(2.0, 300) == 10.0
    assert watch_interval(2.0, 7200) == 30.0


def test_sidebar_and_a_kernel_watcher_share_one_list_call(local_backend, tmp_path, monkeypatch):
    """A real Jupyter server (the sidebar's job list route) and a watcher in this process share one
    list call; a request-counting proxy sits between them and the real backend."""
    from pai_magic.core import auth
    from tests.integration.test_client_faults import FaultInjector
    from tests.server.jupyter_process import JupyterProcess

    # more jobs than the sidebar's page AND than the shared list's default page, as on any real
    # account (and in the full test run): the sidebar's 5 rows must still serve a watcher made
    # with its defaults (a CLI `job --wait`), which asks for the default page
    query = {"username": local_backend.user, "limit": 1, "withTotalCount": "true"}
    listed = requests.get(f"{local_backend.api}/jobs", params=query, headers=local_backend.headers(),
                          timeout=30).json()
    for _ in range(max(6, DEFAULT_LIMIT + 1 - int(listed["totalCount"]))):
        job = build_protocol(JobSpec(name="page_filler", image="ubuntu:22.04", commands=["true"]))
        assert local_backend.submit(job).status_code == 202
    proxy = FaultInjector(local_backend.url)
    config = tmp_path / "cfg"
    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(config))
    jupyter = None
    try:
        auth.login_with_password(proxy.url, local_backend.user, local_backend.password)
        jupyter = JupyterProcess(tmp_path / "jupyter", config,
                                 env={"PAI_MAGIC_DATA_DIR": os.environ["PAI_MAGIC_DATA_DIR"]}).start()
        before = proxy.count("GET", "/rest-server/api/v2/jobs")
        rows = [jupyter.get("pai-magic/api/jobs?limit=5") for _ in range(3)]
        assert all(r.status_code == 200 for r in rows), rows[-1].text
        # the sidebar listed through the cluster (again only if its 2 s minimum age passed between
        # its own calls, as on a loaded machine) ...
        after_sidebar = proxy.count("GET", "/rest-server/api/v2/jobs")
        assert after_sidebar - before >= 1, proxy.seen
        client = PaiClient(Profile(name="t", url=proxy.url, user=local_backend.user, token=local_backend.token))
        watcher = JobWatcher(client, ["anything"], shared=True, max_age=30)
        watcher.tick()
        # ... and the kernel-side watcher read the sidebar's answer: no list call of its own
        assert proxy.count("GET", "/rest-server/api/v2/jobs") == after_sidebar, proxy.seen
        assert client.http.requests_sent == 0
    finally:
        if jupyter is not None:
            jupyter.stop()
        proxy.close()


def test_sharing_can_be_switched_off(local_backend, monkeypatch):
    monkeypatch.setenv("PAI_MAGIC_SHARED_POLL", "off")
    lists = SharedJobList(client_of(local_backend))
    for _ in range(3):
        assert lists.get(max_age=60).fresh
    assert lists.client.http.requests_sent == 3
