"""OpenPAI's rate limits, optionally enforced by the embedded backend (off by default).

Why: a real cluster answers 429 long before anything else breaks when many kernels, a
sidebar and CLI watches poll it; with the limits on, the embedded backend does the same, so
tests and ``bench/bench_polling.py`` see the 429s the client must survive.

What the rest-server v1.8 does (``src/rest-server/src/config/rate-limit.js``, with
express-rate-limit 5): three fixed one-window counters whose numbers come from the cluster
config (``rest-server.yaml``: ``rate-limit-api-per-min: 600``,
``rate-limit-list-job-per-min: 120``, ``rate-limit-submit-job-per-hour: 3600``; the code's
own fallbacks when the environment gives none are 600 / 60 / 60):

- ``api``: every request, per client address, per minute (mounted before any route);
- ``listJob``: ``GET /api/v2/jobs``, per user name, per minute (after the token check);
- ``submitJob``: ``POST /api/v2/jobs``, per user name, per hour (after the token check).

Every hit counts, refused ones too; all counters restart together at the end of each window
(express-rate-limit's MemoryStore). A refused request gets ``429`` with the body
``Too many requests, please try again later.`` as ``text/html`` (NOT OpenPAI's JSON
``{code, message}``), ``Retry-After`` = the window in seconds, and ``X-RateLimit-Limit`` /
``X-RateLimit-Remaining``.

Turn it on with ``pai-magic local --rate-limit`` / ``python -m pai_magic.local --rate-limit``
(optionally ``API,LIST,SUBMIT`` numbers) or the environment variable ``PAI_LOCAL_RATE_LIMIT``
(``on`` or the same numbers).
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from tornado import httputil

log = logging.getLogger("pai_magic.local")

ENV_VAR = "PAI_LOCAL_RATE_LIMIT"
PREFIX = "/rest-server/api/v2"
MESSAGE = b"Too many requests, please try again later."
OFF = ("", "0", "off", "no", "false")


@dataclass(frozen=True)
class RateLimits:
    """Requests allowed per window: OpenPAI's deployed defaults unless given."""

    api_per_min: int = 600
    list_job_per_min: int = 120
    submit_job_per_hour: int = 3600
    minute: float = 60.0  # window lengths; only tests shorten them
    hour: float = 3600.0

    @classmethod
    def parse(cls, text: str | None) -> Optional["RateLimits"]:
        """``None``/``off`` -> None; ``on`` -> the defaults; ``API,LIST,SUBMIT`` -> those numbers."""
        raw = (text or "").strip().lower()
        if raw in OFF:
            return None
        if raw in ("on", "1", "yes", "true", "default", "openpai"):
            return cls()
        parts = [p.strip() for p in raw.split(",")]
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) != 3 or min(numbers) < 1:
            raise ValueError(f"rate limits {text!r}: give `on` or three positive numbers API_PER_MIN,"
                             "LIST_JOB_PER_MIN,SUBMIT_JOB_PER_HOUR (OpenPAI's: 600,120,3600)")
        return cls(*numbers)

    @classmethod
    def from_env(cls) -> Optional["RateLimits"]:
        return cls.parse(os.environ.get(ENV_VAR))


class FixedWindow:
    """Hits per key, all reset together every ``window`` seconds (express-rate-limit 5)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._start = clock()
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        """Count one request of ``key``; returns its hits in the current window."""
        with self._lock:
            now = self._clock()
            if now - self._start >= self.window:
                self._start += self.window * math.floor((now - self._start) / self.window)
                self._hits.clear()
            count = self._hits.get(key, 0) + 1
            self._hits[key] = count
            return count


class Limiter:
    """The three counters and the rule of which request counts where."""

    def __init__(self, limits: RateLimits, who: Callable[[str | None], str | None]) -> None:
        self.limits = limits
        self.who = who  # Authorization header -> user name, None when not a valid token
        self.api = FixedWindow(limits.api_per_min, limits.minute)
        self.list_job = FixedWindow(limits.list_job_per_min, limits.minute)
        self.submit_job = FixedWindow(limits.submit_job_per_hour, limits.hour)
        self.refused = 0

    def check(self, method: str, path: str, headers: httputil.HTTPHeaders,
              address: str) -> tuple[FixedWindow, int] | None:
        """None to serve the request, else the counter that refused it and its hit count."""
        count = self.api.hit(address)
        if count > self.api.limit:
            return self.api, count
        route = path.split("?", 1)[0].rstrip("/")
        if route != PREFIX + "/jobs" or method not in ("GET", "POST"):
            return None
        user = self.who(headers.get("Authorization"))
        if user is None:
            return None  # the route's token check answers 401 before any limiter counts
        counter = self.list_job if method == "GET" else self.submit_job
        count = counter.hit(user)
        return (counter, count) if count > counter.limit else None


class _Gate(httputil.HTTPMessageDelegate):
    """Passes a request to the application, or answers 429 itself before it gets there."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, conn: httputil.HTTPConnection,
                 limiter: Limiter) -> None:
        self.inner = inner
        self.conn = conn
        self.limiter = limiter
        self.refused = False
        self.method = self.path = ""

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Optional[Awaitable[None]]:
        if isinstance(start_line, httputil.RequestStartLine):
            address = str(getattr(getattr(self.conn, "context", None), "remote_ip", "") or "")
            self.method, self.path = start_line.method, start_line.path.split("?", 1)[0]
            verdict = self.limiter.check(start_line.method, start_line.path, headers, address)
            if verdict is not None:
                self.refused = True
                self.limiter.refused += 1
                self._refuse(*verdict)
                return None
        return self.inner.headers_received(start_line, headers)

    def _refuse(self, counter: FixedWindow, count: int) -> None:
        head = httputil.HTTPHeaders({
            "Content-Type": "text/html; charset=utf-8",
            "Content-Length": str(len(MESSAGE)),
            "Retry-After": str(math.ceil(counter.window)),
            "X-RateLimit-Limit": str(counter.limit),
            "X-RateLimit-Remaining": str(max(0, counter.limit - count)),
        })
        self.conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", 429, "Too Many Requests"), head, MESSAGE)
        self.conn.finish()
        log.debug("429 %s %s (rate limit %d per %.0f s)", self.method, self.path, counter.limit, counter.window)

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        return None if self.refused else self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()


class RateLimitedApp(httputil.HTTPServerConnectionDelegate):
    """The tornado application behind the three OpenPAI limiters (give it to HTTPServer)."""

    def __init__(self, app: httputil.HTTPServerConnectionDelegate, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _Gate(self.app.start_request(server_conn, request_conn), request_conn, self.limiter)

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


def with_rate_limits(app: Any, backend: Any, limits: RateLimits | None | str = "env") -> Any:
    """``app`` behind OpenPAI's limiters when ``limits`` (or, by default, ``PAI_LOCAL_RATE_LIMIT``) asks so."""
    chosen = RateLimits.from_env() if limits == "env" else limits
    if chosen is None or isinstance(chosen, str):
        return app

    def who(header: str | None) -> str | None:
        try:
            return str(backend.authenticate(header).username)
        except Exception:  # noqa: BLE001 - any refusal is the route's to answer (401)
            return None

    return RateLimitedApp(app, Limiter(chosen, who))
