"""A cluster that never answers, and one that redirects elsewhere: the client's clear way out.

:class:`HungServer` is a FAKE of a fault the embedded backend cannot produce: a loopback TCP
server that accepts connections and reads requests but never answers (a wedged proxy or a
frozen rest-server). :class:`RedirectServer` is a real loopback HTTP server that answers
every request with a redirect, as a misconfigured ingress or an http -> https rule does; its
targets are the real embedded backend (another origin) or an https:// address.

Before the fix a read command against the hung server took ~2 minutes, a submit ~30
minutes, with "broke before the answer came"; `jobs` through a redirect printed the other
server's answer with exit 0 and `login` called it a wrong password.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pai_magic.core.errors import PaiTimeoutError, RedirectError
from pai_magic.core.http import PaiHttp

REPO = Path(__file__).resolve().parents[2]
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VybmFtZSI6InRlc3RlciJ9.NOTASIGNATURE"


class HungServer:
    """FAKE (fault injector): accepts, reads request heads, never answers, never closes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.request_lines: list[str] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        while not self._closed:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            for line in buf.split(b"\r\n"):
                if line.startswith((b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ")):
                    with self._lock:
                        self.request_lines.append(line.decode("latin-1"))
            buf = b""

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for line in self.request_lines if line.startswith(method + " "))

    def close(self) -> None:
        self._closed = True
        for conn in self._conns:
            try:
                conn.close()
            except OSError:
                pass
        self.sock.close()


class RedirectServer:
    """A real loopback HTTP server answering every request with ``status`` to ``target + path``."""

    def __init__(self, target: str, status: int = 301) -> None:
        outer = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _do(self) -> None:
                outer.hits += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = _do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hung():
    server = HungServer()
    yield server
    server.close()


def run_cli(*args: str, env_extra: dict[str, str], stdin: str | None = None,
            timeout: float = 90) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("PAI_MAGIC_DEBUG", None)
    env.update(env_extra)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pai_magic", *args], capture_output=True, text=True, env=env,
                          cwd=str(REPO), timeout=timeout, input=stdin)
    return proc, time.monotonic() - started


def cluster_env(url: str) -> dict[str, str]:
    return {"PAI_URL": url, "PAI_USER": "tester", "PAI_TOKEN": TOKEN}


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# ---------------------------------------------------------------- deadline


def test_request_retries_stay_inside_one_deadline(hung):
    http = PaiHttp(hung.url + "/rest-server/api/v2", TOKEN, retries=3, backoff=0, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(PaiTimeoutError) as info:
        http.get_json("jobs")
    elapsed = time.monotonic() - started
    assert elapsed < 4, elapsed  # urllib3's read retries made it 4 x the read timeout
    assert f"No answer from {hung.url}/rest-server/api/v2/jobs within 1 s" in str(info.value)
    assert "broke before the answer came" not in str(info.value)


def test_read_command_against_a_hung_cluster_ends_at_the_flag_deadline(hung):
    proc, elapsed = run_cli("jobs", "--request-timeout", "2", env_extra=cluster_env(hung.url))
    line = one_error_line(proc)
    assert f"No answer from {hung.url}/rest-server/api/v2/" in line and "within 2 s" in line, line
    assert elapsed < 20, elapsed  # 2 s + interpreter start on a loaded machine; was ~2 minutes


def test_submit_against_a_hung_cluster_posts_once_and_ends_at_the_env_deadline(hung):
    before = hung.count("POST")
    env = dict(cluster_env(hung.url), PAI_MAGIC_REQUEST_TIMEOUT="4")
    proc, elapsed = run_cli("submit", "--image", "ubuntu:22.04", "--name", "hang", "--", "echo", "hi",
                            env_extra=env)
    line = one_error_line(proc)
    assert "within 4 s" in line and "whether it was created is unknown" in line, line
    assert "pai-magic job hang" in line, line  # what to do instead of submitting again
    assert hung.count("POST") - before == 1  # one POST: the doubt is resolved by lookups, not re-posts
    assert elapsed < 25, elapsed  # 4 s for everything (POST + lookups) + interpreter start; was ~30 min


def test_magic_request_timeout_trait_bounds_a_magic(hung, ipy, monkeypatch):
    from IPython.core.error import UsageError

    for key, value in cluster_env(hung.url).items():
        monkeypatch.setenv(key, value)
    ipy.run_line_magic("config", "PaiMagics.request_timeout = 1.5")
    started = time.monotonic()
    with pytest.raises(UsageError) as info:
        ipy.run_line_magic("pai_jobs", "")
    assert time.monotonic() - started < 8
    text = str(info.value)
    assert "within 1.5 s" in text and "%config PaiMagics.request_timeout" in text, text
    assert "\n" not in text


def test_bad_request_timeout_values_are_one_line_errors():
    proc, _ = run_cli("jobs", "--request-timeout", "0", env_extra=cluster_env("http://127.0.0.1:9"))
    assert "between 0.05 and" in one_error_line(proc)
    proc, _ = run_cli("jobs", env_extra=dict(cluster_env("http://127.0.0.1:9"), PAI_MAGIC_REQUEST_TIMEOUT="soon"))
    assert "PAI_MAGIC_REQUEST_TIMEOUT" in one_error_line(proc)


# ---------------------------------------------------------------- redirects


@pytest.fixture(scope="module")
def to_backend(local_backend):
    server = RedirectServer(local_backend.url, 302)
    yield server
    server.close()


def test_read_commands_through_a_redirect_to_another_host_fail_naming_it(to_backend, local_backend):
    env = dict(cluster_env(to_backend.url), PAI_TOKEN=local_backend.token, PAI_USER=local_backend.user)
    for verb in ("jobs", "whoami"):
        proc, _ = run_cli(verb, env_extra=env)
        line = one_error_line(proc)  # was: the other server's answer, exit 0
        assert f"redirects (302) to another address, {local_backend.url}/rest-server/api/v2/" in line, line
        assert f"use {local_backend.url} as the cluster URL" in line
        assert local_backend.token not in line


def test_login_through_a_redirect_is_not_a_wrong_password(to_backend, local_backend):
    proc, _ = run_cli("login", to_backend.url, "--user", local_backend.user, "--password-stdin",
                      stdin=local_backend.password + "\n", env_extra={})
    line = one_error_line(proc)
    assert "password" not in line.lower(), line
    assert local_backend.url in line and "redirects" in line, line
    assert local_backend.password not in proc.stdout + proc.stderr


def test_http_to_https_redirect_is_named():
    server = RedirectServer("https://127.0.0.1:8443", 301)
    try:
        http = PaiHttp(server.url + "/rest-server/api/v2", TOKEN, backoff=0, deadline=10)
        with pytest.raises(RedirectError) as info:
            http.get_json("info", auth=False)
        assert "https://127.0.0.1:8443/rest-server/api/v2/info" in str(info.value)
        assert "use https://127.0.0.1:8443 as the cluster URL" in str(info.value)
        assert server.hits == 1  # not followed, not retried
    finally:
        server.close()
