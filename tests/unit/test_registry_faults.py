"""Faults the real registry cannot produce, served by a FAKE registry (a tiny local HTTP
server named as such): short pages with a Link, proxy HTML pages, Link loops, 503 retries,
a POST that must not be retried."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pai_magic.core.errors import NotFoundError, PaiError, ServerError, UnreachableError
from pai_magic.core.registry import RegistryClient
from tests.fixtures.services import free_port


class FakeRegistry:
    """Routes: path -> list of (status, headers, body) answers, one per call (last repeats)."""

    def __init__(self, routes):
        self.routes = routes
        self.calls: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self):
                fake.calls.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answers = fake.routes.get((self.command, self.path)) or fake.routes.get(self.path)
                if not answers:
                    status, headers, body = 404, {}, b'{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}'
                else:
                    n = sum(1 for c in fake.calls if c == (self.command, self.path)) - 1
                    status, headers, body = answers[min(n, len(answers) - 1)]
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    servers = []

    def make(routes):
        server = FakeRegistry(routes)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


def test_short_pages_with_link_are_followed_not_stopped(fake):
    # a registry may answer fewer than n entries and still have more: only the Link decides
    srv = fake({
        "/v2/_catalog?n=1000": [(200, {"Link": '</v2/_catalog?last=b&n=1000>; rel="next"'},
                                 {"repositories": ["a", "b"]})],
        "/v2/_catalog?last=b&n=1000": [(200, {"Link": '<{}/v2/_catalog?last=c&n=1000&x=1>; rel="next"'.format("")},
                                        {"repositories": ["c"]})],
        "/v2/_catalog?last=c&n=1000&x=1": [(200, {}, {"repositories": []})],
        "/v2/a/tags/list": [(200, {}, {"name": "a", "tags": None})],
        "/v2/b/tags/list": [(200, {"Link": '</v2/b/tags/list?last=1>; rel="next"'}, {"tags": ["2", "1"]})],
        "/v2/b/tags/list?last=1": [(200, {}, {"tags": ["3"]})],
    })
    with RegistryClient(srv.url, docker_config=False) as client:
        listing = client.list_images()
    assert [(i.repository, i.tags) for i in listing] == [("a", []), ("b", ["1", "2", "3"]), ("c", [])]


def test_link_loop_is_an_error_not_a_hang(fake):
    srv = fake({"/v2/_catalog?n=1000": [(200, {"Link": '</v2/_catalog?n=1000>; rel="next"'},
                                         {"repositories": ["a"]})]})
    with RegistryClient(srv.url, docker_config=False) as client:
        with pytest.raises(ServerError) as err:
            list(client.catalog())
    assert "loops" in str(err.value)


def test_proxy_html_pages_are_one_line(fake):
    html = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    srv = fake({"/v2/_catalog?n=1000": [(502, {"Content-Type": "text/html"}, html)],
                "/v2/x/tags/list": [(200, {"Content-Type": "text/html"}, b"<html>login page</html>")],
                "/v2/": [(404, {"Content-Type": "text/html"}, b"<html>Not Found</html>")]})
    with RegistryClient(srv.url, docker_config=False, timeout=(2, 5)) as client:
        with pytest.raises(ServerError) as err:
            list(client.catalog())
        assert "proxy" in str(err.value) and "\n" not in str(err.value) and "nginx" not in str(err.value)
        with pytest.raises(ServerError) as err:
            client.tags("x")
        assert "not JSON" in str(err.value)
        with pytest.raises(NotFoundError) as err:
            client.ping()
        assert "HTML" in str(err.value)
    # 502 is retried for a GET (idempotent): 1 + 3 retries
    assert srv.calls.count(("GET", "/v2/_catalog?n=1000")) == 4


def test_transient_503_on_get_is_retried_then_succeeds(fake):
    srv = fake({"/v2/_catalog?n=1000": [(503, {}, b""), (200, {}, {"repositories": ["z"]})]})
    with RegistryClient(srv.url, docker_config=False) as client:
        assert list(client.catalog()) == ["z"]
    assert srv.calls.count(("GET", "/v2/_catalog?n=1000")) == 2


def test_post_is_never_retried(fake):
    srv = fake({("POST", "/v2/a/blobs/uploads/"): [(503, {}, b""), (202, {"Location": "/up/1"}, b"")]})
    with RegistryClient(srv.url, docker_config=False) as client:
        with pytest.raises(ServerError):
            client.upload_small_blob("a", b"data")
    assert srv.calls.count(("POST", "/v2/a/blobs/uploads/")) == 1


def test_https_url_on_plain_http_registry_says_so(fake):
    srv = fake({"/v2/": [(200, {}, {})]})
    https = srv.url.replace("http://", "https://")
    with RegistryClient(https, docker_config=False, timeout=(2, 5)) as client:
        with pytest.raises(UnreachableError) as err:
            client.ping()
    assert "http://127.0.0.1" in str(err.value) and "\n" not in str(err.value)


def test_no_scheme_and_refused_port(fake):
    with pytest.raises(PaiError) as err:
        RegistryClient("127.0.0.1:5000")
    assert "http://" in str(err.value)
    with pytest.raises(PaiError):
        RegistryClient("http://user:pw@127.0.0.1:5000")
    with RegistryClient(f"http://127.0.0.1:{free_port()}", docker_config=False, timeout=(1, 2)) as client:
        with pytest.raises(UnreachableError) as err:
            client.ping()
    assert "registry_url" in str(err.value)


def test_server_closing_keep_alive_connections_is_retried_transparently(fake):
    # a proxy or registry dropping idle keep-alive connections: the next GET on a dead
    # socket fails and must be resent on a fresh connection (GET is idempotent)
    srv = fake({"/v2/_catalog?n=1000": [(200, {}, {"repositories": ["a", "b"]})],
                "/v2/a/tags/list": [(200, {}, {"tags": ["1"]})],
                "/v2/b/tags/list": [(200, {}, {"tags": ["2"]})]})
    handler = srv.httpd.RequestHandlerClass
    original = handler._answer

    def answer_then_hang_up(self):
        original(self)
        self.close_connection = True  # closes without saying "Connection: close"

    handler.do_GET = answer_then_hang_up
    with RegistryClient(srv.url, docker_config=False, workers=1) as client:
        for _ in range(3):
            assert [(i.repository, i.tags) for i in client.list_images()] == [("a", ["1"]), ("b", ["2"])]
        assert client.transport.request_count > len(srv.calls)  # some sends hit dead sockets, resent
