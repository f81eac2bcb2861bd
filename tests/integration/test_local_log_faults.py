"""follow_logs rides out the 500 a cluster answers when a node's log-manager hiccups.

The rest-server turns any log-manager failure into ``500 {"code": "UnknownError", "message":
"Failed to get log list"}`` (microsoft/pai v1.8.0 src/rest-server/src/controllers/v2/job.js,
getLogs). The embedded backend has no log-manager to fail, so a FAKE FAULT is used: a real
loopback proxy in front of the real backend answers that 500 to the first log-list requests
and forwards everything else.
"""
from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from pai_magic.core import profiles
from pai_magic.core.client import PaiClient
from pai_magic.core.errors import ServerError
from pai_magic.core.jobs import follow_logs, submit_job, wait_for
from pai_magic.core.protocol import JobSpec, build_protocol


class LogListFault:
    """Proxy answering 500 'Failed to get log list' to the first ``failures`` log-list GETs."""

    def __init__(self, upstream: str, failures: int) -> None:
        up = urlsplit(upstream)
        self.failures = failures
        self.faulted = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.endswith("/logs") and outer.faulted < outer.failures:
                    outer.faulted += 1
                    status, headers = 500, [("Content-Type", "application/json; charset=utf-8")]
                    body = json.dumps({"code": "UnknownError", "message": "Failed to get log list"}).encode()
                else:
                    conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                    try:
                        conn.request("GET", self.path, headers={k: v for k, v in self.headers.items()
                                                                if k.lower() not in ("host", "connection")})
                        resp = conn.getresponse()
                        status, headers, body = resp.status, resp.getheaders(), resp.read()
                    finally:
                        conn.close()
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def finished_job(local_backend):
    prof = profiles.Profile(name="t", url=local_backend.url, user=local_backend.user, token=local_backend.token)
    with PaiClient(prof) as c:
        name = submit_job(c, build_protocol(JobSpec(name="logfault", image="ubuntu:22.04",
                                                    commands=["echo one", "echo two"])))
        assert wait_for(c, name, timeout=60).state == "SUCCEEDED"
    return name


def _client_via(proxy: LogListFault, backend) -> PaiClient:
    prof = profiles.Profile(name="t", url=proxy.url, user=backend.user, token=backend.token)
    return PaiClient(prof, backoff=0)


def test_follow_survives_a_few_log_list_failures(local_backend, finished_job):
    proxy = LogListFault(local_backend.url, failures=2)
    try:
        with _client_via(proxy, local_backend) as c:
            text = "".join(follow_logs(c, finished_job, poll=0.05, timeout=30))
        assert text == "one\ntwo\n" and proxy.faulted == 2
    finally:
        proxy.close()


def test_follow_gives_up_after_too_many_and_says_so_in_one_line(local_backend, finished_job):
    proxy = LogListFault(local_backend.url, failures=100)
    try:
        with _client_via(proxy, local_backend) as c:
            with pytest.raises(ServerError) as err:
                list(follow_logs(c, finished_job, poll=0.05, timeout=30, tolerate_errors=2))
        assert "Failed to get log list" in str(err.value) and "\n" not in str(err.value)
        assert proxy.faulted == 3
    finally:
        proxy.close()
