"""Never submitting twice, and the watcher's request budget, with a FAULT INJECTOR in the path.

:class:`FaultInjector` is a real loopback reverse proxy in front of the real embedded
backend. It forwards every request and can, for chosen ``POST /jobs`` calls, produce the
doubtful failures a cluster's network produces: the answer dropped after the backend has
created the job, the answer held back past the client's read timeout, a gateway 502 page
after forwarding, the request dropped before forwarding, or forwarded late. It also counts
requests at the HTTP layer, which is how the watcher's one-request-per-tick is measured.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from pai_magic.core import profiles
from pai_magic.core.client import PaiClient
from pai_magic.core.errors import UnreachableError
from pai_magic.core.jobs import JobWatcher, submit_job, wait_for
from pai_magic.core.protocol import JobSpec, build_protocol

SUBMIT = ("POST", "/rest-server/api/v2/jobs")


class FaultInjector:
    """Reverse proxy: ``faults`` is a list of actions applied to successive ``POST /jobs`` calls.

    Actions: ``"pass"``, ``"drop_after"`` (forward, then close without answering),
    ``"delay_after"`` (forward, answer after ``delay`` s), ``"gateway_502"`` (forward, then
    answer an nginx-like HTML 502), ``"drop_before"`` (close without forwarding),
    ``"forward_late"`` (close at once, forward ``delay`` s later in the background).
    """

    def __init__(self, upstream: str, faults: list[str] | None = None, delay: float = 1.0) -> None:
        parts = urlsplit(upstream)
        self.up_host, self.up_port = parts.hostname, parts.port
        self.faults = list(faults or [])
        self.delay = delay
        self.seen: list[tuple[str, str]] = []  # every request the proxy received
        self.forwarded: list[tuple[str, str, int]] = []  # (method, path, upstream status)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with outer._lock:
                    outer.seen.append((self.command, path))
                    action = "pass"
                    if (self.command, path) == SUBMIT and outer.faults:
                        action = outer.faults.pop(0)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if action == "drop_before":
                    return self._drop()
                if action == "forward_late":
                    threading.Thread(target=outer._forward_later, args=(self.command, self.path, headers, body),
                                     daemon=True).start()
                    return self._drop()
                status, rheaders, rbody = outer._forward(self.command, self.path, headers, body)
                if action == "drop_after":
                    return self._drop()
                if action == "delay_after":
                    time.sleep(outer.delay)
                if action == "gateway_502":
                    status, rheaders = 502, [("Content-Type", "text/html")]
                    rbody = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
                self.send_response(status)
                for k, v in rheaders:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                try:
                    self.wfile.write(rbody)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self.up_host, self.up_port, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            with self._lock:
                self.forwarded.append((method, path.split("?", 1)[0], resp.status))
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    def _forward_later(self, method: str, path: str, headers: dict, body: bytes) -> None:
        time.sleep(self.delay)
        self._forward(method, path, headers, body)

    def count(self, method: str, path_prefix: str, *, exact: bool = True) -> int:
        with self._lock:
            return sum(1 for m, p in self.seen if m == method and (p == path_prefix if exact else
                                                                   p.startswith(path_prefix)))

    def upstream_statuses(self, method: str, path: str) -> list[int]:
        with self._lock:
            return [s for m, p, s in self.forwarded if (m, p) == (method, path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def injector(local_backend):
    proxy = FaultInjector(local_backend.url)
    yield proxy
    proxy.close()


def client_via(proxy: FaultInjector, backend, **kw) -> PaiClient:
    prof = profiles.Profile(name="t", url=proxy.url, user=backend.user, token=backend.token)
    kw.setdefault("backoff", 0)
    return PaiClient(prof, **kw)


def job(stem: str) -> dict:
    return build_protocol(JobSpec(name=stem, image="ubuntu:22.04", commands=["echo once"]))


@pytest.mark.parametrize("fault", ["drop_after", "delay_after", "gateway_502"])
def test_doubtful_failure_after_the_job_was_created_is_success_without_a_second_post(
        injector, local_backend, fault):
    injector.faults = [fault]
    with client_via(injector, local_backend, timeout=(5, 0.5 if fault == "delay_after" else 30)) as c:
        name = submit_job(c, job(f"doubt_{fault}"))
        assert c.get_job(name).name == name
        assert wait_for(c, name, timeout=60, poll=0.5).state == "SUCCEEDED"
    assert injector.count(*SUBMIT) == 1  # the POST was never repeated
    assert injector.upstream_statuses(*SUBMIT) == [202]


def test_request_lost_before_the_server_is_posted_again_once(injector, local_backend):
    injector.faults = ["drop_before"]
    with client_via(injector, local_backend) as c:
        name = submit_job(c, job("lost"), settle=(0.1, 0.2))
        assert c.get_job(name).state
    assert injector.count(*SUBMIT) == 2  # GET said "not there", so one more POST
    assert injector.upstream_statuses(*SUBMIT) == [202]  # and the backend created it once


def test_late_landing_first_post_never_makes_a_second_job(injector, local_backend):
    """The first POST reaches the backend only after the client gave up on it and re-posted."""
    injector.faults = ["forward_late"]
    injector.delay = 1.0
    with client_via(injector, local_backend) as c:
        name = submit_job(c, job("late"), settle=(0.1,))
        deadline = time.monotonic() + 10
        while len(injector.upstream_statuses(*SUBMIT)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(injector.upstream_statuses(*SUBMIT)) == [202, 409]  # the name made it idempotent
        page = c.list_jobs(username=local_backend.user, keyword=name)
        assert [s.name for s in page] == [name]


def test_every_attempt_lost_is_one_clear_error(injector, local_backend):
    injector.faults = ["drop_before"] * 3
    with client_via(injector, local_backend) as c:
        with pytest.raises(UnreachableError) as err:
            submit_job(c, job("never"), attempts=3, settle=(0.05,))
    msg = str(err.value)
    assert "did not appear" in msg and "pai-magic jobs" in msg and "\n" not in msg
    assert injector.count(*SUBMIT) == 3


def test_watcher_costs_one_list_request_per_tick(injector, local_backend):
    with client_via(injector, local_backend) as c:
        names = [submit_job(c, build_protocol(JobSpec(name=f"w{i}", image="ubuntu:22.04",
                                                      commands=[f"sleep 0.{i + 2}"]))) for i in range(6)]
        lists_before = injector.count("GET", "/rest-server/api/v2/jobs")
        details_before = injector.count("GET", "/rest-server/api/v2/jobs/", exact=False)
        watcher = JobWatcher(c, names)
        changes = []
        final = watcher.run(timeout=120, poll=0.3, on_change=changes.append)
    assert watcher.ticks >= 2
    assert injector.count("GET", "/rest-server/api/v2/jobs") - lists_before == watcher.ticks
    assert injector.count("GET", "/rest-server/api/v2/jobs/", exact=False) == details_before  # no per-job GET
    assert all(s.state == "SUCCEEDED" for s in final.values()) and len(final) == 6
    assert {s.name for s in changes} == set(names)
