"""The HTTP layer against a real loopback HTTP server.

The server here is a FAKE of a broken cluster or proxy: it answers what the embedded backend
never answers (proxy HTML pages, 429 text, 503 bursts, connections dropped after the request
was read, slow answers), each scripted per test. Everything crosses a real socket.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

from pai_magic.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PaiTimeoutError,
    RateLimitedError,
    RedirectError,
    ServerError,
    UnreachableError,
)
from pai_magic.core.http import PaiHttp, redact_url
from tests.fixtures.services import free_port

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VybmFtZSI6ImFsaWNlIn0.SECRETSIGNATURE"


class FakeCluster:
    """Scripted answers per (method, path); records every request it received."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[[BaseHTTPRequestHandler], None]] = {}
        self.hits: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _do(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                outer.hits.append((self.command, self.path, dict(self.headers), body))
                route = outer.routes.get((self.command, path))
                if route is None:
                    reply(self, 404, {"code": "NoApiError", "message": f"no route {path}"})
                else:
                    route(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _h, _b in self.hits if m == method and p.split("?", 1)[0] == path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply(h: BaseHTTPRequestHandler, status: int, body: object, ctype: str = "application/json",
          headers: dict[str, str] | None = None) -> None:
    raw = body if isinstance(body, bytes) else (json.dumps(body) if not isinstance(body, str) else body).encode()
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(raw)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    try:
        h.wfile.write(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up first (read timeout tests)


def drop(h: BaseHTTPRequestHandler) -> None:
    """Read the request, then close the socket without any answer (a dying proxy)."""
    h.close_connection = True
    h.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def fake():
    server = FakeCluster()
    yield server
    server.close()


def http_for(fake: FakeCluster, **kw) -> PaiHttp:
    kw.setdefault("backoff", 0)
    return PaiHttp(fake.url + "/rest-server/api/v2", TOKEN, **kw)


API = "/rest-server/api/v2"


@pytest.mark.parametrize("status,body,ctype,exc,needle", [
    (401, {"code": "UnauthorizedUserError", "message": "Guest is not allowed"}, "application/json", AuthError,
     "pai-magic login"),
    (403, {"code": "ForbiddenUserError", "message": "Not allowed"}, "application/json", ForbiddenError, "Not allowed"),
    (404, {"code": "NoJobError", "message": "Job x not found."}, "application/json", NotFoundError, "not found"),
    (409, {"code": "ConflictJobError", "message": "Job name alice~x already exists."}, "application/json",
     ConflictError, "never reuses job names"),
    (400, {"code": "InvalidProtocolError", "message": "taskRoles is required\nname is bad"}, "application/json",
     InvalidInputError, "taskRoles is required"),
    (429, "Too many requests, please try again later.", "text/plain", RateLimitedError, "wait"),
    (500, {"code": "UnknownError", "message": "boom"}, "application/json", ServerError, "boom"),
    (502, "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>", "text/html",
     ServerError, "502 Bad Gateway"),
    (404, "<html><title>Not Found</title></html>", "text/html", NotFoundError, "check the cluster URL"),
])
def test_error_answers_become_one_line_pai_errors(fake, status, body, ctype, exc, needle):
    fake.routes[("GET", f"{API}/thing")] = lambda h: reply(h, status, body, ctype)
    http = http_for(fake, retries=0)
    with pytest.raises(exc) as info:
        http.get_json("thing")
    msg = str(info.value)
    assert needle in msg
    assert "\n" not in msg
    assert TOKEN not in msg and "SECRETSIGNATURE" not in msg
    assert info.value.status in (status, 502)


def test_protocol_error_lines_are_kept_as_details(fake):
    body = {"code": "InvalidProtocolError", "message": "taskRoles is required\nname must match pattern"}
    fake.routes[("POST", f"{API}/jobs")] = lambda h: reply(h, 400, body)
    with pytest.raises(InvalidInputError) as info:
        http_for(fake).request("POST", "jobs", data=b"x: 1", headers={"Content-Type": "text/yaml"})
    assert info.value.details == ["taskRoles is required", "name must match pattern"]
    assert info.value.code == "InvalidProtocolError"


def test_get_is_retried_on_503_and_post_is_not(fake):
    answers = iter([503, 503, 200])
    fake.routes[("GET", f"{API}/jobs")] = lambda h: reply(h, next(answers), [] if True else None)
    fake.routes[("POST", f"{API}/jobs")] = lambda h: reply(h, 503, {"code": "UnknownError", "message": "busy"})
    http = http_for(fake, retries=3)
    assert http.get_json("jobs") == []
    assert fake.count("GET", f"{API}/jobs") == 3
    with pytest.raises(ServerError) as info:
        http.request("POST", "jobs", data=b"name: x")
    assert fake.count("POST", f"{API}/jobs") == 1
    assert info.value.request_sent is True


def test_get_retries_a_429_then_reports_rate_limit(fake):
    fake.routes[("GET", f"{API}/jobs")] = lambda h: reply(h, 429, "Too many requests", "text/plain",
                                                          {"Retry-After": "0"})
    with pytest.raises(RateLimitedError):
        http_for(fake, retries=2).get_json("jobs")
    assert fake.count("GET", f"{API}/jobs") == 3  # first try + 2 retries, then the clear error


def test_dropped_answer_retries_get_but_never_post(fake):
    state = {"n": 0}

    def flaky(h):
        state["n"] += 1
        if state["n"] == 1:
            drop(h)
        else:
            reply(h, 200, {"ok": True})

    fake.routes[("GET", f"{API}/info")] = flaky
    fake.routes[("POST", f"{API}/jobs")] = drop
    http = http_for(fake, retries=2)
    assert http.get_json("info") == {"ok": True}
    assert fake.count("GET", f"{API}/info") == 2
    with pytest.raises(UnreachableError) as info:
        http.request("POST", "jobs", data=b"name: x")
    assert fake.count("POST", f"{API}/jobs") == 1
    assert info.value.request_sent is True  # doubtful: the server read it
    assert "\n" not in str(info.value)


def test_read_timeout_is_a_doubtful_timeout(fake):
    def slow(h):
        time.sleep(1.5)
        reply(h, 202, {"message": "ok"})

    fake.routes[("POST", f"{API}/jobs")] = slow
    with pytest.raises(PaiTimeoutError) as info:
        http_for(fake, timeout=(2, 0.3)).request("POST", "jobs", data=b"name: x")
    assert info.value.request_sent is True
    assert fake.count("POST", f"{API}/jobs") == 1


def test_refused_connection_names_url_and_cause_and_is_not_doubtful():
    port = free_port()
    http = PaiHttp(f"http://127.0.0.1:{port}/rest-server/api/v2", TOKEN, retries=1, backoff=0)
    with pytest.raises(UnreachableError) as info:
        http.request("POST", "jobs", data=b"name: x")
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "Connection refused" in msg
    assert info.value.request_sent is False
    assert "\n" not in msg and TOKEN not in msg


def test_token_never_logged_and_log_uri_query_redacted(fake, caplog):
    fake.routes[("GET", "/log-manager/logs")] = lambda h: reply(h, 500, "<html><title>oops</title></html>",
                                                                "text/html")
    http = http_for(fake, retries=0)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ServerError) as info:
        http.get_json(fake.url + "/log-manager/logs?token=" + TOKEN)
    assert "token=" not in str(info.value)
    text = caplog.text
    assert TOKEN not in text and "Bearer" not in text and "SECRETSIGNATURE" not in text
    assert "log-manager/logs" in text  # the call itself is logged, just not its secrets
    assert TOKEN not in repr(http)


def test_bearer_sent_to_cluster_but_not_to_other_origins(fake):
    other = FakeCluster()
    try:
        fake.routes[("GET", f"{API}/me")] = lambda h: reply(h, 200, {})
        other.routes[("GET", "/elsewhere")] = lambda h: reply(h, 200, {})
        http = http_for(fake)
        http.get_json("me")
        http.get_json(other.url + "/elsewhere")
        assert fake.hits[-1][2].get("Authorization") == f"Bearer {TOKEN}"
        assert "Authorization" not in other.hits[-1][2]
    finally:
        other.close()


def test_unauthenticated_call_sends_no_token(fake):
    fake.routes[("GET", f"{API}/info")] = lambda h: reply(h, 200, {"version": "v1.8.1"})
    http_for(fake).get_json("info", auth=False)
    assert "Authorization" not in fake.hits[-1][2]


def test_post_redirect_is_refused_not_followed(fake):
    fake.routes[("POST", f"{API}/jobs")] = lambda h: reply(h, 301, "", "text/plain",
                                                           {"Location": "https://elsewhere/rest-server/api/v2/jobs"})
    with pytest.raises(RedirectError) as info:
        http_for(fake).request("POST", "jobs", data=b"name: x")
    assert "https://elsewhere" in str(info.value)
    assert fake.count("POST", f"{API}/jobs") == 1


def test_html_instead_of_json_on_success_says_check_url(fake):
    fake.routes[("GET", f"{API}/info")] = lambda h: reply(h, 200, "<html><title>Sign in</title></html>", "text/html")
    with pytest.raises(ServerError) as info:
        http_for(fake).get_json("info")
    assert "Sign in" in str(info.value) and "check the cluster URL" in str(info.value)


def test_requests_sent_counts_calls(fake):
    fake.routes[("GET", f"{API}/x")] = lambda h: reply(h, 200, {})
    http = http_for(fake)
    for _ in range(3):
        http.get_json("x")
    assert http.requests_sent == 3 == fake.count("GET", f"{API}/x")


def test_redact_url_strips_query_and_userinfo():
    assert redact_url("https://u:p@host:8443/a/b?token=abc#frag") == "https://host:8443/a/b"


def test_same_origin_redirect_of_a_read_is_followed_with_the_token(fake):
    fake.routes[("GET", f"{API}/jobs")] = lambda h: reply(h, 301, "", "text/plain",
                                                          {"Location": f"{API}/jobs/?offset=0"})
    fake.routes[("GET", f"{API}/jobs/")] = lambda h: reply(h, 200, [])
    assert http_for(fake).get_json("jobs", params={"offset": 0}) == []
    assert fake.hits[-1][1] == f"{API}/jobs/?offset=0"
    assert fake.hits[-1][2].get("Authorization") == f"Bearer {TOKEN}"
